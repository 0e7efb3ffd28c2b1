"""The HTTP server: the converse API, memory and KVS routes, the janitor, metrics, a web page.

::

    from botmemory.dialog import DialogEngine
    from botmemory.server import create_app

    engine = await DialogEngine.from_data_dir("data")
    app = create_app(engine)          # any ASGI server runs it; `botmemory serve` uses uvicorn

Needs the ``server`` extra (``pip install 'botmemory[server]'``). See ``docs/http-api.md``.
"""

from __future__ import annotations

from botmemory.errors import MissingDependencyError

try:
    import fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise MissingDependencyError(
        "the HTTP server needs its dependencies: pip install 'botmemory[server]'"
    ) from exc

from botmemory.server.app import create_app
from botmemory.server.auth import Access, Grant

__all__ = ["Access", "Grant", "create_app"]
