"""PostgreSQL backend (``postgresql://user:password@host:5432/db?schema=botmemory``).

For several processes on several hosts sharing one database. asyncpg, with a pool
of connections per process. URL parameters of botmemory's own (the others go to
asyncpg and the server):

- ``schema``: the schema of botmemory's tables, created if missing (default ``public``).
- ``pool_min``, ``pool_max``: connections kept open and at most, per process (1, 10).
- ``lock_timeout``: how long a turn waits for its session, or any call for a free
  connection, before :class:`~botmemory.errors.LockTimeoutError` (``30s``; ``never``).
- ``connect_timeout``: how long to try to connect (``10s``).

Across processes, a turn holds a session-level advisory lock on (schema, bot,
session) on a connection of its own; everything the turn's task asks of the storage
meanwhile runs on that connection. The janitor holds another advisory lock, taken
with ``pg_try_advisory_lock``: a second process skips its run. The server releases
the locks of a process that dies with its connection.

A turn takes four round trips: lock, load (one query), commit (one statement, so one
transaction), unlock. Every janitor batch is one statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from botmemory.durations import format_duration, parse_duration
from botmemory.errors import (
    BackendError,
    BackendUnavailableError,
    BotMemoryError,
    ConfigError,
    InvalidDurationError,
    LockTimeoutError,
)
from botmemory.storage import mask_url
from botmemory.storage import postgres_sql as sql
from botmemory.storage.base import (
    KvsModifier,
    KvsRecord,
    SessionRecord,
    Storage,
    StoredVar,
    TurnKeys,
    TurnSnapshot,
    TurnWrite,
    UserRecords,
    VarKey,
    VarUpdate,
)
from botmemory.storage.postgres_schema import apply_migrations, check_schema_name, quote_ident

__all__ = ["PostgresOptions", "PostgresStorage", "parse_postgres_url"]

T = TypeVar("T")

_OWN_PARAMS: Final = ("schema", "pool_min", "pool_max", "lock_timeout", "connect_timeout")
_DRIVER_ERRORS: Final = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,  # includes ConnectionError and TimeoutError
)
_UNAVAILABLE_STATES: Final = {"57P01", "57P02", "57P03", "53300"}
"""Shutdown, crash, starting up, too many connections."""


@dataclass(frozen=True, slots=True)
class PostgresOptions:
    """A PostgreSQL URL taken apart: the DSN for asyncpg and botmemory's own parameters."""

    dsn: str
    schema: str = "public"
    pool_min: int = 1
    pool_max: int = 10
    lock_timeout: float | None = 30.0
    """Seconds; ``None`` waits for ever."""
    connect_timeout: float = 10.0
    """Seconds."""


def parse_postgres_url(url: str) -> PostgresOptions:
    """Split ``url`` into the DSN asyncpg gets and botmemory's own parameters."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    own = {name: query.pop(name) for name in _OWN_PARAMS if name in query}
    query.setdefault("application_name", "botmemory")
    options = PostgresOptions(
        dsn=urlunsplit(parts._replace(query=urlencode(query))),
        schema=check_schema_name(own.get("schema", "public")),
        pool_min=_whole(own, "pool_min", 1, minimum=0),
        pool_max=_whole(own, "pool_max", 10, minimum=1),
        lock_timeout=_duration(own, "lock_timeout", "30s"),
        connect_timeout=_duration(own, "connect_timeout", "10s") or 10.0,
    )
    if options.pool_min > options.pool_max:
        raise ConfigError([f"database.url: pool_min={options.pool_min} is over pool_max"])
    return options


def _whole(params: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    value = params.get(name, str(default))
    if not value.isdigit() or int(value) < minimum:
        raise ConfigError(
            [f"database.url: {name}={value!r} must be a whole number, at least {minimum}"]
        )
    return int(value)


def _duration(params: dict[str, str], name: str, default: str) -> float | None:
    value = params.get(name, default)
    seconds = parse_duration(value, where=f"database.url {name}", allow_never=True)
    if seconds is not None and seconds <= 0:
        raise InvalidDurationError(f"database.url {name}: {value!r} must be longer than zero")
    return seconds


def _lock_key(*parts: str) -> int:
    """Return a 64-bit advisory lock key for ``parts`` (a collision only costs waiting)."""
    digest = hashlib.blake2b(json.dumps(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def _reset_nothing(conn: Any) -> None:
    """Pool reset: we set no session state and unlock what we lock; asyncpg rolls back."""


@dataclass(eq=False)
class _Held:
    """A connection a task holds for a turn or a janitor run, with the lock it took."""

    storage: PostgresStorage
    conn: Any
    busy: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Serializes tasks spawned by the holder: a connection runs one query at a time."""
    active: bool = True


_HELD: ContextVar[_Held | None] = ContextVar("botmemory_postgres_held", default=None)


