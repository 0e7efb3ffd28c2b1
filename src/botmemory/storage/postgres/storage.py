"""PostgreSQL backend (``postgresql://user:password@host:5432/db?schema=botmemory``).

For several processes on several hosts sharing one database, through asyncpg.
URL parameters of botmemory's own (the others go to asyncpg and the server):

- ``schema``: the schema of botmemory's tables, created if missing (default ``public``).
- ``pool_min``, ``pool_max``: connections kept open and at most, per process (1, 10).
- ``lock_timeout``: how long a turn waits for its session, or any call for a free
  connection, before :class:`~botmemory.errors.LockTimeoutError` (``30s``; ``never``).
- ``connect_timeout``: how long to try to connect (``10s``).
- ``command_timeout``: how long any call waits for an answer, beyond a lock wait, before
  :class:`~botmemory.errors.BackendUnavailableError` (``30s``).
- ``pgbouncer``: ``true`` when the URL leads to PgBouncer in transaction mode (``false``):
  no statement cache, no session lock across processes, the retry, janitor and
  migration locks transaction-scoped (docs/backends.md, "Behind PgBouncer").

A turn holds a session-level advisory lock on (schema, bot, session) for its whole
duration, on a connection that its load, its commit and its key-value calls use
(:mod:`botmemory.storage.postgres.pool`). Its load is one query; its commit one short
transaction that locks the keys it touches, checks their versions and writes
(:mod:`botmemory.storage.postgres.turn`). The janitor takes its
lock with ``pg_try_advisory_lock``: a second process skips its run. Each janitor
batch is one statement.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from botmemory.storage.base import (
    KvsModifier,
    KvsRecord,
    SessionCursor,
    SessionRecord,
    SessionUpdate,
    Storage,
    StoredVar,
    TurnKeys,
    TurnSnapshot,
    TurnWrite,
    UserRecords,
    VarKey,
    VarUpdate,
    final_kvs,
    final_vars,
    new_version,
)
from botmemory.storage.postgres import sql, turn
from botmemory.storage.postgres.pool import PostgresPool, lock_key

__all__ = ["PostgresStorage"]

T = TypeVar("T")
ERASURE_PASSES = 5
"""At most this many deletions of a user's rows, until one finds nothing (see delete_user)."""


