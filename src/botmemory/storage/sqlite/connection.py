"""Where the SQLite backend's connection runs a call: on the event loop, or on its thread.

A small SQLite call costs less than handing it to another thread and waking the event
loop afterwards, so calls that are short by nature (a turn's load and commit, a KVS
operation) run on the event loop's thread. None of them may wait without bound there:

- the connection's ``busy_timeout`` is 0 on the event loop, so a call that would wait
  for another connection's lock (``BEGIN IMMEDIATE`` while another process writes) fails
  at once, is rolled back and runs again on the worker thread, which waits up to the
  busy timeout (5 s) like before;
- while the worker thread has calls to run, new calls wait until it has none left, then
  run here (they used to go to the worker thread behind them: under a steady stream
  of turns the worker then never ran dry, and nearly every call paid two hand-offs);
  a long call (a janitor batch) waits for the calls held back that way to have run,
  so that turns go before background work rather than one step per janitor batch;
- once a pass of the event loop has spent ``SLICE`` (0.25 ms) since its first call here,
  the next call waits for the next pass, so that many turns at once do not stall it;
- long calls always run on the worker thread: opening (migrations), the janitor's
  batches, an erasure (its secure delete and its checkpoint), and reads of as many
  rows as there are (a user's records, a listing of keys);
- the event loop's connection never checkpoints the WAL (``wal_autocheckpoint`` is 0):
  a :class:`Checkpointer` thread, with a connection of its own, copies the WAL into the
  file after every 100 writes and after every bulk write (a janitor batch, a prefix deletion:
  a page per row), without blocking writers or readers (``PASSIVE``), and
  only holds up writers for an instant when they never pause (see :func:`_catch_up`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Final, TypeVar

from botmemory.durations import Seconds
from botmemory.errors import BackendError, BackendUnavailableError, BotMemoryError
from botmemory.storage.sqlite import schema
from botmemory.storage.sqlite.errors import DRIVER_ERRORS, driver_errors, is_busy, translate
from botmemory.storage.worker import Worker

__all__ = ["Checkpointer", "SqliteConnection", "WorkerBusyError", "WouldWaitError"]

T = TypeVar("T")

log = logging.getLogger("botmemory.storage")

SLICE: Final = Seconds(0.00025)
"""How long a pass of the event loop runs calls here before other callbacks' turn."""
CHECKPOINT_EVERY: Final = 100
"""Writes between two checkpoints of the WAL."""
RESTART_AFTER = 4096
"""Frames (pages) in the WAL past which a checkpoint holds up writers to start it over."""
_RESTART_WAIT_MS: Final = 100


class WouldWaitError(Exception):
    """The call cannot run on the event loop without waiting: run it on the worker."""


class WorkerBusyError(WouldWaitError):
    """The worker thread has calls to run: wait until it has none, then run it here."""


