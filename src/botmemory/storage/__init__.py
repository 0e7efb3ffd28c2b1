"""Storage backends behind one contract (:class:`~botmemory.storage.base.Storage`).

``open_storage(url)`` picks the backend from the URL scheme: ``memory://``,
``sqlite:///path.db``, ``postgresql://...``, ``redis://...`` or
``redis+cluster://host:port,...``. Drivers of optional
backends are imported only when their scheme is used.
"""

from __future__ import annotations

import importlib
from typing import Final

from botmemory.errors import BotMemoryError, MissingDependencyError
from botmemory.storage.base import Storage
from botmemory.urls import mask_url

__all__ = ["Storage", "create_storage"]

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
