"""The PostgreSQL backend's one translation of driver and socket errors into botmemory's.

Every call into asyncpg runs inside the pool's guard (:meth:`PostgresPool._guard
<botmemory.storage.postgres.pool.PostgresPool._guard>`), which asks :func:`translate`
what an error means: connection failures become
:class:`~botmemory.errors.BackendUnavailableError` (with the URL's password masked),
lock timeouts :class:`~botmemory.errors.LockTimeoutError`, deadlocks and serialization
failures :class:`~botmemory.errors.ConflictError`, the rest
:class:`~botmemory.errors.BackendError`.
"""

from __future__ import annotations

from typing import Any, Final

import asyncpg

from botmemory.durations import Seconds, format_duration
from botmemory.errors import (
    BackendError,
    BackendUnavailableError,
    BotMemoryError,
    ConflictError,
    LockTimeoutError,
)

__all__ = ["DRIVER_ERRORS", "is_closed", "translate"]

DRIVER_ERRORS: Final = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,  # with ConnectionError and TimeoutError
)
_UNAVAILABLE_STATES: Final = {"57P01", "57P02", "57P03", "53300"}
"""The server shuts down, crashed, is starting up, or has too many connections."""
_CONFLICT_STATES: Final = {"40P01", "40001"}
"""A deadlock or a serialization failure: the commit is run again, like any conflict."""


def is_closed(conn: Any) -> bool:
    """Whether the connection ``conn`` is closed (or lost, and given back to the pool)."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:  # lost, and given back to the pool already
        return True


def translate(
    exc: BaseException,
    where: str,
    *,
    command_timeout: Seconds,
    lock_timeout: Seconds | None,
    conn: Any = None,
) -> BotMemoryError:
    """Return botmemory's error for a driver or socket error (on ``conn``) at ``where``."""
    if getattr(exc, "sqlstate", None) in _CONFLICT_STATES:
        return ConflictError(f"{where}: concurrent commits collided: {exc}")
    if isinstance(exc, TimeoutError) and not isinstance(exc, asyncpg.PostgresError):
        return BackendUnavailableError(
            f"{where} did not answer within command_timeout={format_duration(command_timeout)}"
        )
    if isinstance(exc, asyncpg.exceptions.LockNotAvailableError):
        return LockTimeoutError(
            f"{where}: a lock was not granted within lock_timeout="
            f"{format_duration(lock_timeout)}: {exc}"
        )
    if (
        isinstance(exc, asyncpg.PostgresConnectionError | OSError)
        or getattr(exc, "sqlstate", None) in _UNAVAILABLE_STATES
        or (conn is not None and is_closed(conn))
    ):
        return BackendUnavailableError(f"{where} is unavailable: {exc}")
    return BackendError(f"{where} failed: {exc}")
