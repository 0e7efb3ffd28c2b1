"""Embedded SQLite backend (``sqlite:///relative.db``, ``sqlite:////absolute.db``), the default.

One connection in WAL mode, used from one worker thread so the event loop never
blocks on disk. Each method is one transaction. Expiry columns have partial indexes,
so the janitor's cost follows the number of expired rows, not the table's size.
``secure_delete`` is on: erased values are overwritten in the file, and the WAL is
checkpointed after a user is forgotten.

One process at a time: turns of one session are serialized inside this process.
Several processes need the PostgreSQL or Redis backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from botmemory.errors import (
    BackendError,
    BackendUnavailableError,
    BotMemoryError,
    LockTimeoutError,
    SchemaVersionError,
)
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
from botmemory.storage.worker import Worker, deliver

__all__ = ["MIGRATIONS", "SqliteStorage", "sqlite_path"]

T = TypeVar("T")

MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE variables (
        bot_id TEXT NOT NULL, scope TEXT NOT NULL, owner TEXT NOT NULL, name TEXT NOT NULL,
        value TEXT NOT NULL, changed_at REAL NOT NULL, expires_at REAL, field_times TEXT,
        PRIMARY KEY (bot_id, scope, owner, name)
    ) WITHOUT ROWID;
    CREATE INDEX variables_expiry ON variables (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE sessions (
        bot_id TEXT NOT NULL, key TEXT NOT NULL, user_key TEXT NOT NULL,
        started_at REAL NOT NULL, last_seen REAL NOT NULL, expires_at REAL NOT NULL,
        temp_expires_at REAL,
        PRIMARY KEY (bot_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX sessions_user ON sessions (bot_id, user_key);
    CREATE INDEX sessions_expiry ON sessions (expires_at);
    CREATE INDEX sessions_temp_expiry ON sessions (temp_expires_at)
        WHERE temp_expires_at IS NOT NULL;
    CREATE TABLE kvs (
        namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires_at REAL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    CREATE INDEX kvs_expiry ON kvs (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    """,
)

_VAR_COLUMNS: Final = "bot_id, scope, owner, name, value, changed_at, expires_at, field_times"
_SESSION_COLUMNS: Final = (
    "bot_id, key, user_key, started_at, last_seen, expires_at, temp_expires_at"
)
_LOAD_TURN: Final = f"""
    SELECT {_VAR_COLUMNS} FROM variables WHERE bot_id = ?1 AND scope = 'user' AND owner = ?2
    UNION ALL
    SELECT {_VAR_COLUMNS} FROM variables WHERE bot_id = ?1 AND scope = 'bot' AND owner = ''
    UNION ALL
    SELECT {_VAR_COLUMNS} FROM variables WHERE bot_id = ?1 AND scope = 'session' AND owner = ?3
    UNION ALL
    SELECT {_VAR_COLUMNS} FROM variables WHERE bot_id = ?1 AND scope = 'temp' AND owner = ?3
"""
_UPSERT_VAR: Final = (
    f"INSERT INTO variables ({_VAR_COLUMNS}) VALUES (?,?,?,?,?,?,?,?) "
    "ON CONFLICT (bot_id, scope, owner, name) DO UPDATE SET value = excluded.value, "
    "changed_at = excluded.changed_at, expires_at = excluded.expires_at, "
    "field_times = excluded.field_times"
)
_UPSERT_SESSION: Final = (
    f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES (?,?,?,?,?,?,?) "
    "ON CONFLICT (bot_id, key) DO UPDATE SET started_at = excluded.started_at, "
    "last_seen = excluded.last_seen, expires_at = excluded.expires_at, "
    "temp_expires_at = excluded.temp_expires_at"
)


def sqlite_path(url: str) -> str:
    """Return the file path of a ``sqlite:///`` URL, as SQLAlchemy reads it.

    ``sqlite:///data/memory.db`` is relative to the current folder,
    ``sqlite:////var/data/memory.db`` (four slashes) is absolute.
    """
    rest = url.removeprefix("sqlite://")
    return rest[1:] if rest.startswith("/") else rest