class PostgresStorage(Storage):
    """Store everything in one PostgreSQL schema, shared by any number of processes."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.options = parse_postgres_url(url)
        self._pool: Any = None

    # -- connections, locks and errors ---------------------------------------------------
    async def open(self) -> None:
        opts = self.options
        lock_ms = "0" if opts.lock_timeout is None else str(max(1, round(opts.lock_timeout * 1000)))
        with self._errors():
            self._pool = await asyncpg.create_pool(
                opts.dsn,
                min_size=opts.pool_min,
                max_size=opts.pool_max,
                timeout=opts.connect_timeout,
                server_settings={"search_path": quote_ident(opts.schema), "lock_timeout": lock_ms},
                reset=_reset_nothing,
            )
        try:
            async with self._connection() as conn:
                await apply_migrations(conn, opts.schema, _lock_key("migrate", opts.schema))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=10)
        except Exception:  # a server gone or a connection still held: drop them all
            pool.terminate()

    def _where(self) -> str:
        return f"PostgreSQL at {mask_url(self.url)}"

    def _translate(self, exc: BaseException, conn: Any = None) -> BackendError:
        if isinstance(exc, asyncpg.exceptions.LockNotAvailableError):
            waited = format_duration(self.options.lock_timeout)
            return LockTimeoutError(
                f"{self._where()}: a lock was not granted within lock_timeout={waited} "
                f"(another turn of the session still runs?): {exc}"
            )
        if (
            isinstance(exc, asyncpg.PostgresConnectionError | OSError)
            or getattr(exc, "sqlstate", None) in _UNAVAILABLE_STATES
            or (conn is not None and conn.is_closed())
        ):
            return BackendUnavailableError(f"{self._where()} is unavailable: {exc}")
        return BackendError(f"{self._where()} failed: {exc}")

    @contextlib.contextmanager
    def _errors(self, conn: Any = None) -> Iterator[None]:
        """Translate driver and socket errors into botmemory's own."""
        try:
            yield
        except BotMemoryError:
            raise
        except _DRIVER_ERRORS as exc:
            raise self._translate(exc, conn) from exc

    async def _acquire(self) -> Any:
        """Return a connection from the pool, waiting at most ``lock_timeout`` for one."""
        if self._pool is None:
            raise BackendUnavailableError(f"{self._where()}: the storage is closed")
        deadline = asyncio.timeout(self.options.lock_timeout)
        try:
            async with deadline:
                return await self._pool.acquire()
        except TimeoutError as exc:
            if not deadline.expired():
                raise self._translate(exc) from exc  # the connect timeout
            raise LockTimeoutError(
                f"{self._where()}: no free connection within lock_timeout="
                f"{format_duration(self.options.lock_timeout)}: all pool_max="
                f"{self.options.pool_max} are in use; raise pool_max or lock_timeout"
            ) from exc
        except _DRIVER_ERRORS as exc:
            raise self._translate(exc) from exc

    async def _release(self, conn: Any) -> None:
        if self._pool is not None:
            with contextlib.suppress(Exception):  # the pool terminates what it cannot reset
                await self._pool.release(conn)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """Yield the connection this task holds for a turn or the janitor, else a pooled one."""
        held = _HELD.get()
        if held is not None and held.active and held.storage is self:
            async with held.busy:
                with self._errors(held.conn):
                    yield held.conn
            return
        conn = await self._acquire()
        try:
            with self._errors(conn):
                yield conn
        finally:
            await self._release(conn)

    async def _lock_connection(self, key: int, *, wait: bool) -> tuple[Any, bool]:
        """Take a connection and advisory lock ``key`` on it (only try, unless ``wait``)."""
        query = sql.LOCK if wait else sql.TRY_LOCK
        for retry in (True, False):
            conn = await self._acquire()
            try:
                with self._errors(conn):
                    return conn, bool(await conn.fetchval(query, key))
            except LockTimeoutError:
                await self._release(conn)
                raise
            except BackendUnavailableError:
                await self._release(conn)
                if not retry:  # else it died idle in the pool (server restart): once more
                    raise
            except BaseException:
                conn.terminate()  # the lock may have been granted as we gave up
                await self._release(conn)
                raise
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def _advisory_lock(self, key: int, *, wait: bool) -> AsyncIterator[bool]:
        """Hold advisory lock ``key``; the task's storage calls meanwhile use its connection."""
        conn, acquired = await self._lock_connection(key, wait=wait)
        if not acquired:
            await self._release(conn)
            yield False
            return
        held = _Held(self, conn)
        token = _HELD.set(held)
        try:
            yield True
        finally:
            _HELD.reset(token)
            async with held.busy:
                held.active = False
                try:
                    await conn.execute(sql.UNLOCK, key)
                except BaseException as exc:
                    conn.terminate()  # the server drops the locks of a session that ends
                    if not isinstance(exc, Exception):
                        raise
                finally:
                    await self._release(conn)

    def session_lock(self, bot_id: str, session_key: str) -> AbstractAsyncContextManager[None]:
        """Serialize the turns of one session across every process sharing the database."""
        return self._session_lock(bot_id, session_key)

    @asynccontextmanager
    async def _session_lock(self, bot_id: str, session_key: str) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(self.options.lock_timeout):
                    await stack.enter_async_context(self._local_session_lock(bot_id, session_key))
            except TimeoutError as exc:
                raise LockTimeoutError(
                    f"another turn of session {session_key} held it longer than lock_timeout="
                    f"{format_duration(self.options.lock_timeout)} in this process"
                ) from exc
            key = _lock_key("session", self.options.schema, bot_id, session_key)
            await stack.enter_async_context(self._advisory_lock(key, wait=True))
            yield

    def janitor_lock(self) -> AbstractAsyncContextManager[bool]:
        """Hold the janitor lock of the database; yield ``False`` if another process has it."""
        return self._advisory_lock(_lock_key("janitor", self.options.schema), wait=False)

    # -- turns ---------------------------------------------------------------------
    async def load_turn(self, keys: TurnKeys) -> TurnSnapshot:
        async with self._connection() as conn:
            rows = await conn.fetch(sql.LOAD_TURN, keys.bot_id, keys.user_key, keys.session_key)
        first = rows[0]
        session = (
            None if first[0] is None else SessionRecord(keys.bot_id, keys.session_key, *first[0:5])
        )
        found: dict[str, list[StoredVar]] = {"user": [], "bot": [], "session": [], "temp": []}
        for row in rows:
            if row[5] is not None:
                found[row[5]].append(
                    StoredVar(VarKey(row[5], keys.bot_id, row[6], row[7]), *row[8:])
                )
        return TurnSnapshot(found["user"], found["bot"], session, found["session"], found["temp"])

    async def commit_turn(self, write: TurnWrite) -> None:
        s = write.session
        resets = (
            ["session", "temp"] if write.reset_session else ["temp"] if write.reset_temp else []
        )
        upserts = sorted(write.upserts, key=lambda v: _key_tuple(v.key))  # a fixed lock order
        async with self._connection() as conn:
            await conn.execute(
                sql.COMMIT_TURN,
                *(s.bot_id, s.key, s.user_key, s.started_at, s.last_seen, s.expires_at),
                s.temp_expires_at,
                resets,
                *_columns([_key_tuple(k) for k in write.deletes], 4),
                *_columns(
                    [
                        (*_key_tuple(v.key), v.value, v.changed_at, v.expires_at, v.field_times)
                        for v in upserts
                    ],
                    8,
                ),
            )

    # -- key-value store -------------------------------------------------------------
    async def kvs_get(self, namespace: str, key: str, now: float) -> KvsRecord | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(sql.KVS_GET, namespace, key, now)
        return None if row is None else KvsRecord(row[0], row[1])

    async def kvs_put(self, namespace: str, key: str, record: KvsRecord) -> None:
        async with self._connection() as conn:
            await conn.execute(sql.KVS_UPSERT, namespace, key, record.value, record.expires_at)

    async def kvs_modify(self, namespace: str, key: str, now: float, modify: KvsModifier[T]) -> T:
        """Lock the key's row, apply ``modify``, store; ``modify`` may be called again."""
        async with self._connection() as conn:
            while True:
                async with conn.transaction():
                    row = await conn.fetchrow(sql.KVS_LOCK_ROW, namespace, key)
                    live = row is not None and (row[1] is None or row[1] > now)
                    record, result = modify(KvsRecord(row[0], row[1]) if live else None)
                    if await _kvs_store(conn, namespace, key, record, exists=row is not None):
                        return result
                # another process created the key since we looked: read it again

    async def kvs_delete(self, namespace: str, key: str, now: float) -> bool:
        async with self._connection() as conn:
            row = await conn.fetchrow(sql.KVS_DELETE, namespace, key)
        return row is not None and (row[0] is None or row[0] > now)

    async def kvs_keys(self, namespace: str, prefix: str, now: float) -> list[str]:
        async with self._connection() as conn:
            rows = await conn.fetch(sql.KVS_KEYS, namespace, prefix, now)
        return [row[0] for row in rows]

    async def kvs_delete_prefix(self, namespace: str, prefix: str) -> int:
        async with self._connection() as conn:
            return _affected(await conn.execute(sql.KVS_DELETE_PREFIX, namespace, prefix))

    # -- users -------------------------------------------------------------------------
    async def load_user(self, bot_id: str, user_key: str) -> UserRecords:
        async with self._connection() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                sessions = [
                    _session(r) for r in await conn.fetch(sql.USER_SESSIONS, bot_id, user_key)
                ]
                rows = await conn.fetch(sql.USER_VARS, bot_id, user_key, [s.key for s in sessions])
        found = [_var(r) for r in rows]
        return UserRecords(
            [v for v in found if v.key.scope == "user"],
            sessions,
            [v for v in found if v.key.scope == "session"],
            [v for v in found if v.key.scope == "temp"],
        )

    async def delete_user(self, bot_id: str, user_key: str) -> dict[str, int]:
        async with self._connection() as conn:
            row = await conn.fetchrow(sql.DELETE_USER, bot_id, user_key)
        return {"user_variables": row[0], "sessions": row[1], "session_variables": row[2]}

    # -- retention and the janitor -------------------------------------------------------
    async def expired_user_vars(self, now: float, limit: int) -> list[StoredVar]:
        async with self._connection() as conn:
            return [_var(r) for r in await conn.fetch(sql.EXPIRED_USER_VARS, now, limit)]

    async def scan_user_vars(
        self, bot_id: str | None, after: VarKey | None, limit: int
    ) -> list[StoredVar]:
        start = ("", "", "") if after is None else (after.bot_id, after.owner, after.name)
        async with self._connection() as conn:
            return [_var(r) for r in await conn.fetch(sql.SCAN_USER_VARS, bot_id, *start, limit)]

    async def update_user_vars(self, updates: Sequence[VarUpdate]) -> list[VarUpdate]:
        if not updates:
            return []
        columns = _columns(
            [
                (*_key_tuple(u.key), u.changed_at, u.value, u.expires_at, u.field_times)
                for u in updates
            ],
            8,
        )
        async with self._connection() as conn:
            rows = await conn.fetch(sql.UPDATE_USER_VARS, *columns)
        applied = {tuple(row) for row in rows}
        return [u for u in updates if _key_tuple(u.key) in applied]

    async def expired_sessions(self, now: float, limit: int) -> list[SessionRecord]:
        async with self._connection() as conn:
            return [_session(r) for r in await conn.fetch(sql.EXPIRED_SESSIONS, now, limit)]

    async def delete_sessions(self, sessions: Sequence[SessionRecord]) -> int:
        if not sessions:
            return 0
        columns = _columns([(s.bot_id, s.key, s.last_seen) for s in sessions], 3)
        async with self._connection() as conn:
            return int(await conn.fetchval(sql.DELETE_SESSIONS, *columns))

    async def expired_temps(self, now: float, limit: int) -> list[SessionRecord]:
        async with self._connection() as conn:
            return [_session(r) for r in await conn.fetch(sql.EXPIRED_TEMPS, now, limit)]

    async def clear_temps(self, sessions: Sequence[SessionRecord]) -> int:
        if not sessions:
            return 0
        columns = _columns([(s.bot_id, s.key, s.temp_expires_at) for s in sessions], 3)
        async with self._connection() as conn:
            return int(await conn.fetchval(sql.CLEAR_TEMPS, *columns))

    async def delete_expired_kvs(self, now: float, limit: int) -> int:
        async with self._connection() as conn:
            return _affected(await conn.execute(sql.DELETE_EXPIRED_KVS, now, limit))

    async def get_meta(self, name: str) -> str | None:
        async with self._connection() as conn:
            value: str | None = await conn.fetchval(sql.GET_META, name)
        return value

    async def set_meta(self, name: str, value: str) -> None:
        async with self._connection() as conn:
            await conn.execute(sql.SET_META, name, value)


