"""Embedded SQLite backend (``sqlite:///relative.db``, ``sqlite:////absolute.db``), the default.

One connection in WAL mode. Short calls (a turn's load and commit, KVS calls) run on
the event loop's thread, long ones (opening, the janitor's batches, erasures) on a
worker thread, and none waits for another connection's lock on the event loop
(:mod:`.connection`). Each method is one transaction; the turns queued in one pass
of the event loop commit in one transaction (group commit). Expiry columns have partial indexes,
so the janitor's cost follows the number of expired rows, not the table's size.
``secure_delete`` is on: erased values are overwritten in the file, and an erasure
empties the WAL before it returns (or raises ``ErasurePendingError`` while another
connection's transaction keeps it from doing so).

Several processes may share one database file (``serve`` and ``chat`` side by side):
a turn's commit checks what it read inside its ``BEGIN IMMEDIATE`` transaction, which
holds SQLite's write lock, so concurrent turns of any process are serializable. Turns
of one session wait for each other, in each process and across processes (a byte of
``<file>.sessions.lock`` per session, ``fcntl``), so they rarely conflict; a lock file
next to the database (``<file>.janitor.lock``, ``flock``) lets one janitor run at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Final, TypeVar

from botmemory.durations import Seconds, format_duration, parse_duration
from botmemory.errors import (
    BackendUnavailableError,
    BotMemoryError,
    ConfigError,
    ErasurePendingError,
)
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
)
from botmemory.storage.file_locks import KeyLocks
from botmemory.storage.footprint import Footprint
from botmemory.storage.sqlite import janitor_sql, schema, sql
from botmemory.storage.sqlite.connection import (
    SLICE,
    SqliteConnection,
    WorkerBusyError,
    WouldWaitError,
)
from botmemory.storage.sqlite.schema import MIGRATIONS
from botmemory.storage.worker import settle

__all__ = ["MIGRATIONS", "SqliteStorage", "sqlite_path"]

T = TypeVar("T")


def sqlite_path(url: str) -> str:
    """Return the file path of a ``sqlite:///`` URL, as SQLAlchemy reads it.

    ``sqlite:///data/memory.db`` is relative to the current folder,
    ``sqlite:////var/data/memory.db`` (four slashes) is absolute.
    """
    scheme = "sqlite://"
    rest = url[len(scheme) :] if url[: len(scheme)].lower() == scheme else url
    return rest[1:] if rest.startswith("/") else rest


def check_sqlite_path(path: str) -> None:
    """Raise :class:`ConfigError` when no database file can be created or opened at ``path``.

    The folders that do not exist yet are created on opening; the nearest one that
    exists must be a folder this process may write in.
    """
    if path in ("", ":memory:"):
        return
    try:
        reason = _path_problem(Path(path))
    except OSError as exc:  # a folder on the way that this process may not search
        reason = exc.strerror or str(exc)
    if reason is not None:
        raise ConfigError([f"database.url: SQLite database {path}: {reason}"])


_HEADER: Final = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""


def _path_problem(target: Path) -> str | None:
    if target.is_dir():
        return "is a folder, not a file"
    if target.exists():
        if not target.is_file():  # a FIFO, a device: reading it could wait for ever
            return "is not a regular file"
        with target.open("rb") as file:
            header = file.read(len(_HEADER))
        if header and header != _HEADER:  # an empty file becomes a database on opening
            return "is not an SQLite database (it does not start with 'SQLite format 3')"
        return None
    folder = next(p for p in target.absolute().parents if p.exists())
    if not folder.is_dir():
        return f"{folder} is a file, so no folder can be created in it"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot create files in {folder}"
    return None


_CHECKPOINT_WAIT: Final = parse_duration("5s")


class SqliteStorage(Storage):
    """Store everything in one SQLite file."""

    checkpoint_wait: Seconds = _CHECKPOINT_WAIT
    """How long an erasure waits for other connections' reads to end (see delete_user)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.path = sqlite_path(url)
        if "?" in self.path:  # else it would silently become part of the file's name
            query = self.path.partition("?")[2]
            raise ConfigError([f"database.url: SQLite URLs take no parameters: remove '?{query}'"])
        check_sqlite_path(self.path)
        self._conn = SqliteConnection(self.path)
        self._worker = self._conn.worker
        self._closing = False
        self._queue_lock = threading.Lock()
        self._queued: list[tuple[TurnWrite, asyncio.Future[None]]] = []
        self._data_version: int | None = None
        """``PRAGMA data_version`` as the last group commit found it."""
        self._commits_held_back = False
        """Whether queued turns wait for the worker thread to run dry."""
        in_file = self.path not in ("", ":memory:")
        self._turn_locks = KeyLocks(
            f"{self.path}.sessions.lock" if in_file else "", schema.BUSY_TIMEOUT
        )

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a call that may take long on the worker thread."""
        return await self._conn.run(fn)

    async def _soon(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a short call on the event loop, unless it would wait for a lock."""
        return await self._conn.soon(fn)

    def _write(
        self, fn: Callable[[sqlite3.Connection], T], *, bulk: bool = False
    ) -> Callable[[sqlite3.Connection], T]:
        """``fn`` in a write transaction. A ``bulk`` write (a janitor batch, a prefix deletion)
        may change a page per row: the checkpointer copies the WAL after each one."""

        def in_transaction(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(db)
            except BaseException:
                db.rollback()
                raise
            db.commit()
            self._conn.wrote(bulk=bulk)
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
                # a new database holds users' data: its owner's only (0600), as SQLite
                # then makes its -wal and -shm files; an existing file keeps its mode
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise BackendUnavailableError(
                f"cannot open SQLite database {self.path}: {exc}"
            ) from exc
        self._conn.db = db
        self._conn.call(schema.configure)
        if self._turn_locks.path:
            self._turn_locks.open()

    async def close(self) -> None:
        """Commit the turns already queued, close the database and stop the threads."""
        if self._closing:
            return
        self._closing = True
        await self._conn.after_held_back()  # calls made before close() run first
        with contextlib.suppress(BackendUnavailableError):
            await self._worker.call(self._shutdown)
        self._worker.stop()
        self._turn_locks.close()

    def _shutdown(self) -> None:
        self._commit_queued()
        self._conn.close()

    def session_lock(self, bot_id: str, session_key: str) -> AbstractAsyncContextManager[None]:
        """Serialize the turns of one session in this process, then across processes.

        A turn of this process holding it longer than
        :data:`~botmemory.storage.base.TURN_WAIT` (30 s) fails the next with
        :class:`~botmemory.errors.LockTimeoutError`. A turn of another process holding the
        session longer than the busy timeout (5 s) is not waited for any more: the
        commit's checks keep both exact.
        """
        if not self._turn_locks.path or self._turn_locks.alone():
            return super().session_lock(bot_id, session_key)
        return self._session_lock(bot_id, session_key)

    @asynccontextmanager
    async def _session_lock(self, bot_id: str, session_key: str) -> AsyncIterator[None]:
        async with (
            super().session_lock(bot_id, session_key),
            self._turn_locks.hold(f"{bot_id}\x00{session_key}"),
        ):
            yield

    def retry_lock(self, bot_id: str) -> AbstractAsyncContextManager[object]:
        """Hold the bot's byte of ``<file>.sessions.lock`` (given up after 5 s)."""
        return self._turn_locks.hold(f"retry\x00{bot_id}")

    def janitor_lock(self) -> AbstractAsyncContextManager[bool]:
        """Hold ``<file>.janitor.lock``; yield ``False`` if another process holds it."""
        return self._janitor_lock()

    @asynccontextmanager
    async def _janitor_lock(self) -> AsyncIterator[bool]:
        if self.path in ("", ":memory:"):
            yield True
            return
        fd = os.open(f"{self.path}.janitor.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the file releases the lock

    # -- turns ---------------------------------------------------------------------
    async def load_turn(self, keys: TurnKeys) -> TurnSnapshot:
        return await self._soon(lambda db: sql.load_turn(db, keys, self._data_version))

    async def commit_turn(self, write: TurnWrite) -> None:
        """Queue the write; the turns queued in one pass of the event loop commit together.

        Each write runs inside its own savepoint, so a failing write fails alone
        and the others commit. Under concurrent turns this is group commit: one
        transaction, one WAL append, for many turns. The transaction runs on the event
        loop, or on the worker thread if it would wait for another connection's lock.
        """
        if self._closing:
            raise self._conn.closed_error()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._queue_lock:
            self._queued.append((write, future))
            first = len(self._queued) == 1
        if first and self.sole_turn():  # nothing to group it with: commit it now
            self._flush()
        elif first:
            loop.call_soon(self._flush)
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

    def _flush(self) -> None:
        """Commit the queued turns here once the worker thread has no calls left, or have
        the worker thread do it if that would wait for another connection's lock."""
        try:
            self._commit_queued(here=True)
        except WorkerBusyError:
            if not self._commits_held_back:  # long calls wait for them (see hold_back)
                self._commits_held_back = True
                self._conn.hold_back()
            self._worker.when_idle(self._flush)
            return
        except WouldWaitError:
            self._worker.post(self._commit_queued)  # ahead of any later long call
        if self._commits_held_back:  # they commit now, or on the worker before long calls
            self._commits_held_back = False
            self._conn.let_go()

    def _commit_queued(self, *, here: bool = False) -> None:
        """Commit the queued turns in one transaction; raise WouldWaitError (``here``)
        with the turns left queued if that cannot be done without waiting.

        On the event loop a transaction takes the turns that fit in ``SLICE`` (one at
        least) and leaves the others queued for the next pass of the loop, so that many
        turns at once do not stall it; the worker thread takes them all.
        """
        with self._queue_lock:
            batch, self._queued = self._queued, []
        if not batch:
            return
        outcomes: list[tuple[asyncio.Future[None], None, BaseException | None]] = []
        deadline = time.perf_counter() + SLICE if here else None
        commit = self._write(lambda db: self._apply_turns(db, batch, outcomes, deadline))
        try:
            (self._conn.here if here else self._conn.call)(commit)
        except WouldWaitError:
            with self._queue_lock:
                self._queued[:0] = batch
            raise
        except Exception as exc:
            failure = exc if isinstance(exc, BotMemoryError) else self._conn.translate(exc)
            outcomes = [(future, None, failure) for _, future in batch]
        left = batch[len(outcomes) :]  # only here: the worker thread takes them all
        if left:  # ahead of those queued since, in the next pass
            with self._queue_lock:
                self._queued[:0] = left
            asyncio.get_running_loop().call_soon(self._flush)
        settle(outcomes, asyncio.get_running_loop() if here else None)

    def _apply_turns(
        self,
        db: sqlite3.Connection,
        batch: list[tuple[TurnWrite, asyncio.Future[None]]],
        outcomes: list[tuple[asyncio.Future[None], None, BaseException | None]],
        deadline: float | None = None,
    ) -> None:
        """Apply the turns of ``batch`` in order, an outcome each, until ``deadline``
        (``perf_counter``) has passed: the caller queues the others again."""
        # a turn that loaded the database as it is now, and that no turn before it in
        # this batch wrote a row it checks, has nothing to check but the KVS
        self._data_version = sql.read_data_version(db)  # for the stamps of later loads
        start, written = sql.stamp(db, self._data_version), Footprint()
        if len(batch) == 1:  # alone, it needs no savepoint: its failure fails the transaction
            write, future = batch[0]
            self._apply_turn(db, write, write.loaded_stamp == start)
            outcomes.append((future, None, None))
            return
        for write, future in batch:
            unchanged = write.loaded_stamp == start and not written.touches(write)
            db.execute("SAVEPOINT turn")
            try:
                self._apply_turn(db, write, unchanged)
            except Exception as exc:  # this turn fails alone
                db.execute("ROLLBACK TO turn")
                failure = exc if isinstance(exc, BotMemoryError) else self._conn.translate(exc)
                outcomes.append((future, None, failure))
            else:
                outcomes.append((future, None, None))
            db.execute("RELEASE turn")
            written.add(write)
            if deadline is not None and time.perf_counter() >= deadline:
                return

    @staticmethod
    def _apply_turn(db: sqlite3.Connection, write: TurnWrite, unchanged: bool) -> None:
        sql.apply_turn(db, write, rows_unchanged=unchanged)

    # -- key-value store -------------------------------------------------------------
    async def kvs_get(self, namespace: str, key: str, now: float) -> KvsRecord | None:
        return await self._soon(lambda db: sql.kvs_live(db, namespace, key, now))

    async def kvs_put(self, namespace: str, key: str, now: float, record: KvsRecord) -> None:
        await self._soon(self._write(lambda db: sql.kvs_store(db, namespace, key, record)))

    async def kvs_modify(self, namespace: str, key: str, now: float, modify: KvsModifier[T]) -> T:
        return await self._soon(
            self._write(lambda db: sql.kvs_modify(db, namespace, key, now, modify))
        )

    async def kvs_delete(self, namespace: str, key: str, now: float) -> bool:
        return await self._soon(self._write(lambda db: sql.kvs_delete(db, namespace, key, now)))

    async def kvs_keys(self, namespace: str, prefix: str, now: float) -> list[str]:
        # as many keys as there are, so on the worker thread
        return await self._run(lambda db: sql.kvs_keys(db, namespace, prefix, now))

    async def kvs_delete_prefix(self, namespace: str, prefix: str) -> int:
        return await self._run(
            self._write(lambda db: sql.kvs_delete_prefix(db, namespace, prefix), bulk=True)
        )

    # -- users -------------------------------------------------------------------------
    async def load_user(self, bot_id: str, user_key: str) -> UserRecords:
        # as many sessions as the user has, so on the worker thread
        return await self._run(lambda db: sql.load_user(db, bot_id, user_key))

    async def delete_user(
        self, bot_id: str, user_key: str, kvs_prefixes: Sequence[str] = ()
    ) -> dict[str, int]:
        """Delete the user's rows and keys in one write, then scrub the files.

        ``secure_delete`` zeroes what the write frees; the checkpoint then copies those
        pages into the database file and empties the WAL, which still holds the old
        pages. While another connection is in a transaction (reading or writing), the
        WAL cannot be emptied: the checkpoint is tried again for up to
        ``checkpoint_wait``, then :class:`ErasurePendingError` says so. A later erasure finishes.
        """

        def erase(db: sqlite3.Connection) -> dict[str, int]:
            counts = sql.delete_user(db, bot_id, user_key)
            counts["kvs"] = sum(sql.kvs_delete_prefix(db, bot_id, p) for p in kvs_prefixes)
            return counts

        counts = await self._run(self._write(erase))
        if not await self._checkpoint():
            waited = format_duration(self.checkpoint_wait)
            raise ErasurePendingError(
                f"the user is erased, but another connection to the SQLite database "
                f"{self.path} stayed in a transaction for {waited}, so "
                "its WAL file, which still holds the erased values, could not be emptied. "
                "Erase the user again to finish.",
                counts,
            )
        return counts

    async def _checkpoint(self) -> bool:
        """Empty the WAL into the file, trying for ``checkpoint_wait``."""
        deadline = time.monotonic() + self.checkpoint_wait
        pause = 0.002
        while not await self._run(sql.checkpoint):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.1)
        return True

    # -- retention and the janitor -------------------------------------------------------
    async def expired_user_vars(self, now: float, limit: int) -> list[StoredVar]:
        return await self._run(lambda db: janitor_sql.expired_user_vars(db, now, limit))

    async def scan_user_vars(
        self, bot_id: str | None, after: VarKey | None, limit: int
    ) -> list[StoredVar]:
        return await self._run(lambda db: janitor_sql.scan_user_vars(db, bot_id, after, limit))

    async def update_user_vars(self, updates: Sequence[VarUpdate]) -> list[VarUpdate]:
        return await self._run(
            self._write(lambda db: janitor_sql.update_user_vars(db, updates), bulk=True)
        )

    async def expired_sessions(self, now: float, limit: int) -> list[SessionRecord]:
        return await self._run(lambda db: janitor_sql.expired_sessions(db, now, limit))

    async def delete_sessions(self, sessions: Sequence[SessionRecord]) -> int:
        return await self._run(
            self._write(lambda db: janitor_sql.delete_sessions(db, sessions), bulk=True)
        )

    async def expired_temps(self, now: float, limit: int) -> list[SessionRecord]:
        return await self._run(lambda db: janitor_sql.expired_temps(db, now, limit))

    async def clear_temps(self, sessions: Sequence[SessionRecord]) -> int:
        return await self._run(
            self._write(lambda db: janitor_sql.clear_temps(db, sessions), bulk=True)
        )

    async def scan_sessions(
        self, after: SessionCursor | None, limit: int
    ) -> tuple[list[SessionRecord], SessionCursor | None]:
        return await self._run(lambda db: janitor_sql.scan_sessions(db, after, limit))

    async def update_sessions(self, updates: Sequence[SessionUpdate]) -> list[SessionUpdate]:
        return await self._run(
            self._write(lambda db: janitor_sql.update_sessions(db, updates), bulk=True)
        )

    async def delete_expired_kvs(self, now: float, limit: int) -> int:
        return await self._run(
            self._write(lambda db: janitor_sql.delete_expired_kvs(db, now, limit), bulk=True)
        )

    async def get_meta(self, name: str) -> str | None:
        return await self._soon(lambda db: schema.get_meta(db, name))

    async def set_meta(self, name: str, value: str) -> None:
        await self._soon(self._write(lambda db: schema.set_meta(db, name, value)))