class PostgresStorage(Storage):
    """Store everything in one PostgreSQL schema, shared by any number of processes."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.db = PostgresPool(url)
        self.schema = self.db.options.schema
        self._kvs_swept = (math.nan, -math.inf)
        """The janitor run's time and the expiry its last KVS batch reached."""

    async def open(self) -> None:
        await self.db.open()
        try:
            key = lock_key("migrate", self.schema)
            async with self.db.migration_connection(key) as conn:
                await sql.apply_migrations(conn, self.schema, key)
        except BaseException:
            await self.db.close()
            raise

    async def close(self) -> None:
        await self.db.close()

    def session_lock(self, bot_id: str, session_key: str) -> AbstractAsyncContextManager[None]:
        """Serialize the turns of one session across every process sharing the database."""
        return self._session_lock(bot_id, session_key)

    @asynccontextmanager
    async def _session_lock(self, bot_id: str, session_key: str) -> AsyncIterator[None]:
        async with self._local_lock(bot_id, session_key):
            if self.db.options.pgbouncer:  # commits' version checks alone order turns
                yield
                return
            key = self._session_key(bot_id, session_key)
            async with self.db.advisory_lock(key, wait=True):
                yield

    def _session_key(self, bot_id: str, session_key: str) -> int:
        """The advisory lock key of a session, which its turns hold from load to commit."""
        return lock_key("session", self.schema, bot_id, session_key)

    def _local_lock(self, bot_id: str, session_key: str) -> AbstractAsyncContextManager[None]:
        """Hold the session's lock in this process, waiting at most ``lock_timeout``."""
        return self._waited_session_lock(
            bot_id, session_key, self.db.options.lock_timeout, "lock_timeout"
        )

    def locked_turn(self, keys: TurnKeys) -> AbstractAsyncContextManager[TurnSnapshot]:
        """Hold the session's lock and yield the turn's rows: one round trip for both
        (:data:`~.sql.LOCK_LOAD_TURN`), except behind PgBouncer."""
        if self.db.options.pgbouncer:
            return super().locked_turn(keys)
        return self._locked_turn(keys)

    @asynccontextmanager
    async def _locked_turn(self, keys: TurnKeys) -> AsyncIterator[TurnSnapshot]:
        bot_id, session_key = keys.bot_id, keys.session_key
        key = self._session_key(bot_id, session_key)
        async with self._local_lock(bot_id, session_key):
            args = (bot_id, keys.user_key, session_key, key)
            async with self.db.locked_fetch(key, sql.LOCK_LOAD_TURN, *args) as rows:
                yield _snapshot(keys, rows)

    def retry_lock(self, bot_id: str) -> AbstractAsyncContextManager[object]:
        """Hold the bot's retry lock of the database (an advisory lock)."""
        return self.db.advisory_lock(lock_key("retry", self.schema, bot_id), wait=True)

    def janitor_lock(self) -> AbstractAsyncContextManager[bool]:
        """Hold the janitor lock of the database; yield ``False`` if another process has it."""
        return self.db.advisory_lock(lock_key("janitor", self.schema), wait=False)

    # -- turns ---------------------------------------------------------------------
    async def load_turn(self, keys: TurnKeys) -> TurnSnapshot:
        async with self.db.connection() as conn:
            rows = await conn.fetch(sql.LOAD_TURN, keys.bot_id, keys.user_key, keys.session_key)
        return _snapshot(keys, rows)

    async def commit_turn(self, write: TurnWrite) -> None:
        """Lock, check and write in one transaction (see :mod:`.turn`).

        Four round trips: ``BEGIN`` with the locks, the read, the write, and ``COMMIT``,
        which also releases the turn's session lock when this task holds it.
        """
        keys, exclusive = turn.commit_locks(self.schema, write)
        read = turn.read_statement(write)
        s = write.session
        session = None if s is None else self._session_key(s.bot_id, s.key)
        async with self.db.connection() as conn:
            try:
                await conn.execute(sql.begin_locked(keys, exclusive), timeout=self.db.lock_wait)
                rows = [] if read is None else await conn.fetch(read[0], *read[1])
                current = turn.verify(write, rows)
                variables = final_vars(write, current.vars)
                records = final_kvs(write, current.kvs)
                statement, params = turn.write_statement(write, variables, records)
                await conn.execute(statement, *params)
            except BaseException:
                await _rollback(conn)
                raise
            unlock = "" if session is None else self.db.unlock_sql(session)
            await conn.execute("COMMIT" + unlock)
            if unlock and session is not None:
                self.db.unlocked(session)

    # -- key-value store -------------------------------------------------------------
    async def kvs_get(self, namespace: str, key: str, now: float) -> KvsRecord | None:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(sql.KVS_GET, namespace, key, now)
        return None if row is None else KvsRecord(row[0], row[1], row[2])

    async def kvs_put(self, namespace: str, key: str, now: float, record: KvsRecord) -> None:
        locks = turn.kvs_locks(self.schema, namespace, key)
        async with self.db.connection() as conn:
            await conn.execute(
                sql.KVS_PUT,
                namespace,
                key,
                record.value,
                record.expires_at,
                new_version(),
                *locks,
                timeout=self.db.lock_wait,
            )

    async def kvs_modify(self, namespace: str, key: str, now: float, modify: KvsModifier[T]) -> T:
        """Lock the key, apply ``modify``, store; ``modify`` may be called again."""
        locks = turn.kvs_locks(self.schema, namespace, key)
        async with self.db.connection() as conn:
            while True:
                async with conn.transaction(isolation="read_committed"):  # reads after locks
                    await conn.execute(sql.XACT_LOCKS, *locks, timeout=self.db.lock_wait)
                    row = await conn.fetchrow(sql.KVS_LOCK_ROW, namespace, key)
                    live = row is not None and (row[1] is None or row[1] > now)
                    record, result = modify(KvsRecord(*row) if live else None)
                    if await _kvs_store(conn, namespace, key, record, exists=row is not None):
                        return result
                # another process created the key since we looked: read it again

    async def kvs_delete(self, namespace: str, key: str, now: float) -> bool:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(sql.KVS_DELETE, namespace, key)
        return row is not None and (row[0] is None or row[0] > now)

    async def kvs_keys(self, namespace: str, prefix: str, now: float) -> list[str]:
        end = sql.prefix_end(prefix)
        async with self.db.connection() as conn:
            if end is None:
                rows = await conn.fetch(sql.KVS_KEYS_FROM, namespace, prefix, now)
            else:
                rows = await conn.fetch(sql.KVS_KEYS, namespace, prefix, end, now)
        return [row[0] for row in rows]

    async def kvs_delete_prefix(self, namespace: str, prefix: str) -> int:
        async with self.db.connection() as conn:
            return await _delete_prefix(conn, namespace, prefix)

    # -- users -------------------------------------------------------------------------
    async def load_user(self, bot_id: str, user_key: str) -> UserRecords:
        async with (
            self.db.connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            sessions = [_session(r) for r in await conn.fetch(sql.USER_SESSIONS, bot_id, user_key)]
            rows = await conn.fetch(sql.USER_VARS, bot_id, user_key, [s.key for s in sessions])
        found = [_var(r) for r in rows]
        return UserRecords(
            [v for v in found if v.key.scope == "user"],
            sessions,
            [v for v in found if v.key.scope == "session"],
            [v for v in found if v.key.scope == "temp"],
        )

    async def delete_user(
        self, bot_id: str, user_key: str, kvs_prefixes: Sequence[str] = ()
    ) -> dict[str, int]:
        # A pass that waited for a committing turn's row locks deletes only the rows of
        # its snapshot, not those the turn then inserted: the next pass, with a snapshot of
        # its own (read committed), finds them. It stops when one finds nothing.
        counts = [0, 0, 0]
        async with self.db.connection() as conn, conn.transaction(isolation="read_committed"):
            for _ in range(ERASURE_PASSES):
                row = await conn.fetchrow(sql.DELETE_USER, bot_id, user_key)
                counts = [total + n for total, n in zip(counts, row, strict=True)]
                if not any(row):
                    break
            kvs = [await _delete_prefix(conn, bot_id, prefix) for prefix in kvs_prefixes]
        return {
            "user_variables": counts[0],
            "sessions": counts[1],
            "session_variables": counts[2],
            "kvs": sum(kvs),
        }

    # -- retention and the janitor -------------------------------------------------------
    async def expired_user_vars(self, now: float, limit: int) -> list[StoredVar]:
        async with self.db.connection() as conn:
            return [_var(r) for r in await conn.fetch(sql.EXPIRED_USER_VARS, now, limit)]

    async def scan_user_vars(
        self, bot_id: str | None, after: VarKey | None, limit: int
    ) -> list[StoredVar]:
        start = ("", "", "") if after is None else (after.bot_id, after.owner, after.name)
        async with self.db.connection() as conn:
            return [_var(r) for r in await conn.fetch(sql.SCAN_USER_VARS, bot_id, *start, limit)]

    async def update_user_vars(self, updates: Sequence[VarUpdate]) -> list[VarUpdate]:
        if not updates:
            return []
        columns = _columns(
            [
                (*_key_tuple(u.key), u.changed_at, u.value, u.expires_at, u.field_times, u.version)
                for u in updates
            ],
            9,
        )
        async with self.db.connection() as conn:
            rows = await conn.fetch(sql.UPDATE_USER_VARS, *columns)
        applied = {tuple(row) for row in rows}
        return [u for u in updates if _key_tuple(u.key) in applied]

    async def expired_sessions(self, now: float, limit: int) -> list[SessionRecord]:
        async with self.db.connection() as conn:
            return [_session(r) for r in await conn.fetch(sql.EXPIRED_SESSIONS, now, limit)]

    async def delete_sessions(self, sessions: Sequence[SessionRecord]) -> int:
        if not sessions:
            return 0
        columns = _columns([(s.bot_id, s.key, s.last_seen) for s in sessions], 3)
        async with self.db.connection() as conn:
            return int(await conn.fetchval(sql.DELETE_SESSIONS, *columns))

    async def expired_temps(self, now: float, limit: int) -> list[SessionRecord]:
        async with self.db.connection() as conn:
            return [_session(r) for r in await conn.fetch(sql.EXPIRED_TEMPS, now, limit)]

    async def clear_temps(self, sessions: Sequence[SessionRecord]) -> int:
        if not sessions:
            return 0
        columns = _columns([(s.bot_id, s.key, s.temp_expires_at, s.version) for s in sessions], 4)
        async with self.db.connection() as conn:
            return int(await conn.fetchval(sql.CLEAR_TEMPS, *columns))

    async def scan_sessions(
        self, after: SessionCursor | None, limit: int
    ) -> tuple[list[SessionRecord], SessionCursor | None]:
        async with self.db.connection() as conn:
            rows = await conn.fetch(sql.SCAN_SESSIONS, *(after or ("", "")), limit)
        sessions = [_session(r) for r in rows]
        last = sessions[-1] if len(sessions) == limit else None
        return sessions, None if last is None else (last.bot_id, last.key)

    async def update_sessions(self, updates: Sequence[SessionUpdate]) -> list[SessionUpdate]:
        if not updates:
            return []
        rows = [
            (u.read.bot_id, u.read.key, u.read.version, u.expires_at, u.temp_expires_at, u.version)
            for u in updates
        ]
        async with self.db.connection() as conn:
            applied = {
                tuple(row) for row in await conn.fetch(sql.UPDATE_SESSIONS, *_columns(rows, 6))
            }
        return [u for u in updates if (u.read.bot_id, u.read.key) in applied]

    async def delete_expired_kvs(self, now: float, limit: int) -> int:
        """Delete a batch in expiry order, from where this run's previous batch ended."""
        start = self._kvs_swept[1] if self._kvs_swept[0] == now else -math.inf
        async with self.db.connection() as conn:
            count, last = await conn.fetchrow(sql.DELETE_EXPIRED_KVS, now, limit, start)
        self._kvs_swept = (now, start if last is None else last)
        return int(count)

    async def get_meta(self, name: str) -> str | None:
        async with self.db.connection() as conn:
            value: str | None = await conn.fetchval(sql.GET_META, name)
        return value

    async def set_meta(self, name: str, value: str) -> None:
        async with self.db.connection() as conn:
            await conn.execute(sql.SET_META, name, value)


async def _rollback(conn: Any) -> None:
    """End a failed transaction; a connection that cannot is dropped by its holder."""
    with contextlib.suppress(Exception):
        if not conn.is_closed() and conn.is_in_transaction():
            await conn.execute("ROLLBACK")


async def _kvs_store(
    conn: Any, namespace: str, key: str, record: KvsRecord | None, *, exists: bool
) -> bool:
    """Write ``record`` over the locked row; ``False`` if another process inserted it first."""
    if record is None:
        if exists:
            await conn.execute(sql.KVS_DELETE, namespace, key)
        return True
    version = new_version()
    if exists:
        await conn.execute(sql.KVS_UPDATE, namespace, key, record.value, record.expires_at, version)
        return True
    status = await conn.execute(
        sql.KVS_INSERT, namespace, key, record.value, record.expires_at, version
    )
    return _affected(status) == 1


def _key_tuple(key: VarKey) -> tuple[str, str, str, str]:
    return (key.bot_id, key.scope, key.owner, key.name)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Turn rows into ``width`` column lists, for ``unnest($1::text[], ...)``."""
    return [[row[i] for row in rows] for i in range(width)]


async def _delete_prefix(conn: Any, namespace: str, prefix: str) -> int:
    """Delete the keys of ``namespace`` that start with ``prefix``; return how many."""
    end = sql.prefix_end(prefix)
    if end is None:
        return _affected(await conn.execute(sql.KVS_DELETE_FROM, namespace, prefix))
    return _affected(await conn.execute(sql.KVS_DELETE_RANGE, namespace, prefix, end))


def _affected(status: str) -> int:
    """Return the row count of a command status such as ``DELETE 3``."""
    return int(status.rsplit(" ", 1)[-1])


def _var(row: Sequence[Any]) -> StoredVar:
    return StoredVar(VarKey(row[1], row[0], row[2], row[3]), *row[4:9])


def _session(row: Sequence[Any]) -> SessionRecord:
    return SessionRecord(*row)


def _snapshot(keys: TurnKeys, rows: Sequence[Any]) -> TurnSnapshot:
    """Return the snapshot in the rows of :data:`~.sql.LOAD_TURN`.

    The named tuples are made by ``tuple.__new__`` (twice as fast: a turn loads dozens).
    """
    first, bot = rows[0], keys.bot_id
    session = None if first[0] is None else SessionRecord(bot, keys.session_key, *first[0:6])
    found: dict[str, list[StoredVar]] = {"user": [], "bot": [], "session": [], "temp": []}
    new: Any = tuple.__new__
    for row in rows:
        scope = row[6]
        if scope is not None:
            key = new(VarKey, (scope, bot, row[7], row[8]))
            found[scope].append(new(StoredVar, (key, row[9], row[10], row[11], row[12], row[13])))
    return TurnSnapshot(found["user"], found["bot"], session, found["session"], found["temp"])
