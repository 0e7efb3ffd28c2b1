"""The janitor: deletes what has expired, in bounded batches, on an interval.

Expired data is already invisible to reads; the janitor frees the space. One run
removes everything expired at its start, whatever its number, about ``batch_size``
rows per transaction, and returns the counts; while another process runs the janitor
on the same database, a run is skipped and its report says so. The loop runs every
``dataRetention.janitorInterval``, never overlaps itself, logs a one-line summary, and
logs an error in one run without stopping the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Final, Protocol

from botmemory.clock import Clock
from botmemory.durations import Seconds, parse_duration
from botmemory.retention import RetentionPolicies
from botmemory.stats import notify
from botmemory.storage.base import SessionRecord, Storage
from botmemory.tasks import cancel_and_wait

__all__ = [
    "KINDS",
    "HookRegistration",
    "Janitor",
    "JanitorReport",
    "JanitorSink",
    "JanitorTotals",
    "SessionHook",
]

log = logging.getLogger("botmemory.janitor")

DEFAULT_BATCH_SIZE = 1000
HISTORY_SIZE = 50
STOP_GRACE: Final = parse_duration("30s")
"""How long :meth:`Janitor.stop` lets a run finish its batch before cancelling it."""

Progress = Callable[[str, int], None]
"""Told after each batch of a run: what kind of data, and how many removed so far."""
SessionHook = Callable[[list[SessionRecord]], Awaitable[None]]
"""A function the janitor calls with sessions before it removes their expired parts."""

_NO_TIME: Final = Seconds(0.0)
SKIPPED: Final = "janitor run skipped: another process is running the janitor"
"""The summary of a skipped run."""


@dataclass(frozen=True, slots=True)
class JanitorReport:
    """What one janitor run removed, by kind, or that it was skipped."""

    user_variables: int = 0
    """User variables deleted by a retention policy."""
    user_fields: int = 0
    """Variables from which an expired nested field was removed."""
    sessions: int = 0
    """Timed-out sessions deleted with their variables."""
    temp: int = 0
    """Idle temp memories emptied."""
    kvs: int = 0
    """Expired key-value store keys deleted."""
    started_at: float = 0.0
    duration: Seconds = _NO_TIME
    """Wall-clock time the run took."""
    error: str | None = None
    """Why the run failed, for a run that failed."""
    skipped: bool = False
    """Whether the run was skipped, removing nothing: another process (or another memory
    on the same database) held the janitor lock, and its run removes what expired."""

    @property
    def total(self) -> int:
        """Everything removed."""
        return self.user_variables + self.user_fields + self.sessions + self.temp + self.kvs

    def as_dict(self) -> dict[str, float | int | str | None]:
        """Return the counts as a JSON-able dict."""
        return asdict(self)

    def summary(self) -> str:
        """One line for the log."""
        if self.skipped:
            return SKIPPED
        return (
            f"janitor removed {self.user_variables} user variables, {self.user_fields} "
            f"expired fields, {self.sessions} sessions, {self.temp} temp memories and "
            f"{self.kvs} kvs keys in {self.duration:.3f}s"
        )


KINDS = ("user_variables", "user_fields", "sessions", "temp", "kvs")
"""What the janitor removes, by kind: the fields of :class:`JanitorReport` that count."""


@dataclass(frozen=True, slots=True, eq=False)
class _Hooks:
    on_dialog_timeout: SessionHook | None
    on_session_end: SessionHook | None


class HookRegistration:
    """Hooks added by :meth:`Janitor.add_hooks`; :meth:`remove` takes them out again."""

    def __init__(self, registered: list[_Hooks], hooks: _Hooks) -> None:
        self._registered = registered
        self._hooks = hooks

    def remove(self) -> None:
        """Stop calling these hooks (again: nothing)."""
        if self._hooks in self._registered:
            self._registered.remove(self._hooks)


class JanitorSink(Protocol):
    """Hears of the janitor's runs, and of its loop starting and stopping."""

    def janitor_ran(self, report: JanitorReport) -> None:
        """A run ended (failed or not)."""

    def janitor_looping(self, running: bool) -> None:
        """The loop started (``True``) or stopped."""


@dataclass
class JanitorTotals:
    """What the janitor did since the memory was opened (for metrics)."""

    runs: int = 0
    failed_runs: int = 0
    removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    sinks: list[JanitorSink] = field(default_factory=list, repr=False)
    """Told of every run, and of the loop starting and stopping."""

    def add(self, report: JanitorReport) -> None:
        """Count one run."""
        self.runs += 1
        self.failed_runs += report.error is not None
        for kind in KINDS:
            self.removed[kind] += getattr(report, kind)
        notify(self.sinks, "janitor_ran", report)

    def looping(self, running: bool) -> None:
        """Tell the sinks that the loop started or stopped."""
        notify(self.sinks, "janitor_looping", running)


