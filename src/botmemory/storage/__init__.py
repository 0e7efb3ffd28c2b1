"""Storage backends behind one contract (:class:`~botmemory.storage.base.Storage`).

``create_storage(url)`` picks the backend from the URL scheme: ``memory://``
(:mod:`.memory`), ``sqlite:///path.db`` (:mod:`.sqlite`), ``postgresql://...``
(:mod:`.postgres`), ``redis://...`` or ``redis+cluster://host:port,...`` (:mod:`.redis`).
Drivers of optional backends are imported only when their scheme is used.

Adding a backend takes four things:

1. a package ``storage/<name>/`` whose class implements the contract in :mod:`.base`,
   translating its driver's errors at one choke point (a context manager around the
   calls into the driver, as ``<name>/errors.py`` in the others) and reading its URL
   options with :mod:`.url_options`;
2. its schemes in ``_BACKENDS`` below (module, class, and the extra that installs its driver);
3. that extra in ``pyproject.toml`` (``[project.optional-dependencies]``);
4. a ``<name>_url`` fixture in ``tests/conftest.py`` (a fresh database, or
   ``service_unavailable`` when its server is absent) and its name in ``ALL_BACKENDS``:
   every test taking ``backend_url`` then runs on it too.
"""

from __future__ import annotations

import importlib
from typing import Final

from botmemory.errors import BotMemoryError, MissingDependencyError
from botmemory.storage.base import Storage
from botmemory.urls import mask_url

__all__ = ["SCHEMES", "Storage", "create_storage"]

_BACKENDS: Final[dict[str, tuple[str, str, str | None]]] = {
    "memory": ("botmemory.storage.memory", "MemoryStorage", None),
    "sqlite": ("botmemory.storage.sqlite", "SqliteStorage", None),
    "postgresql": ("botmemory.storage.postgres", "PostgresStorage", "postgres"),
    "postgres": ("botmemory.storage.postgres", "PostgresStorage", "postgres"),
    "redis": ("botmemory.storage.redis", "RedisStorage", "redis"),
    "rediss": ("botmemory.storage.redis", "RedisStorage", "redis"),
    "redis+cluster": ("botmemory.storage.redis", "RedisStorage", "redis"),
    "rediss+cluster": ("botmemory.storage.redis", "RedisStorage", "redis"),
}
SCHEMES: Final = tuple(_BACKENDS)
"""The schemes of the URLs :func:`create_storage` takes (``database.url`` takes the same)."""


def create_storage(url: str) -> Storage:
    """Build the backend for ``url`` (not yet opened)."""
    scheme = url.partition("://")[0].lower()
    if scheme not in _BACKENDS or "://" not in url:
        known = ", ".join(f"{s}://" for s in ("memory", "sqlite", "postgresql", "redis"))
        raise BotMemoryError(f"database URL {mask_url(url)!r} is not supported: use {known}")
    module_name, class_name, extra = _BACKENDS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None or module_name in str(exc):
            raise
        raise MissingDependencyError(
            f"the {scheme} backend needs its driver: pip install 'botmemory[{extra}]'"
        ) from exc
    storage: Storage = getattr(module, class_name)(url)
    return storage