def _var(row: Sequence[Any]) -> StoredVar:
    return StoredVar(VarKey(row[1], row[0], row[2], row[3]), row[4], row[5], row[6], row[7])


def _session(row: Sequence[Any]) -> SessionRecord:
    return SessionRecord(*row)


def _var_params(v: StoredVar) -> tuple[object, ...]:
    k = v.key
    return (k.bot_id, k.scope, k.owner, k.name, v.value, v.changed_at, v.expires_at, v.field_times)


class SqliteStorage(Storage):
    """Store everything in one SQLite file."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.path = sqlite_path(url)
        self._worker = Worker("botmemory-sqlite", self._closed_error)
        self._closing = False
        self._queue_lock = threading.Lock()
        self._queued: list[tuple[TurnWrite, asyncio.Future[None]]] = []
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._worker.call(lambda: self._call(fn))

    def _closed_error(self) -> BackendUnavailableError:
        return BackendUnavailableError(f"the SQLite database {self.path} is closed")

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            raise self._closed_error()
        try:
            return fn(self._db)
        except BotMemoryError:
            raise
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            if self._db.in_transaction:
                self._db.rollback()
            raise self._translate(exc) from exc

    def _translate(self, exc: BaseException) -> BackendError:
        """Turn a driver error into botmemory's own."""
        if isinstance(exc, sqlite3.OperationalError) and (
            "locked" in str(exc) or "busy" in str(exc)
        ):
            return LockTimeoutError(f"SQLite database {self.path} is locked: {exc}")
        return BackendError(f"SQLite error on {self.path}: {exc}")

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
        def in_transaction(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(db)
            except BaseException:
                db.rollback()
                raise
            db.commit()
            return result

        return in_transaction

    async def open(self) -> None:
        try:
            await self._worker.call(self._connect)
        except BaseException:
            await self.close()
            raise

    def _connect(self) -> None:
        try:
            if self.path not in ("", ":memory:"):
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise BackendUnavailableError(
                f"cannot open SQLite database {self.path}: {exc}"
            ) from exc
        self._db = db
        self._call(self._configure)

    @staticmethod
    def _configure(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA secure_delete = ON")
        db.execute("PRAGMA foreign_keys = OFF")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise SchemaVersionError(
                f"database schema version {version} is newer than this botmemory knows "
                f"({len(MIGRATIONS)}): upgrade botmemory"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            db.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
            db.commit()

    async def close(self) -> None:
        """Commit the turns already queued, close the database and stop the thread."""
        if self._closing:
            return
        self._closing = True
        with contextlib.suppress(BackendUnavailableError):
            await self._worker.call(self._shutdown)
        self._worker.stop()

    def _shutdown(self) -> None:
        self._commit_queued()
        if self._db is not None:
            db, self._db = self._db, None
            db.close()

    # -- turns ---------------------------------------------------------------------
    async def load_turn(self, keys: TurnKeys) -> TurnSnapshot:
        def load(db: sqlite3.Connection) -> TurnSnapshot:
            db.execute("BEGIN")
            try:
                rows = db.execute(_LOAD_TURN, (keys.bot_id, keys.user_key, keys.session_key))
                found: dict[str, list[StoredVar]] = {
                    "user": [],
                    "bot": [],
                    "session": [],
                    "temp": [],
                }
                for row in rows:
                    found[row[1]].append(_var(row))
                session = db.execute(
                    f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE bot_id = ? AND key = ?",
                    (keys.bot_id, keys.session_key),
                ).fetchone()
            finally:
                db.commit()
            return TurnSnapshot(
                found["user"],
                found["bot"],
                None if session is None else _session(session),
                found["session"],
                found["temp"],
            )

        return await self._run(load)

    async def commit_turn(self, write: TurnWrite) -> None:
        """Queue the write; the worker commits every queued write in one transaction.

        Each write runs inside its own savepoint, so a failing write fails alone
        and the others commit. Under concurrent turns this is group commit: one
        transaction, one WAL append, for many turns.
        """
        if self._closing:
            raise self._closed_error()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._queue_lock:
            self._queued.append((write, future))
            first = len(self._queued) == 1
        if first:
            self._worker.post(self._commit_queued)
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            # Still queued: withdraw it, nothing is written. Already being committed:
            # its outcome stands (like a COMMIT already sent), then the cancellation.
            with self._queue_lock:
                queued = [i for i, (_, f) in enumerate(self._queued) if f is future]
                if queued:
                    del self._queued[queued[0]]
            if not queued:
                with contextlib.suppress(Exception):
                    await future
            raise

    def _commit_queued(self) -> None:
        with self._queue_lock:
            batch, self._queued = self._queued, []
        if not batch:
            return
        outcomes: list[tuple[asyncio.Future[None], None, BaseException | None]] = []
        try:
            self._call(self._write(lambda db: self._apply_turns(db, batch, outcomes)))
        except Exception as exc:
            failure = exc if isinstance(exc, BotMemoryError) else self._translate(exc)
            outcomes = [(future, None, failure) for _, future in batch]
        loops: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for outcome in outcomes:
            loops.setdefault(outcome[0].get_loop(), []).append(outcome)
        for loop, done in loops.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(deliver, done)

    def _apply_turns(
        self,
        db: sqlite3.Connection,
        batch: list[tuple[TurnWrite, asyncio.Future[None]]],
        outcomes: list[tuple[asyncio.Future[None], None, BaseException | None]],
    ) -> None:
        for write, future in batch:
            db.execute("SAVEPOINT turn")
            try:
                self._apply_turn(db, write)
            except Exception as exc:  # this turn fails alone
                db.execute("ROLLBACK TO turn")
                outcomes.append((future, None, self._translate(exc)))
            else:
                outcomes.append((future, None, None))
            db.execute("RELEASE turn")

    @staticmethod
    def _apply_turn(db: sqlite3.Connection, write: TurnWrite) -> None:
        s = write.session
        if s is not None and (write.reset_session or write.reset_temp):
            scopes = "('session', 'temp')" if write.reset_session else "('temp')"
            db.execute(
                f"DELETE FROM variables WHERE bot_id = ? AND scope IN {scopes} AND owner = ?",
                (s.bot_id, s.key),
            )
        if write.deletes:
            db.executemany(
                "DELETE FROM variables WHERE bot_id = ? AND scope = ? AND owner = ? AND name = ?",
                [(k.bot_id, k.scope, k.owner, k.name) for k in write.deletes],
            )
        if write.upserts:
            db.executemany(_UPSERT_VAR, [_var_params(v) for v in write.upserts])
        if s is not None:
            db.execute(
                _UPSERT_SESSION,
                (
                    s.bot_id,
                    s.key,
                    s.user_key,
                    s.started_at,
                    s.last_seen,
                    s.expires_at,
                    s.temp_expires_at,
                ),
            )

    # -- key-value store -------------------------------------------------------------
    @staticmethod
    def _kvs_live(db: sqlite3.Connection, namespace: str, key: str, now: float) -> KvsRecord | None:
        row = db.execute(
            "SELECT value, expires_at FROM kvs WHERE namespace = ? AND key = ? "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (namespace, key, now),
        ).fetchone()
        return None if row is None else KvsRecord(row[0], row[1])

    async def kvs_get(self, namespace: str, key: str, now: float) -> KvsRecord | None:
        return await self._run(lambda db: self._kvs_live(db, namespace, key, now))

    @staticmethod
    def _kvs_store(
        db: sqlite3.Connection, namespace: str, key: str, record: KvsRecord | None
    ) -> None:
        if record is None:
            db.execute("DELETE FROM kvs WHERE namespace = ? AND key = ?", (namespace, key))
        else:
            db.execute(
                "INSERT OR REPLACE INTO kvs (namespace, key, value, expires_at) VALUES (?,?,?,?)",
                (namespace, key, record.value, record.expires_at),
            )

    async def kvs_put(self, namespace: str, key: str, record: KvsRecord) -> None:
        await self._run(self._write(lambda db: self._kvs_store(db, namespace, key, record)))

    async def kvs_modify(self, namespace: str, key: str, now: float, modify: KvsModifier[T]) -> T:
        def apply(db: sqlite3.Connection) -> T:
            record, result = modify(self._kvs_live(db, namespace, key, now))
            self._kvs_store(db, namespace, key, record)
            return result

        return await self._run(self._write(apply))

    async def kvs_delete(self, namespace: str, key: str, now: float) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            live = self._kvs_live(db, namespace, key, now) is not None
            self._kvs_store(db, namespace, key, None)
            return live

        return await self._run(self._write(delete))

    async def kvs_keys(self, namespace: str, prefix: str, now: float) -> list[str]:
        def keys(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "SELECT key FROM kvs WHERE namespace = ? AND key >= ? AND substr(key, 1, ?) = ? "
                "AND (expires_at IS NULL OR expires_at > ?) ORDER BY key",
                (namespace, prefix, len(prefix), prefix, now),
            )
            return [row[0] for row in rows]

        return await self._run(keys)

    async def kvs_delete_prefix(self, namespace: str, prefix: str) -> int:
        def delete(db: sqlite3.Connection) -> int:
            return db.execute(
                "DELETE FROM kvs WHERE namespace = ? AND key >= ? AND substr(key, 1, ?) = ?",
                (namespace, prefix, len(prefix), prefix),
            ).rowcount

        return await self._run(self._write(delete))

    # -- users -------------------------------------------------------------------------
    async def load_user(self, bot_id: str, user_key: str) -> UserRecords:
        def load(db: sqlite3.Connection) -> UserRecords:
            user = db.execute(
                f"SELECT {_VAR_COLUMNS} FROM variables WHERE bot_id = ? AND scope = 'user' "
                "AND owner = ?",
                (bot_id, user_key),
            ).fetchall()
            sessions = [
                _session(r)
                for r in db.execute(
                    f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE bot_id = ? AND user_key = ?",
                    (bot_id, user_key),
                )
            ]
            owned = [
                _var(r)
                for s in sessions
                for r in db.execute(
                    f"SELECT {_VAR_COLUMNS} FROM variables WHERE bot_id = ? "
                    "AND scope IN ('session', 'temp') AND owner = ?",
                    (bot_id, s.key),
                )
            ]
            return UserRecords(
                [_var(r) for r in user],
                sessions,
                [v for v in owned if v.key.scope == "session"],
                [v for v in owned if v.key.scope == "temp"],
            )

        return await self._run(load)

    async def delete_user(self, bot_id: str, user_key: str) -> dict[str, int]:
        def delete(db: sqlite3.Connection) -> dict[str, int]:
            counts = {
                "user_variables": db.execute(
                    "DELETE FROM variables WHERE bot_id = ? AND scope = 'user' AND owner = ?",
                    (bot_id, user_key),
                ).rowcount,
                "sessions": 0,
                "session_variables": 0,
            }
            keys = db.execute(
                "SELECT key FROM sessions WHERE bot_id = ? AND user_key = ?", (bot_id, user_key)
            ).fetchall()
            for (key,) in keys:
                counts["session_variables"] += db.execute(
                    "DELETE FROM variables WHERE bot_id = ? AND scope IN ('session', 'temp') "
                    "AND owner = ?",
                    (bot_id, key),
                ).rowcount
                counts["sessions"] += db.execute(
                    "DELETE FROM sessions WHERE bot_id = ? AND key = ?", (bot_id, key)
                ).rowcount
            return counts

        counts = await self._run(self._write(delete))
        await self._run(lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
        return counts

    # -- retention and the janitor -------------------------------------------------------
    async def expired_user_vars(self, now: float, limit: int) -> list[StoredVar]:
        def select(db: sqlite3.Connection) -> list[StoredVar]:
            rows = db.execute(
                f"SELECT {_VAR_COLUMNS} FROM variables WHERE expires_at <= ? "
                "AND scope = 'user' ORDER BY expires_at LIMIT ?",
                (now, limit),
            )
            return [_var(r) for r in rows]

        return await self._run(select)

    async def scan_user_vars(
        self, bot_id: str | None, after: VarKey | None, limit: int
    ) -> list[StoredVar]:
        start = ("", "", "") if after is None else (after.bot_id, after.owner, after.name)

        def scan(db: sqlite3.Connection) -> list[StoredVar]:
            rows = db.execute(
                f"SELECT {_VAR_COLUMNS} FROM variables WHERE scope = 'user' "
                "AND (?1 IS NULL OR bot_id = ?1) AND (bot_id, owner, name) > (?2, ?3, ?4) "
                "ORDER BY bot_id, owner, name LIMIT ?5",
                (bot_id, *start, limit),
            )
            return [_var(r) for r in rows]

        return await self._run(scan)

    async def update_user_vars(self, updates: Sequence[VarUpdate]) -> list[VarUpdate]:
        def update(db: sqlite3.Connection) -> list[VarUpdate]:
            applied: list[VarUpdate] = []
            for u in updates:
                k = u.key
                where = (k.bot_id, k.scope, k.owner, k.name, u.changed_at)
                if u.value is None:
                    cursor = db.execute(
                        "DELETE FROM variables WHERE bot_id = ? AND scope = ? AND owner = ? "
                        "AND name = ? AND changed_at = ?",
                        where,
                    )
                else:
                    cursor = db.execute(
                        "UPDATE variables SET value = ?, expires_at = ?, field_times = ? "
                        "WHERE bot_id = ? AND scope = ? AND owner = ? AND name = ? "
                        "AND changed_at = ?",
                        (u.value, u.expires_at, u.field_times, *where),
                    )
                if cursor.rowcount:
                    applied.append(u)
            return applied

        return await self._run(self._write(update))

    async def expired_sessions(self, now: float, limit: int) -> list[SessionRecord]:
        def select(db: sqlite3.Connection) -> list[SessionRecord]:
            rows = db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE expires_at <= ? "
                "ORDER BY expires_at LIMIT ?",
                (now, limit),
            )
            return [_session(r) for r in rows]

        return await self._run(select)

    async def delete_sessions(self, sessions: Sequence[SessionRecord]) -> int:
        def delete(db: sqlite3.Connection) -> int:
            deleted = 0
            for s in sessions:
                if not db.execute(
                    "DELETE FROM sessions WHERE bot_id = ? AND key = ? AND last_seen = ?",
                    (s.bot_id, s.key, s.last_seen),
                ).rowcount:
                    continue
                db.execute(
                    "DELETE FROM variables WHERE bot_id = ? AND scope IN ('session', 'temp') "
                    "AND owner = ?",
                    (s.bot_id, s.key),
                )
                deleted += 1
            return deleted

        return await self._run(self._write(delete))

    async def expired_temps(self, now: float, limit: int) -> list[SessionRecord]:
        def select(db: sqlite3.Connection) -> list[SessionRecord]:
            rows = db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE temp_expires_at <= ? "
                "ORDER BY temp_expires_at LIMIT ?",
                (now, limit),
            )
            return [_session(r) for r in rows]

        return await self._run(select)

    async def clear_temps(self, sessions: Sequence[SessionRecord]) -> int:
        def clear(db: sqlite3.Connection) -> int:
            cleared = 0
            for s in sessions:
                if not db.execute(
                    "UPDATE sessions SET temp_expires_at = NULL WHERE bot_id = ? AND key = ? "
                    "AND (temp_expires_at = ? OR temp_expires_at IS NULL)",
                    (s.bot_id, s.key, s.temp_expires_at),
                ).rowcount:
                    continue
                db.execute(
                    "DELETE FROM variables WHERE bot_id = ? AND scope = 'temp' AND owner = ?",
                    (s.bot_id, s.key),
                )
                cleared += 1
            return cleared

        return await self._run(self._write(clear))

    async def delete_expired_kvs(self, now: float, limit: int) -> int:
        def delete(db: sqlite3.Connection) -> int:
            return db.execute(
                "DELETE FROM kvs WHERE (namespace, key) IN (SELECT namespace, key FROM kvs "
                "WHERE expires_at <= ? LIMIT ?)",
                (now, limit),
            ).rowcount

        return await self._run(self._write(delete))

    async def get_meta(self, name: str) -> str | None:
        def get(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
            return None if row is None else str(row[0])

        return await self._run(get)

    async def set_meta(self, name: str, value: str) -> None:
        await self._run(
            self._write(
                lambda db: db.execute(
                    "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value)
                )
            )
        )