class SqliteConnection:
    """One connection, its worker thread and its checkpointer."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.db: sqlite3.Connection | None = None
        self.worker = Worker("botmemory-sqlite", self.closed_error)
        self._lock = threading.Lock()
        """Held by whichever thread uses ``db``: the event loop's or the worker."""
        self._pass_started: float | None = None
        """When this pass of the event loop first ran a call here (``perf_counter``)."""
        self._held_back = 0
        """Calls waiting for the worker thread to run dry, to run here then."""
        self._after_held_back: list[asyncio.Future[None]] = []
        """Long calls waiting for those to have run."""
        in_file = path not in ("", ":memory:")
        self.checkpointer = Checkpointer(path) if in_file else None

    def closed_error(self) -> BackendUnavailableError:
        """The error of a call made once the database is closed."""
        return BackendUnavailableError(f"the SQLite database {self.path} is closed")

    def translate(self, exc: BaseException) -> BackendError:
        """Turn an error a call raised into botmemory's own (see :mod:`.errors`)."""
        return translate(self.path, exc)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the worker thread, waiting for locks up to the busy timeout,
        once the calls the worker thread held back have run (see :meth:`hold_back`)."""
        await self.after_held_back()
        return await self.worker.call(lambda: self.call(fn))

    async def soon(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` here once the worker thread has no calls left, or on the worker
        thread if it would wait for another connection's lock."""
        held_back = False
        try:
            while True:
                await self._fair()
                try:
                    return self.here(fn)
                except WorkerBusyError:
                    if not held_back:
                        held_back = True
                        self.hold_back()
                    await self.worker.drained()
                except WouldWaitError:
                    if held_back:  # on the worker, it goes before any later long call
                        held_back = False
                        self.let_go()
                    return await self.worker.call(lambda: self.call(fn))
        finally:
            if held_back:
                self.let_go()

    def hold_back(self) -> None:
        """Count a call that waits for the worker thread to run dry, to run here then:
        long calls wait for it (:meth:`run`), so a janitor's batches cannot keep it
        waiting one after the other."""
        self._held_back += 1

    def let_go(self) -> None:
        """The call counted by :meth:`hold_back` has run (or failed)."""
        self._held_back -= 1
        if not self._held_back:
            waiting, self._after_held_back = self._after_held_back, []
            for done in waiting:
                if not done.done():
                    done.set_result(None)

    async def after_held_back(self) -> None:
        """Return once no call waits for the worker thread to run dry."""
        while self._held_back:
            done = asyncio.get_running_loop().create_future()
            self._after_held_back.append(done)
            await done

    async def _fair(self) -> None:
        """Let the event loop's other callbacks run first if this pass of the loop has
        spent ``SLICE`` since its first call here (many turns at once would stall it)."""
        while True:
            now = time.perf_counter()
            if self._pass_started is None:
                self._pass_started = now
                asyncio.get_running_loop().call_soon(self._next_pass)
                return
            if now - self._pass_started <= SLICE:
                return
            await asyncio.sleep(0)

    def _next_pass(self) -> None:
        self._pass_started = None

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` now, on the worker thread (it may wait up to the busy timeout)."""
        with self._lock:
            db = self._open_db()
            schema.set_busy_timeout(db, wait=True)
            try:
                return self._guarded(db, fn, wait=True)
            finally:
                if self.db is db:
                    schema.set_busy_timeout(db, wait=False)

    def here(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` now, on the calling (event loop) thread, or raise WouldWaitError
        (:class:`WorkerBusyError` while the worker thread has calls to run)."""
        if not self.worker.idle():
            raise WorkerBusyError
        if not self._lock.acquire(blocking=False):  # another thread uses it (closing)
            raise WouldWaitError
        try:
            return self._guarded(self._open_db(), fn, wait=False)
        finally:
            self._lock.release()

    def _open_db(self) -> sqlite3.Connection:
        if self.db is None:
            raise self.closed_error()
        return self.db

    def _guarded(
        self, db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], *, wait: bool
    ) -> T:
        with driver_errors(self.path):
            try:
                return fn(db)
            except BotMemoryError:
                raise
            except DRIVER_ERRORS as exc:
                if db.in_transaction:
                    db.rollback()
                if not wait and is_busy(exc):
                    raise WouldWaitError from exc
                raise

    def wrote(self, *, bulk: bool = False) -> None:
        """Count a committed write; wake the checkpointer every ``CHECKPOINT_EVERY``,
        or after this one if it is ``bulk``."""
        if self.checkpointer is not None:
            self.checkpointer.wrote(bulk=bulk)

    def close(self) -> None:
        """Stop the checkpointer, then close the connection (on the worker thread)."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
        with self._lock:
            db, self.db = self.db, None
            if db is not None:
                db.close()


class Checkpointer:
    """A thread that copies the WAL into the database file, with its own connection."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._writes = 0
        self._wake = threading.Event()
        self._stopping = False
        self._starting = threading.Lock()
        self._thread: threading.Thread | None = None

    def wrote(self, *, bulk: bool = False) -> None:
        """Count a write; every ``CHECKPOINT_EVERY`` writes, or after a bulk one, wake
        the thread."""
        self._writes += 1
        if bulk or self._writes >= CHECKPOINT_EVERY:
            self._writes = 0
            with self._starting:  # the event loop's thread and the worker both write
                if self._thread is None and not self._stopping:
                    self._thread = threading.Thread(
                        target=self._run, name="botmemory-sqlite-checkpoint", daemon=True
                    )
                    self._thread.start()
            self._wake.set()

    def stop(self) -> None:
        """End the thread (after the checkpoint it may be running)."""
        with self._starting:
            self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                break
            try:
                if db is None:
                    db = sqlite3.connect(
                        self.path, timeout=0, isolation_level=None, check_same_thread=False
                    )
                _catch_up(db)
            except sqlite3.Error:
                log.exception("checkpointing the WAL of %s failed; writes go on", self.path)
        if db is not None:
            db.close()


def _catch_up(db: sqlite3.Connection) -> None:
    """Copy the WAL into the file so that it can start over, holding up writers rarely.

    A ``PASSIVE`` checkpoint copies the frames the WAL had when it began, without locks;
    the next write starts the WAL over if none was appended meanwhile, as happens
    whenever writes pause. If they never pause and the WAL has grown past
    ``RESTART_AFTER`` frames, a ``RESTART`` checkpoint takes the write lock for the
    few frames left: writes meanwhile wait on the worker thread, never on the event loop.
    """
    busy, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if busy or frames <= RESTART_AFTER:
        return
    db.execute(f"PRAGMA busy_timeout = {_RESTART_WAIT_MS}")
    try:
        db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    finally:
        db.execute("PRAGMA busy_timeout = 0")
