"""Connections to PostgreSQL for one process: the pool, advisory locks, error translation.

A task that holds an advisory lock (a turn holds its session's, the janitor its own)
holds the connection the lock lives on, and every storage call of that task runs on
it: a turn needs one connection, whatever it does, so a full pool cannot deadlock
turns that call the key-value store, and the turn's commit cannot happen after its
lock was lost with its connection. The server releases the locks of a connection
that ends, so a process that dies leaves no lock behind.

Every asyncpg and socket error is translated into botmemory's at one place,
:meth:`PostgresPool._guard` (what each error means is in :mod:`.errors`). Every call
waits at most ``command_timeout`` for the server's answer (plus ``lock_timeout`` when it
waits for a lock): a frozen server fails calls with
:class:`~botmemory.errors.BackendUnavailableError`.

Behind PgBouncer in transaction mode (``pgbouncer=true``) a lock is transaction-scoped
instead, on a connection of its own (:meth:`PostgresPool._xact_lock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg

from botmemory.durations import Seconds, format_duration, parse_duration
from botmemory.errors import BackendUnavailableError, BotMemoryError, LockTimeoutError
from botmemory.storage.postgres.errors import DRIVER_ERRORS, translate
from botmemory.storage.postgres.sql import LOCK, TRY_LOCK, UNLOCK, quote_ident
from botmemory.storage.postgres.url import check_search_path, parse_postgres_url
from botmemory.urls import mask_url

__all__ = ["PostgresPool", "lock_key"]

_CLOSE_WAIT: Final = parse_duration("10s")
UNBOUNDED: Final = parse_duration("3650d")
"""The client-side timeout of a lock wait with ``lock_timeout=never``: none, in effect."""
_XACT_LOCK: Final = "SELECT true FROM pg_advisory_xact_lock($1)"
_POLL_FIRST: Final = parse_duration("1ms")
_POLL_MAX: Final = parse_duration("100ms")
"""Bounds of the random wait between two tries of a lock behind PgBouncer (doubling)."""
_XACT_TRY_LOCK: Final = "SELECT pg_try_advisory_xact_lock($1)"
_SEARCH_PATH: Final = (
    "SELECT current_setting('search_path'), "
    "EXISTS (SELECT FROM pg_namespace WHERE nspname = current_user)"
)


class _OneLine(logging.Filter):
    """Turn a record's traceback into a short reason at the end of its one line.

    asyncpg's pool logs a whole traceback each time it fails to reconnect: during an
    outage, pages of them, for one fact that botmemory's own errors already report.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            record.msg, record.args = "%s (%s)", (record.getMessage(), reason)
            record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("asyncpg.pool").addFilter(_OneLine())


def _now() -> float:
    return time.monotonic()


