"""``Memory``: the four memories of every bot, its key-value store and its janitor.

::

    async with await Memory.open("sqlite:///data/memory.db") as mem:
        async with mem.turn("welcome", "u1", message={"type": "text", "text": "hi"}) as state:
            state.user["name"] = "Ada"
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from functools import lru_cache
from types import TracebackType
from typing import Final, TypeVar

from botmemory.clock import Clock, system_clock
from botmemory.config import BotSettings, Settings, load_data_dir, load_settings
from botmemory.durations import Seconds
from botmemory.errors import (
    BackendError,
    BotMemoryError,
    ConflictError,
    InvalidIdError,
    InvalidValueError,
    MessageTooLargeError,
    TurnAbandonedError,
    UserErasedError,
)
from botmemory.ids import Identity, validate_bot_id
from botmemory.janitor import Janitor
from botmemory.kvs import KeyValueStore, KvsAccess, user_key_prefixes
from botmemory.retention import RetentionPolicies
from botmemory.stats import MemoryStats
from botmemory.storage import Storage, create_storage
from botmemory.storage.base import (
    Scope,
    SessionCursor,
    SessionRecord,
    SessionUpdate,
    StoredVar,
    TurnKeys,
    TurnWrite,
    VarKey,
)
from botmemory.turn_kvs import TurnKvs
from botmemory.turns import MESSAGE_IDS, TurnState, begin_turn, finish_turn
from botmemory.values import JsonValue, dumps, loads, to_json_text
from botmemory.views import (
    ErasureCounts,
    ExportedMessage,
    ExportedSession,
    ExportedVariable,
    MemoryView,
    SessionView,
    UserExport,
    VariableView,
)

__all__ = ["Memory", "check_message_size"]


_RETENTION_META: Final = "retention-policies"
_EXPIRY_FORMAT: Final = "*format"
"""The key of that meta entry saying how stored rows record expiries (no bot has a ``*``)."""
_TIMEOUTS_META: Final = "session-timeouts"
_RECONCILE_BATCH: Final = 1000
_RECONCILE_ROUNDS: Final = 5
"""Guarded updates of one batch of sessions, each after reading again those skipped."""
_BACKOFF_FIRST: Final = Seconds(0.001)  # 1 ms
"""The longest wait before the second attempt of a conflicting turn."""
_BACKOFF_MAX: Final = Seconds(0.1)  # 100 ms
"""The longest wait between two attempts (the bound doubles until this)."""

T = TypeVar("T")


def retry_wait(attempt: int) -> Seconds:
    """How long to wait after conflicting attempt ``attempt`` (0-based): random, doubling."""
    return Seconds(random.uniform(0, min(_BACKOFF_MAX, _BACKOFF_FIRST * 2**attempt)))


class Memory:
    """The memory of every bot on one storage backend."""

    def __init__(self, storage: Storage, settings: Settings, clock: Clock | None = None) -> None:
        self.storage = storage
        self.settings = settings
        self.clock: Clock = clock or system_clock
        self.kvs = KvsAccess(storage, self.clock, settings.defaults.max_value_bytes)
        self.policies_for = lru_cache(maxsize=1024)(self._policies_for)
        self.janitor = Janitor(
            storage,
            self.clock,
            self.policies_for,
            settings.janitor_interval,
            session_interval=min(
                b.dialog_janitor_interval for b in (settings.defaults, *settings.bots.values())
            ),
        )
        self.stats = MemoryStats()
        self._erasures = 0
        self._erased: dict[tuple[str, str], int] = {}
        self._turns_running = 0
        self._retry_locks: dict[str, asyncio.Lock] = {}
        self._retrying: dict[str, int] = {}  # bot id -> turns in retry mode

    # -- opening and closing ---------------------------------------------------------
    @classmethod
    async def open(
        cls,
        url: str | None = None,
        config: Mapping[str, object] | None = None,
        bot_configs: Mapping[str, Mapping[str, object]] | None = None,
        clock: Clock | None = None,
    ) -> Memory:
        """Open the memory at ``url`` (or ``database.url`` of ``config``).

        ``url`` is ``"memory://"``, ``"sqlite:///path/memory.db"``, a PostgreSQL or a
        Redis URL. ``config`` is the global configuration as a dict (the keys of
        ``botmemory.config.json``), ``bot_configs`` maps bot ids to theirs.
        """
        settings = load_settings(config, bot_configs)
        return await cls._start(create_storage(_database_url(url, settings)), settings, clock)

    @classmethod
    async def from_data_dir(
        cls, path: str | os.PathLike[str], clock: Clock | None = None
    ) -> Memory:
        """Open the memory described by a data folder's configuration files."""
        settings = load_data_dir(path)
        return await cls._start(create_storage(_database_url(None, settings)), settings, clock)

    @classmethod
    async def _start(cls, storage: Storage, settings: Settings, clock: Clock | None) -> Memory:
        try:
            await storage.open()
            memory = cls(storage, settings, clock)
            await memory._reconcile_retention()
            await memory._reconcile_timeouts()
        except BaseException:
            await storage.close()
            raise
        return memory

    async def apply_settings(self, settings: Settings) -> None:
        """Use ``settings`` from now on (a reloaded configuration).

        Stored expiries follow changed retention policies and shortened timeouts, as at
        start-up. The janitor's intervals and the database stay as they were opened.
        """
        self.settings = settings
        self.policies_for.cache_clear()  # the policies of the old settings
        await self._reconcile_retention()
        await self._reconcile_timeouts()

    async def close(self) -> None:
        """Stop the janitor and release the storage."""
        await self.janitor.stop()
        await self.storage.close()

    async def __aenter__(self) -> Memory:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- turns -----------------------------------------------------------------------
    def _policies_for(self, bot_id: str) -> RetentionPolicies:
        policies = self.settings.for_bot(bot_id).policies
        shared = self.settings.defaults.policies
        own = {key for key, ttl in policies.items() if key not in shared or shared[key] != ttl}
        return RetentionPolicies(policies, own)

    def turn(
        self,
        bot_id: str,
        user_id: str,
        channel: str = "api",
        thread_id: str | None = None,
        message: Mapping[str, JsonValue] | None = None,
        *,
        resume: bool = False,
        message_id: str | None = None,
    ) -> AbstractAsyncContextManager[TurnState]:
        """Load the four memories of a turn, yield them, and persist what changed.

        Turns of one session run one after the other. If the body raises, nothing
        is persisted. ``message`` is the user's message, ``{"type": "text", "text": ...}``
        or any JSON object with a ``type``: it is added to ``session["lastMessages"]``.

        The commit checks that nothing the body read (or wrote) changed meanwhile in
        another turn; if something did, it writes nothing and raises
        :class:`~botmemory.errors.ConflictError`. A body in a ``with`` block cannot run
        again by itself: :meth:`run_turn` runs it again for you, and ``state.bot.incr``
        changes a counter without conflicts.

        A message larger than ``limits.maxMessageBytes`` (see :func:`check_message_size`)
        raises :class:`~botmemory.errors.MessageTooLargeError` and nothing is written.

        ``message_id`` makes the message idempotent: if the session already processed
        it, :class:`~botmemory.errors.DuplicateMessageError` is raised (with the
        replies the first turn stored in ``state.replies``) and the body does not run.

        ``resume=True`` is for timeout handlers (see ``Janitor.on_dialog_timeout``):
        the session and temp memory are shown even if they timed out
        (``state.session_expired`` and ``state.temp_expired`` tell), and their timers
        are left as they were, so the turn does not keep the session alive; nor does it
        start one when none is stored.
        """
        identity = Identity.of(bot_id, user_id, channel, thread_id)
        checked = self._check_message(bot_id, message)
        return self._turn(identity, checked, resume=resume, message_id=_check_id(message_id))

    async def run_turn(
        self,
        body: Callable[[TurnState], Awaitable[T]],
        bot_id: str,
        user_id: str,
        channel: str = "api",
        thread_id: str | None = None,
        message: Mapping[str, JsonValue] | None = None,
        *,
        resume: bool = False,
        message_id: str | None = None,
    ) -> T:
        """Run ``await body(state)`` in a turn, again from a fresh load on a conflict.

        Up to ``concurrency.maxAttempts`` attempts, with a short random wait between
        them that doubles each time (1 ms, 2 ms, ... at most 100 ms); then
        :class:`~botmemory.errors.ConflictError`. While a turn of a bot is retrying,
        the attempts of that bot's turns in this process go one at a time, and one
        process at a time on SQLite and PostgreSQL, so turns fighting over one hot
        variable stop invalidating each other. ``body`` must be safe to run again: only
        its last attempt's changes are kept. Return what the body returned.
        """
        identity = Identity.of(bot_id, user_id, channel, thread_id)
        checked, checked_id = self._check_message(bot_id, message), _check_id(message_id)
        attempts = self.settings.max_attempts
        retrying = False
        try:
            for attempt in range(attempts):
                try:
                    async with contextlib.AsyncExitStack() as stack:
                        if retrying or self._retrying.get(bot_id):
                            await stack.enter_async_context(self._retry_lock(bot_id))
                            await stack.enter_async_context(self.storage.retry_lock(bot_id))
                        async with self._turn(
                            identity, checked, resume=resume, message_id=checked_id
                        ) as state:
                            return await body(state)
                except ConflictError:
                    self.stats.conflicted()
                    if attempt + 1 == attempts:
                        raise
                if not retrying:
                    retrying = True
                    self._retrying[bot_id] = self._retrying.get(bot_id, 0) + 1
                self.stats.retried()
                await asyncio.sleep(retry_wait(attempt))
        finally:
            if retrying:
                self._retrying[bot_id] -= 1
                if not self._retrying[bot_id]:
                    del self._retrying[bot_id]
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_message(
        self, bot_id: str, message: Mapping[str, JsonValue] | None
    ) -> dict[str, JsonValue] | None:
        """Return the message as a dict, refusing one that is not JSON or is too large."""
        if message is None:
            return None
        checked = _check_message(message)
        check_message_size(checked, self.settings.for_bot(bot_id).max_message_bytes)
        return checked

    def _retry_lock(self, bot_id: str) -> asyncio.Lock:
        """The lock that attempts after a conflict hold, one per bot (kept for 1024 bots)."""
        lock = self._retry_locks.pop(bot_id, None) or asyncio.Lock()
        self._retry_locks[bot_id] = lock  # most recently used last
        while len(self._retry_locks) > 1024:
            oldest = next(iter(self._retry_locks))
            if self._retry_locks[oldest].locked():
                break
            del self._retry_locks[oldest]
        return lock

    def edit(
        self, bot_id: str, user_id: str, channel: str = "api", thread_id: str | None = None
    ) -> AbstractAsyncContextManager[TurnState]:
        """Change a user's memories from outside a conversation (an administrator's edit).

        Like :meth:`turn`, but it neither starts nor prolongs the session: changing
        session or temp memory of a session that is not alive raises
        :class:`~botmemory.errors.InvalidValueError`.
        """
        identity = Identity.of(bot_id, user_id, channel, thread_id)
        return self._turn(identity, None, edit=True)

    @asynccontextmanager
    async def _turn(
        self,
        identity: Identity,
        message: dict[str, JsonValue] | None,
        *,
        resume: bool = False,
        edit: bool = False,
        message_id: str | None = None,
    ) -> AsyncIterator[TurnState]:
        bot_id = identity.bot_id
        settings = self.settings.for_bot(bot_id)
        policies = self.policies_for(bot_id)
        keys = TurnKeys(bot_id, identity.user_key, identity.session_key)
        started = time.perf_counter()
        self._turns_running += 1
        try:
            erasures = self._erasures  # an erasure from now on makes the turn fail
            async with self.storage.locked_turn(keys) as snapshot:
                self.stats.lock_waited(time.perf_counter() - started)
                state, loaded = begin_turn(
                    identity,
                    snapshot,
                    settings,
                    policies,
                    self.clock(),
                    message,
                    resume=resume,
                    edit=edit,
                    message_id=message_id,
                )
                loaded.kvs = TurnKvs(self.storage, self.clock)
                state.kvs = KeyValueStore(loaded.kvs, bot_id, self.clock, settings.max_value_bytes)
                yield state
                # the policies in force now: a reload during the body has rescanned the
                # stored rows already, and this turn's writes must follow the new ones
                policies = self.policies_for(bot_id)
                write = finish_turn(state, loaded, settings, policies, self.clock())
                if self._erased.get((bot_id, identity.user_key), -1) > erasures:
                    raise UserErasedError(
                        f"user {identity.user_id!r} of bot {bot_id!r} was erased while this "
                        "turn ran: it wrote nothing"
                    )
                await self.storage.commit_turn(write)
        except BaseException as exc:
            if not isinstance(exc, ConflictError | TurnAbandonedError):
                self.stats.turn_failed(isinstance(exc, BackendError))
            raise
        finally:
            self._turns_running -= 1
            if not self._turns_running:
                self._erased.clear()
        self.stats.turn_done(time.perf_counter() - started)

    async def peek(
        self, bot_id: str, user_id: str, channel: str = "api", thread_id: str | None = None
    ) -> MemoryView:
        """Return the four memories of a session as a turn would see them, changing nothing.

        Each variable comes with when it expires (epoch seconds, or ``None``): a user
        variable by its retention, the session's or temp memory's by their timeout.
        ``now`` is the clock's time, so that a client can count down without trusting
        its own clock. ``to_json()`` gives the view as the HTTP API shows it.
        """
        identity = Identity.of(bot_id, user_id, channel, thread_id)
        settings = self.settings.for_bot(bot_id)
        keys = TurnKeys(bot_id, identity.user_key, identity.session_key)
        now = self.clock()
        snapshot = await self.storage.load_turn(keys)
        state, _ = begin_turn(identity, snapshot, settings, self.policies_for(bot_id), now, None)
        session_expiry, temp_expiry = _timeouts(snapshot.session, settings, state)
        scopes: dict[Scope, dict[str, VariableView]] = {
            "user": {n: VariableView(v, state.user.expiry(n)) for n, v in state.user.items()},
            "session": {n: VariableView(v, session_expiry) for n, v in state.session.items()},
            "temp": {n: VariableView(v, temp_expiry) for n, v in state.temp.items()},
            "bot": {n: VariableView(v, None) for n, v in state.bot.items()},
        }
        return MemoryView(
            bot_id=bot_id,
            user_id=user_id,
            channel=channel,
            thread_id=thread_id,
            session_id=identity.session_id,
            now=now,
            session=SessionView(not state.is_new_session, session_expiry),
            scopes=scopes,
        )

    async def end_session(
        self, bot_id: str, user_id: str, channel: str = "api", thread_id: str | None = None
    ) -> bool:
        """End a session now, as its timeout would, and return whether one was alive.

        The session and its temp memory are marked as timed out now; then, as the janitor
        would, ``on_dialog_timeout`` runs (when temp memory holds something),
        ``on_session_end`` runs, and the session is deleted. User and bot memory stay.
        Meanwhile the janitor's runs in this process leave the session alone, so that
        its hooks run once (a run of another process sharing the database may still
        reach it: see docs/memory.md).
        """
        identity = Identity.of(bot_id, user_id, channel, thread_id)
        keys = TurnKeys(bot_id, identity.user_key, identity.session_key)
        settings = self.settings.for_bot(bot_id)
        with self.janitor.ending(bot_id, identity.session_key):  # from before it times out
            async with self.storage.locked_turn(keys) as snapshot:
                record = snapshot.session
                now = self.clock()
                ends = _timeouts(record, settings, None)[0]
                if record is None or ends is None or now >= ends:
                    return False
                temp = None if record.temp_expires_at is None else now
                ended = replace(record, expires_at=now, temp_expires_at=temp)
                write = TurnWrite(ended, session_version=record.version, now=now)
                await self.storage.commit_turn(write)
                ended = replace(ended, version=write.version)
            # it was alive and is ended: a turn that started the session anew meanwhile
            # (from a hook, say) keeps its new session, which end_sessions does not delete
            await self.janitor.end_sessions([ended])
            return True

    # -- users -------------------------------------------------------------------------
    async def export_user(self, bot_id: str, user_id: str, channel: str = "api") -> UserExport:
        """Return everything stored for one user; ``to_json()`` gives the export document.

        Only what is still alive is exported: expired data is already gone for users.
        ``kvs`` holds the bot's keys of the user (``storage/users/<userId>/``) and of their
        conversations on this channel (``storage/conversation/<sessionId>/``), those of
        ended sessions included: see :func:`~botmemory.kvs.user_key_prefixes`.
        """
        identity = Identity.of(bot_id, user_id, channel)
        now = self.clock()
        records = await self.storage.load_user(bot_id, identity.user_key)
        policies = self.policies_for(bot_id)
        settings = self.settings.for_bot(bot_id)
        user: dict[str, ExportedVariable] = {}
        for row in records.user:
            exported = _export_user_var(row, policies, now)
            if exported is not None:
                user[row.key.name] = exported
        sessions: list[ExportedSession] = []
        for s in records.sessions:
            session_ends = s.session_ends(settings.session_timeout)
            if now >= session_ends:
                continue
            dialog_ends = s.dialog_ends(settings.session_timeout, settings.dialog_timeout)
            temp_alive = s.temp_expires_at is not None and now < dialog_ends
            sessions.append(
                ExportedSession(
                    session_id=_session_id(bot_id, s.key),
                    started_at=s.started_at,
                    last_seen=s.last_seen,
                    expires_at=session_ends,
                    variables=_plain(records.session_vars, s.key),
                    temp=_plain(records.temp_vars, s.key) if temp_alive else {},
                    messages=_messages(records.session_vars, s.key),
                )
            )
        kvs = await self._user_kvs(identity)
        return UserExport(bot_id, channel, user_id, now, user, tuple(sessions), kvs)

    async def _user_kvs(self, identity: Identity) -> dict[str, JsonValue]:
        """The live keys of the bot's store under :func:`~botmemory.kvs.user_key_prefixes`."""
        kvs = self.kvs.for_bot(identity.bot_id)
        stored: dict[str, JsonValue] = {}
        for prefix in user_key_prefixes(identity):
            for key in await kvs.keys(prefix):
                entry = await kvs.entry(key)
                if entry is not None:  # else it expired since it was listed
                    stored[key] = entry.value
        return stored

    async def forget_user(self, bot_id: str, user_id: str, channel: str = "api") -> ErasureCounts:
        """Erase everything stored for one user; return how much of each kind was removed.

        Everything :meth:`export_user` shows, expired or not: user variables, sessions with
        their variables (``sessions``, ``session_variables``), and the bot's keys of the
        user and of all their conversations (``kvs``). A turn of that user already running
        when this is called fails with :class:`~botmemory.errors.UserErasedError` and
        writes nothing. On SQLite the erased values are gone from the database file and
        its WAL when this returns; when another connection's transaction keeps the WAL
        from being emptied, :class:`~botmemory.errors.ErasurePendingError` says so (the
        data is deleted all the same) and calling this again finishes the job.
        """
        identity = Identity.of(bot_id, user_id, channel)
        if self._turns_running:  # a turn that loaded this user before now must not write
            self._erasures += 1
            self._erased[(bot_id, identity.user_key)] = self._erasures
        prefixes = user_key_prefixes(identity)
        return ErasureCounts.of(await self.storage.delete_user(bot_id, identity.user_key, prefixes))

    # -- retention policies changed since the last start ---------------------------------
    async def _reconcile_retention(self) -> None:
        """Recompute stored expiries for the bots whose policies changed since last time."""
        current = {"*": RetentionPolicies(self.settings.defaults.policies).fingerprint} | {
            bot: self.policies_for(bot).fingerprint for bot in self.settings.bots
        }
        current[_EXPIRY_FORMAT] = "2"  # expiries recorded per field (see StoredExpiry)
        stored_text = await self.storage.get_meta(_RETENTION_META)
        stored: dict[str, str] = json.loads(stored_text) if stored_text else {}
        if stored == current:
            return
        legacy = stored.get(_EXPIRY_FORMAT) != current[_EXPIRY_FORMAT]
        if legacy or stored.get("*") != current["*"]:
            await self._reconcile(None, legacy=legacy)
        else:
            for bot in sorted(set(stored) | set(current)):
                if bot not in ("*", _EXPIRY_FORMAT) and stored.get(bot) != current.get(bot):
                    await self._reconcile(validate_bot_id(bot))
        await self.storage.set_meta(_RETENTION_META, json.dumps(current, sort_keys=True))

    async def _reconcile_timeouts(self) -> None:
        """Bring stored session timers within shortened timeouts, so the janitor sees them.

        A scan of every stored session in bounded batches, each followed by a guarded
        update (see :meth:`_bring_within`); only when the timeouts changed since last time.
        """
        bots = {"*": self.settings.defaults, **self.settings.bots}
        current = {b: [s.session_timeout, s.dialog_timeout] for b, s in bots.items()}
        stored = await self.storage.get_meta(_TIMEOUTS_META)
        if stored is not None and json.loads(stored) == current:
            return
        after: SessionCursor | None = None
        while True:
            sessions, after = await self.storage.scan_sessions(after, _RECONCILE_BATCH)
            await self._bring_within(sessions)
            if after is None:
                break
        await self.storage.set_meta(_TIMEOUTS_META, json.dumps(current, sort_keys=True))

    async def _bring_within(self, sessions: list[SessionRecord]) -> None:
        """Bring these sessions' timers within the timeouts in force (:meth:`SessionRecord.within`).

        The update is guarded: a session that a turn rewrote since it was read is
        skipped, read again and handled in the next round. A session that turns keep
        rewriting through every round is left to them: a turn of this version sets its
        timers within the timeouts itself.
        """
        for _ in range(_RECONCILE_ROUNDS):
            updates = [u for s in sessions if (u := self._timers_within(s)) is not None]
            if not updates:
                return
            applied = await self.storage.update_sessions(updates)
            done = {(u.read.bot_id, u.read.key) for u in applied}
            skipped = [u.read for u in updates if (u.read.bot_id, u.read.key) not in done]
            sessions = []
            for s in skipped:
                keys = TurnKeys(s.bot_id, s.user_key, s.key)
                current = (await self.storage.load_turn(keys)).session
                if current is not None:  # else the janitor deleted it meanwhile
                    sessions.append(current)

    def _timers_within(self, session: SessionRecord) -> SessionUpdate | None:
        """The update that brings ``session`` within its bot's timeouts; ``None`` if it is."""
        settings = self.settings.for_bot(session.bot_id)
        within = session.within(settings.session_timeout, settings.dialog_timeout)
        if within == session:
            return None
        return SessionUpdate(session, within.expires_at, within.temp_expires_at)

    async def _reconcile(self, bot_id: str | None, *, legacy: bool = False) -> None:
        """Apply the policies in force to every stored user variable (of one bot or all);
        ``legacy``: rows may come from a version that did not record expiries per field
        (see :meth:`~botmemory.retention.StoredExpiry.of`): rewritten in today's form."""
        after: VarKey | None = None
        while True:
            rows = await self.storage.scan_user_vars(bot_id, after, _RECONCILE_BATCH)
            if not rows:
                return
            now = self.clock()
            updates = [
                u
                for row in rows
                if (
                    u := self.policies_for(row.key.bot_id).update_for(
                        row, now, defer=True, legacy=legacy
                    )
                )
            ]
            await self.storage.update_user_vars(updates)
            after = rows[-1].key