class Janitor:
    """Removes expired data from one storage, once or on an interval."""

    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        policies_for: Callable[[str], RetentionPolicies],
        interval: Seconds,
        batch_size: int = DEFAULT_BATCH_SIZE,
        session_interval: Seconds | None = None,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._policies_for = policies_for
        self.interval = interval
        """Time between two full runs (``dataRetention.janitorInterval``)."""
        self.session_interval = min(interval, session_interval or interval)
        """Time between two sweeps of timed-out dialogs and sessions in between
        (the shortest ``dialog.janitorInterval``)."""
        self.batch_size = batch_size
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        """Set by :meth:`stop`: a run ends after its current batch, the loop at once."""
        self.history: deque[JanitorReport] = deque(maxlen=HISTORY_SIZE)
        """The most recent runs, oldest first, failed ones included."""
        self.totals = JanitorTotals()
        """Every run so far, counted."""
        self._progress: Progress | None = None
        self.on_dialog_timeout: SessionHook | None = None
        """Called with each batch of sessions whose temp memory expired, before it is
        emptied (after the hooks of :meth:`add_hooks`)."""
        self.on_session_end: SessionHook | None = None
        """Called with each batch of timed-out sessions, before they are deleted (after
        the hooks of :meth:`add_hooks`)."""
        self._hooks: list[_Hooks] = []
        self._ending: dict[tuple[str, str], int] = {}
        self._claims: dict[tuple[str, str], asyncio.Event] = {}
        """Sessions a run or a caller of this process is ending now (see claiming)."""
        """Sessions that :meth:`ending` keeps runs from ending (how many callers each)."""

    def add_hooks(
        self,
        *,
        on_dialog_timeout: SessionHook | None = None,
        on_session_end: SessionHook | None = None,
    ) -> HookRegistration:
        """Call these hooks too, in the order they were added, until the registration is
        removed (a dialog engine adds its timeout handling this way)."""
        hooks = _Hooks(on_dialog_timeout, on_session_end)
        self._hooks.append(hooks)
        return HookRegistration(self._hooks, hooks)

    def dialog_timeout_hooks(self) -> list[SessionHook]:
        """The hooks a run calls with timed-out dialogs, in order."""
        found = [h.on_dialog_timeout for h in self._hooks if h.on_dialog_timeout]
        return [*found, self.on_dialog_timeout] if self.on_dialog_timeout else found

    def session_end_hooks(self) -> list[SessionHook]:
        """The hooks a run calls with timed-out sessions, in order."""
        found = [h.on_session_end for h in self._hooks if h.on_session_end]
        return [*found, self.on_session_end] if self.on_session_end else found

    async def run_once(
        self, *, sessions_only: bool = False, progress: Progress | None = None
    ) -> JanitorReport:
        """Remove everything that expired before now; return the counts.

        With ``sessions_only``, only timed-out dialogs (temp memories) and sessions.
        ``progress`` is called after every batch with a kind and its count so far.
        While another process runs the janitor on the same database, the run removes
        nothing and returns a report with ``skipped`` set (logged, not kept in
        :attr:`history` nor counted in :attr:`totals`).
        """
        self._progress = progress
        async with self._lock, self._storage.janitor_lock() as acquired:
            if not acquired:
                log.info(SKIPPED)
                return JanitorReport(started_at=self._clock(), skipped=True)
            started = time.monotonic()
            now = self._clock()
            temp = await self._expire_temps(now)
            sessions = 0 if self._stopping.is_set() else await self._expire_sessions(now)
            deleted = stripped = kvs = 0
            if not (sessions_only or self._stopping.is_set()):
                deleted, stripped = await self._expire_user_vars(now)
                if not self._stopping.is_set():
                    kvs = await self._drain("kvs", self._storage.delete_expired_kvs, now)
            report = JanitorReport(
                deleted, stripped, sessions, temp, kvs, now, Seconds(time.monotonic() - started)
            )
        self._record(report)
        log.info(report.summary())
        return report

    def _record(self, report: JanitorReport) -> None:
        self.history.append(report)
        self.totals.add(report)

    @property
    def last_report(self) -> JanitorReport | None:
        """The most recent run, or ``None`` before the first."""
        return self.history[-1] if self.history else None

    def _advance(self, kind: str, total: int) -> None:
        if self._progress is not None:
            self._progress(kind, total)

    async def _drain(
        self, kind: str, step: Callable[[float, int], Awaitable[int]], now: float
    ) -> int:
        """Call ``step`` until it removes less than a batch."""
        total = 0
        while True:
            removed = await step(now, self.batch_size)
            total += removed
            self._advance(kind, total)
            if removed < self.batch_size or self._stopping.is_set():
                return total

    async def _expire_temps(self, now: float) -> int:
        return await self._expire(
            "temp",
            self._storage.expired_temps,
            self.dialog_timeout_hooks,
            self._storage.clear_temps,
            now,
        )

    async def _expire_sessions(self, now: float) -> int:
        return await self._expire(
            "sessions",
            self._storage.expired_sessions,
            self.session_end_hooks,
            self._storage.delete_sessions,
            now,
        )

    async def _expire(
        self,
        kind: str,
        select: Callable[[float, int], Awaitable[list[SessionRecord]]],
        hooks: Callable[[], list[SessionHook]],
        remove: Callable[[list[SessionRecord]], Awaitable[int]],
        now: float,
    ) -> int:
        """Hand timed-out sessions to ``hooks``, then ``remove`` their expired parts.

        A session with a turn running in this process is left for the next run: the
        turn may revive it. So is one that ``Memory.end_session`` is ending.
        """
        removed = 0
        while True:
            found = await select(now, self.batch_size)
            batch = [s for s in found if not self._left_alone(s)]
            async with self.claiming(batch):  # none is claimed: _left_alone
                await self._call(hooks(), batch)
                done = await remove(batch) if batch else 0
            removed += done
            self._advance(kind, removed)
            if len(found) < self.batch_size or not done or self._stopping.is_set():
                return removed

    @contextlib.contextmanager
    def ending(self, bot_id: str, session_key: str) -> Iterator[None]:
        """While the block runs, runs of this janitor leave the session alone: the caller
        ends it (:meth:`Memory.end_session <botmemory.Memory.end_session>`), so its
        hooks run once."""
        key = (bot_id, session_key)
        self._ending[key] = self._ending.get(key, 0) + 1
        try:
            yield
        finally:
            self._ending[key] -= 1
            if not self._ending[key]:
                del self._ending[key]

    def _left_alone(self, session: SessionRecord) -> bool:
        """A turn of this process runs in the session (it may revive it), a caller of
        :meth:`ending` ends it, or another run or caller is ending it (:meth:`claiming`)."""
        key = (session.bot_id, session.key)
        return (
            self._storage.turn_in_progress(session.bot_id, session.key)
            or key in self._ending
            or key in self._claims
        )

    @contextlib.asynccontextmanager
    async def claiming(self, sessions: list[SessionRecord]) -> AsyncIterator[None]:
        """Hold these sessions as being ended in this process while the block runs, once
        no other run or caller does (waiting for them first), so that their hooks run once."""
        keys = {(s.bot_id, s.key) for s in sessions}
        while busy := [self._claims[key] for key in keys if key in self._claims]:
            await busy[0].wait()
        events = {key: asyncio.Event() for key in keys}
        self._claims.update(events)
        try:
            yield
        finally:
            for key, event in events.items():
                if self._claims.get(key) is event:
                    del self._claims[key]
                event.set()

    async def end_sessions(self, sessions: list[SessionRecord], *, claimed: bool = False) -> int:
        """Run the hooks of these timed-out sessions and delete them; return how many went.

        The dialog-timeout hook runs for those whose temp memory holds something. Another
        run or caller of this process ending one of them is waited for first, unless the
        caller holds them (``claimed``: see :meth:`claiming`).
        """
        async with self.claiming([] if claimed else sessions):
            dialogs = [s for s in sessions if s.temp_expires_at]
            await self._call(self.dialog_timeout_hooks(), dialogs)
            await self._call(self.session_end_hooks(), sessions)
            return await self._storage.delete_sessions(sessions) if sessions else 0

    async def _call(self, hooks: list[SessionHook], sessions: list[SessionRecord]) -> None:
        if not sessions:
            return
        for hook in hooks:
            try:
                await hook(sessions)
            except Exception:
                log.exception("janitor hook %s failed; the expired data is removed anyway", hook)

    async def _expire_user_vars(self, now: float) -> tuple[int, int]:
        deleted = stripped = 0
        while True:
            rows = await self._storage.expired_user_vars(now, self.batch_size)
            before = {row.key: row.value for row in rows}
            updates = [
                u for row in rows if (u := self._policies_for(row.key.bot_id).update_for(row, now))
            ]
            for update in await self._storage.update_user_vars(updates):
                if update.value is None:
                    deleted += 1
                elif update.value != before[update.key]:
                    stripped += 1
            self._advance("user_variables", deleted + stripped)
            if len(rows) < self.batch_size or self._stopping.is_set():
                return deleted, stripped

    async def start(self) -> None:
        """Run the janitor on its own task: fully every ``interval``, and for timed-out
        dialogs and sessions every ``session_interval``."""
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="botmemory-janitor")
            self.totals.looping(True)

    async def stop(self, grace: Seconds = STOP_GRACE) -> None:
        """Stop the loop: a run in progress ends after its current batch (hooks and
        removal both done), or is cancelled after ``grace``."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except BaseException as exc:  # past the grace, or this stop was cancelled: end it
            await cancel_and_wait(task)
            if not isinstance(exc, TimeoutError):
                raise
        finally:
            if task.done():
                self._stopping.clear()  # runs asked for later (run_once) go to the end
                self.totals.looping(False)

    @property
    def running(self) -> bool:
        """Whether the loop is running."""
        return self._task is not None and not self._task.done()

    async def _loop(self) -> None:
        next_full = time.monotonic()
        while True:
            full = time.monotonic() >= next_full
            if full:
                next_full = time.monotonic() + self.interval
            try:
                await self.run_once(sessions_only=not full)
            except Exception as exc:
                self._record(JanitorReport(started_at=self._clock(), error=str(exc)))
                log.exception("janitor run failed; it runs again in %gs", self.session_interval)
            if self._stopping.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.session_interval)