@functools.lru_cache(maxsize=65536)  # a turn's keys come back with its session's next turn
def lock_key(*parts: str) -> int:
    """Return the 64-bit advisory lock key of ``parts`` (a collision only costs waiting).

    Every process sharing a database must compute the same keys: changing this function
    lets processes of two versions run turns of one session at once.
    """
    digest = hashlib.blake2b(json.dumps(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def _reset_nothing(conn: Any) -> None:
    """Reset a released connection: asyncpg rolls back; we set nothing and unlock our locks.

    The default reset costs a round trip per release.
    """


def _terminate(conn: Any) -> None:
    with contextlib.suppress(asyncpg.InterfaceError):  # lost, and given back already
        conn.terminate()


@dataclass(eq=False)
class _Held:
    """A connection a task holds with an advisory lock on it."""

    pool: PostgresPool
    conn: Any
    key: int
    busy: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Serializes the tasks the holder spawns: a connection runs one query at a time."""
    active: bool = True
    locked: bool = True
    """False once a statement released the lock early (:meth:`PostgresPool.unlock_sql`)."""


_HELD: ContextVar[_Held | None] = ContextVar("botmemory_postgres_held", default=None)


class PostgresPool:
    """The connections of one process to one PostgreSQL database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.options = parse_postgres_url(url)
        self._pool: Any = None

    async def open(self) -> None:
        """Create the pool and its first ``pool_min`` connections."""
        opts = self.options
        lock_ms = 0 if opts.lock_timeout is None else max(1, round(opts.lock_timeout * 1000))
        settings = {
            "search_path": quote_ident(opts.schema),
            "lock_timeout": str(lock_ms),
            # a statement after a lock must see what committed before it was granted
            "default_transaction_isolation": "read committed",
        }
        async with self._guard():
            self._pool = await asyncpg.create_pool(
                opts.dsn,
                min_size=opts.pool_min,
                max_size=opts.pool_max,
                timeout=opts.connect_timeout,
                command_timeout=opts.command_timeout,
                server_settings={} if opts.pgbouncer else settings,
                statement_cache_size=0 if opts.pgbouncer else 100,
                reset=_reset_nothing,
            )
        if opts.pgbouncer:
            try:
                await self._check_search_path()
            except BaseException:
                await self.close()
                raise

    async def _check_search_path(self) -> None:
        """Refuse a PgBouncer whose connections would not find the tables in ``schema``."""
        async with self.connection() as conn:
            path, user_schema = await conn.fetchrow(_SEARCH_PATH)
        check_search_path(self.options.schema, path, has_user_schema=user_schema)

    async def close(self) -> None:
        """Close every connection, waiting up to 10 s for those in use. Safe to call twice."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=_CLOSE_WAIT)
        except Exception:  # the server is gone, or a connection is still in use
            pool.terminate()

    @property
    def lock_wait(self) -> Seconds:
        """The client-side timeout of a statement that waits for a lock: both bounds
        (with ``lock_timeout=never``, :data:`UNBOUNDED`: asyncpg's ``None`` would mean
        ``command_timeout``)."""
        lock_timeout = self.options.lock_timeout
        if lock_timeout is None:
            return UNBOUNDED
        return Seconds(lock_timeout + self.options.command_timeout)

    # -- errors --------------------------------------------------------------------------
    def _where(self) -> str:
        return f"PostgreSQL at {mask_url(self.url)}"

    def translate(self, exc: BaseException, conn: Any = None) -> BotMemoryError:
        """Return botmemory's error for a driver or socket error (on ``conn``)."""
        return translate(
            exc,
            self._where(),
            command_timeout=self.options.command_timeout,
            lock_timeout=self.options.lock_timeout,
            conn=conn,
        )

    @asynccontextmanager
    async def _guard(self, conn: Any = None) -> AsyncIterator[None]:
        """Translate the driver and socket errors raised inside (on ``conn``).

        After a lost connection every pooled one is renewed at its next use: the server
        may have restarted, and the others are then as dead as this one.
        """
        try:
            yield
        except BotMemoryError:
            raise
        except DRIVER_ERRORS as exc:
            error = self.translate(exc, conn)
            if isinstance(error, BackendUnavailableError) and self._pool is not None:
                await self._renew_all(conn)
            raise error from exc

    async def _renew_all(self, failed: Any) -> None:
        """Drop ``failed`` and the idle connections now, and renew the rest at their next use.

        Dropped at once rather than closed politely: asyncpg would close them in tasks of
        its own that, with the server frozen, each end in a traceback nobody catches.
        """
        if failed is not None:
            _terminate(failed)
        for holder in getattr(self._pool, "_holders", ()):  # asyncpg's, when it has them
            idle = getattr(holder, "_in_use", True) is None
            conn = getattr(holder, "_con", None)
            if idle and conn is not None:
                _terminate(conn)
        await self._pool.expire_connections()

    # -- connections ---------------------------------------------------------------------
    async def _acquire(self) -> Any:
        """Return a pooled connection, waiting at most ``lock_timeout`` for a free one."""
        if self._pool is None:
            raise BackendUnavailableError(f"{self._where()}: the storage is closed")
        deadline = asyncio.timeout(self.options.lock_timeout)
        try:
            async with deadline:
                return await self._pool.acquire()
        except TimeoutError as exc:
            if not deadline.expired():
                raise BackendUnavailableError(
                    f"{self._where()} could not be reached within connect_timeout="
                    f"{format_duration(self.options.connect_timeout)}"
                ) from exc
            raise LockTimeoutError(
                f"{self._where()}: no free connection within lock_timeout="
                f"{format_duration(self.options.lock_timeout)}: all pool_max="
                f"{self.options.pool_max} are in use; raise pool_max or lock_timeout"
            ) from exc
        except DRIVER_ERRORS as exc:
            raise self.translate(exc) from exc  # no connection: nothing to renew

    async def _release(self, conn: Any) -> None:
        if self._pool is not None:
            with contextlib.suppress(Exception):  # the pool terminates what it cannot reset
                await self._pool.release(conn)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """Yield the connection this task holds with a lock, else a pooled one."""
        held = _HELD.get()
        if held is not None and held.active and held.pool is self:
            async with held.busy, self._guard(held.conn):
                yield held.conn
            return
        conn = await self._acquire()
        try:
            async with self._guard(conn):
                yield conn
        finally:
            await self._release(conn)

    # -- advisory locks ------------------------------------------------------------------
    def unlock_sql(self, key: int) -> str:
        """Return SQL that releases lock ``key``, if this task holds it, for the last query.

        For a statement that ends what the lock guards (a turn's ``COMMIT``): appended
        to it, the lock goes in the same round trip and the holder's exit sends none.
        Call :meth:`unlocked` once that statement has run. Empty if ``key`` is not held.
        """
        held = _HELD.get()
        if held is None or held.pool is not self or held.key != key or not held.locked:
            return ""
        return f"; SELECT pg_advisory_unlock({int(key)})"

    def unlocked(self, key: int) -> None:
        """Note that a statement from :meth:`unlock_sql` released lock ``key``."""
        held = _HELD.get()
        if held is not None and held.pool is self and held.key == key:
            held.locked = False

    def advisory_lock(self, key: int, *, wait: bool) -> AbstractAsyncContextManager[bool]:
        """Hold advisory lock ``key`` (or yield ``False`` if taken, unless ``wait``).

        A session-level lock, on the connection this task's calls of :meth:`connection`
        then get; behind PgBouncer a transaction-level one (:meth:`_xact_lock`).
        """
        if self.options.pgbouncer:
            return self._xact_lock(key, wait=wait)
        return self._session_lock(key, wait=wait)

    @asynccontextmanager
    async def _xact_lock(self, key: int, *, wait: bool) -> AsyncIterator[bool]:
        """Hold ``key`` in a transaction left open on a connection of its own.

        PgBouncer keeps a client's open transaction on one server connection, and drops
        that server connection, its locks with it, if the client goes away. The task's
        calls use other connections. A waiter tries again after a short random wait
        rather than holding a server connection while it waits, up to ``lock_timeout``.
        """
        deadline = None if self.options.lock_timeout is None else _now() + self.options.lock_timeout
        for attempt in itertools.count():
            conn = await self._acquire()
            try:
                async with self._guard(conn):
                    await conn.execute("BEGIN")
                    acquired = bool(await conn.fetchval(_XACT_TRY_LOCK, key))
                if acquired or not wait:
                    yield acquired
                    return
            finally:
                await self._end_transaction(conn)
            if deadline is not None and _now() > deadline:
                raise LockTimeoutError(
                    f"{self._where()}: a lock was not granted within lock_timeout="
                    f"{format_duration(self.options.lock_timeout)}"
                )
            await asyncio.sleep(random.uniform(0, min(_POLL_MAX, _POLL_FIRST * 2**attempt)))

    async def _end_transaction(self, conn: Any) -> None:
        """Roll back ``conn``'s transaction (its locks go) and give it back, or drop it."""
        try:
            await conn.execute("ROLLBACK")
        except BaseException as exc:
            _terminate(conn)
            if not isinstance(exc, Exception):
                raise
        finally:
            await self._release(conn)

    @asynccontextmanager
    async def migration_connection(self, key: int) -> AsyncIterator[Any]:
        """Yield the connection the migrations run on; they lock ``key`` themselves.

        Behind PgBouncer their session-level lock is not enough: they then run in one
        transaction that holds ``key`` too (DDL is transactional in PostgreSQL), and a
        failure drops the connection, so that no lock outlives it.
        """
        async with self.connection() as conn:
            if not self.options.pgbouncer:
                yield conn
                return
            try:
                async with conn.transaction():
                    await conn.execute(_XACT_LOCK, key, timeout=self.lock_wait)
                    yield conn
            except BaseException:
                _terminate(conn)
                raise

    @asynccontextmanager
    async def _session_lock(self, key: int, *, wait: bool) -> AsyncIterator[bool]:
        query, within = (LOCK, self.lock_wait) if wait else (TRY_LOCK, None)
        conn, rows = await self._lock_connection(within, query, key)
        if not rows[0][0]:
            await self._release(conn)
            yield False
            return
        async with self._holding(conn, key):
            yield True

    @asynccontextmanager
    async def locked_fetch(self, key: int, query: str, *args: object) -> AsyncIterator[list[Any]]:
        """Hold session-level advisory lock ``key``, which ``query`` takes, waiting, before
        it reads (:data:`~.sql.LOCK_LOAD_TURN`): yield its rows. One round trip where
        :meth:`advisory_lock` and a query make two. Not behind PgBouncer."""
        conn, rows = await self._lock_connection(self.lock_wait, query, *args)
        async with self._holding(conn, key):
            yield rows

    @asynccontextmanager
    async def _holding(self, conn: Any, key: int) -> AsyncIterator[None]:
        """Lend ``conn``, on which this task holds lock ``key``, to the task's calls; then
        unlock it (unless a statement did) and give it back."""
        held = _Held(self, conn, key)
        token = _HELD.set(held)
        try:
            yield
        finally:
            _HELD.reset(token)
            held.active = False
            try:
                async with held.busy:  # a query of a task the holder spawned ends first
                    pass
            finally:
                if held.locked:
                    await self._unlock(conn, key)
                else:
                    await self._release(conn)

    async def _lock_connection(
        self, within: Seconds | None, query: str, *args: object
    ) -> tuple[Any, list[Any]]:
        """Take a connection and run ``query``, which takes a lock on it, answered ``within``
        (``None``: ``command_timeout``); retry once on a connection found dead."""
        for retry in (True, False):
            conn = await self._acquire()
            try:
                async with self._guard(conn):
                    return conn, await conn.fetch(query, *args, timeout=within)
            except LockTimeoutError:
                if query not in (LOCK, TRY_LOCK):  # a statement after the lock timed out
                    _terminate(conn)  # the server releases the lock with the connection
                await self._release(conn)
                raise
            except BackendUnavailableError:
                await self._release(conn)
                if not retry:  # else it died idle in the pool: once more, on a new one
                    raise
            except BaseException:
                _terminate(conn)  # the lock may have been granted as we gave up
                await self._release(conn)
                raise
        raise AssertionError("unreachable")

    async def _unlock(self, conn: Any, key: int) -> None:
        try:
            await conn.execute(UNLOCK, key)
        except BaseException as exc:
            _terminate(conn)  # the server releases the locks of a connection that ends
            if not isinstance(exc, Exception):
                raise
        finally:
            await self._release(conn)
