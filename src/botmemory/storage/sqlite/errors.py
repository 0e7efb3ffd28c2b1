"""The SQLite backend's one translation of driver errors into botmemory's.

Every call into ``sqlite3`` runs inside :func:`driver_errors` (in
:meth:`~botmemory.storage.sqlite.connection.SqliteConnection.call` and ``here``), so a
``sqlite3`` error never reaches a user: a lock held too long by another connection
becomes :class:`~botmemory.errors.LockTimeoutError`, anything else
:class:`~botmemory.errors.BackendError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from botmemory.errors import BackendError, BotMemoryError, LockTimeoutError

__all__ = ["DRIVER_ERRORS", "driver_errors", "is_busy", "translate"]

DRIVER_ERRORS: Final = (sqlite3.Error, ValueError, OverflowError)
"""What ``sqlite3`` raises: its own errors, and a value it cannot bind or read back."""


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` says another connection holds a lock this call needs."""
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def translate(path: str, exc: BaseException) -> BackendError:
    """Return botmemory's error for ``exc``, raised on the database at ``path``."""
    if is_busy(exc):
        return LockTimeoutError(f"SQLite database {path} is locked: {exc}")
    return BackendError(f"SQLite error on {path}: {exc}")


@contextmanager
def driver_errors(path: str) -> Iterator[None]:
    """Raise botmemory's error for a driver error raised inside (on ``path``)."""
    try:
        yield
    except BotMemoryError:
        raise
    except DRIVER_ERRORS as exc:
        raise translate(path, exc) from exc