def _database_url(url: str | None, settings: Settings) -> str:
    """The URL to open: the one given, else ``database.url``; raise when there is none."""
    url = url or settings.database_url
    if not url:
        raise BotMemoryError("no database URL: pass one, or set database.url in the config")
    return url


def _timeouts(
    record: SessionRecord | None, settings: BotSettings, state: TurnState | None
) -> tuple[float | None, float | None]:
    """When the session and its temp memory time out; ``None`` for what is over."""
    if record is None or (state is not None and state.is_new_session):
        return None, None
    session = record.session_ends(settings.session_timeout)
    if record.temp_expires_at is None or (state is not None and not len(state.temp)):
        return session, None
    return session, record.dialog_ends(settings.session_timeout, settings.dialog_timeout)


def check_message_size(message: Mapping[str, JsonValue], max_bytes: int) -> None:
    """Refuse a message over ``max_bytes`` (``limits.maxMessageBytes``).

    Its size is its ``text`` as UTF-8 plus every other field but ``type`` as JSON (for
    the dialog engine: the text plus the payload). Raise
    :class:`~botmemory.errors.MessageTooLargeError`, which says that nothing was stored,
    and :class:`~botmemory.errors.InvalidValueError` for a text no UTF-8 can carry.
    """
    size = 0
    for name, value in message.items():
        if name == "text" and isinstance(value, str):
            try:
                size += len(value.encode())
            except UnicodeEncodeError:  # what no UTF-8 reply, log or database can carry
                raise InvalidValueError(
                    "message text: not valid Unicode text (half of a surrogate pair, such as "
                    "\\ud83d, without the other): nothing was stored"
                ) from None
        elif name != "type" and not (name == "text" and value is None):
            size += len(dumps(value).encode())
    if size > max_bytes:
        raise MessageTooLargeError(
            f"the message is {size} bytes, over the limit of {max_bytes} bytes "
            "(limits.maxMessageBytes): nothing was stored"
        )