async def _kvs_store(
    conn: Any, namespace: str, key: str, record: KvsRecord | None, *, exists: bool
) -> bool:
    """Write ``record`` over the locked row; ``False`` if another process inserted it first."""
    if record is None:
        if exists:
            await conn.execute(sql.KVS_DELETE, namespace, key)
        return True
    if exists:
        await conn.execute(sql.KVS_UPDATE, namespace, key, record.value, record.expires_at)
        return True
    return (
        _affected(
            await conn.execute(sql.KVS_INSERT, namespace, key, record.value, record.expires_at)
        )
        == 1
    )


def _key_tuple(key: VarKey) -> tuple[str, str, str, str]:
    return (key.bot_id, key.scope, key.owner, key.name)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Turn rows into ``width`` column lists, for ``unnest($1::text[], ...)``."""
    return [[row[i] for row in rows] for i in range(width)]


def _affected(status: str) -> int:
    """Return the row count of a command status such as ``DELETE 3``."""
    return int(status.rsplit(" ", 1)[-1])


def _var(row: Sequence[Any]) -> StoredVar:
    return StoredVar(VarKey(row[1], row[0], row[2], row[3]), row[4], row[5], row[6], row[7])


def _session(row: Sequence[Any]) -> SessionRecord:
    return SessionRecord(*row)