def _check_message(message: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    if not isinstance(message, Mapping) or not isinstance(message.get("type"), str):
        raise InvalidValueError(
            f"message {message!r} must be a JSON object with a string 'type', "
            "for example {'type': 'text', 'text': 'hello'}"
        )
    checked = dict(message)
    to_json_text(checked, "message", 1 << 30)
    return checked


def _export_user_var(
    row: StoredVar, policies: RetentionPolicies, now: float
) -> ExportedVariable | None:
    ev = policies.evaluate_row(row, now)
    if ev.expired:
        return None
    return ExportedVariable(ev.value, row.changed_at, ev.expires_at)


def _plain(rows: list[StoredVar], owner: str) -> dict[str, JsonValue]:
    return {
        r.key.name: loads(r.value)
        for r in rows
        if r.key.owner == owner and r.key.name != MESSAGE_IDS
    }


def _messages(rows: list[StoredVar], owner: str) -> tuple[ExportedMessage, ...]:
    """The message ids a session remembers (:data:`~botmemory.turns.MESSAGE_IDS`), stored
    as ``[[id, replies], ...]`` (replies ``None`` when they did not fit)."""
    stored = next((r for r in rows if r.key.owner == owner and r.key.name == MESSAGE_IDS), None)
    entries = loads(stored.value) if stored is not None else []
    return tuple(
        ExportedMessage(str(entry[0]), tuple(entry[1]) if isinstance(entry[1], list) else ())
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, list) and len(entry) == 2
    )


def _check_id(message_id: str | None) -> str | None:
    if message_id is None:
        return None
    if not isinstance(message_id, str) or not message_id or len(message_id) > 255:
        raise InvalidIdError(
            f"message id {message_id!r} is invalid: use a string of 1 to 255 characters"
        )
    return message_id


def _session_id(bot_id: str, session_key: str) -> str:
    return Identity.from_key(bot_id, session_key).session_id
