"""A turn: what one user message sees of the four memories, and what it writes back.

:func:`begin_turn` turns a storage snapshot into a :class:`TurnState` (dropping what
has expired: a timed-out session, an idle temp memory, user variables past their
retention). :func:`finish_turn` turns the state back into one :class:`TurnWrite` that
holds only what the turn changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from botmemory.clock import iso_time
from botmemory.config import BotSettings
from botmemory.errors import DuplicateMessageError, SessionNotAliveError, ValueTooLargeError
from botmemory.ids import Identity
from botmemory.kvs import KeyValueStore
from botmemory.retention import Evaluation, RetentionPolicies, StoredExpiry
from botmemory.scopes import ScopeMemory
from botmemory.storage.base import (
    ANY_STORED,
    Scope,
    ScopeCheck,
    SessionRecord,
    StoredVar,
    TurnSnapshot,
    TurnWrite,
    VarCheck,
    VarDelta,
    VarKey,
    new_version,
)
from botmemory.turn_kvs import TurnKvs
from botmemory.values import MISSING, JsonValue, dumps, loads, truncate_text

__all__ = [
    "LAST_MESSAGES",
    "MESSAGE_IDS",
    "LoadedTurn",
    "TurnState",
    "begin_turn",
    "finish_turn",
]

LAST_MESSAGES = "lastMessages"
"""The session variable that holds the session's last user messages."""
MESSAGE_IDS = "\x01messageIds"
"""The hidden session variable that remembers processed message ids with their replies.

Its name has a control character, which no variable name may have: no bot can read,
overwrite or export it by mistake."""


@dataclass(eq=False)
class TurnState:
    """The four memories of one turn. Change them freely; the turn persists the changes."""

    identity: Identity
    user: ScopeMemory
    session: ScopeMemory
    temp: ScopeMemory
    bot: ScopeMemory
    is_new_session: bool
    """True when this turn started a session (first turn, or the last one timed out)."""
    message: dict[str, JsonValue] | None = None
    flow_ended: bool = False
    """True once :meth:`end_flow` was called in this turn."""
    session_expired: bool = False
    """In a resumed turn: the session had timed out (it is shown anyway)."""
    temp_expired: bool = False
    """In a resumed turn: the temp memory had timed out (it is shown anyway)."""
    timed_out_session: SessionRecord | None = None
    """The stored session this turn found timed out, which the janitor has not dropped
    yet (the turn starts a new one); ``None`` in resumed and administrators' turns."""
    expired_temp: dict[str, str] = field(default_factory=dict)
    """Temp memory that timed out and that the janitor has not swept yet, as stored
    (JSON text by name): for dialog-timeout handling that comes with the next message.
    See :meth:`resume_expired_temp`."""
    replies: list[JsonValue] = field(default_factory=list)
    """What the turn answered, stored with its message id (if it has one), so that the
    same message sent again gets the same answer without running again."""
    kvs: KeyValueStore = field(default=None)  # type: ignore[assignment]
    """The bot's key-value store inside this turn: what it reads is checked and what it
    writes is committed with the turn, or not at all."""

    @property
    def session_id(self) -> str:
        """``bot::channel::user`` plus ``::thread`` when there is a thread."""
        return self.identity.session_id

    @property
    def bot_id(self) -> str:
        """The bot this turn belongs to."""
        return self.identity.bot_id

    @property
    def user_id(self) -> str:
        """The user this turn belongs to."""
        return self.identity.user_id

    def resume_expired_temp(self) -> None:
        """Show the timed-out temp memory in ``temp``, to handle its timeout late.

        Whatever happens next, the old temp memory is not kept: call :meth:`end_flow`
        once the timeout is handled.
        """
        self.temp.replace_loaded(self.expired_temp)
        self.expired_temp = {}

    def end_flow(self) -> None:
        """End the flow: temp memory is emptied now and stays empty when persisted.

        What the turn sets in temp after this call belongs to the next flow and is kept.
        """
        self.flow_ended = True
        self.temp.forget_loaded()


@dataclass
class LoadedTurn:
    """What a turn needs at commit time from what it loaded.

    :func:`begin_turn` returns it next to the :class:`TurnState`; pass both back to
    :func:`finish_turn`. Its fields are the turn's bookkeeping: read them, do not
    change them (except ``kvs``, which the memory sets to the turn's key-value view).
    """

    session: SessionRecord | None
    session_alive: bool
    reset_temp: bool
    resumed: bool = False
    edit: bool = False
    user_rows: dict[str, tuple[StoredVar, Evaluation | None]] = field(default_factory=dict)
    message_id: str | None = None
    message_ids: list[JsonValue] = field(default_factory=list)
    kvs: TurnKvs | None = None
    stamp: object = None


def begin_turn(
    identity: Identity,
    snapshot: TurnSnapshot,
    settings: BotSettings,
    policies: RetentionPolicies,
    now: float,
    message: dict[str, JsonValue] | None,
    *,
    resume: bool = False,
    edit: bool = False,
    message_id: str | None = None,
) -> tuple[TurnState, LoadedTurn]:
    """Build the state a turn sees at ``now`` from what storage holds.

    With ``resume``, a timed-out session and temp memory are shown as they were, and
    their timers are left alone when the turn is persisted: for timeout handlers.
    With ``edit``, the turn is an administrator's change: it sees what a turn sees,
    but persisting it neither starts nor prolongs a session.
    A ``message_id`` that the live session already processed raises
    :class:`~botmemory.errors.DuplicateMessageError` with the replies stored then.
    """
    record = snapshot.session
    alive = record is not None and now < record.session_ends(settings.session_timeout)
    temp_alive = (
        alive
        and record is not None
        and record.temp_expires_at is not None
        and now < record.dialog_ends(settings.session_timeout, settings.dialog_timeout)
    )
    shown_session = alive or (resume and record is not None)
    shown_temp = temp_alive or (resume and record is not None)
    loaded = LoadedTurn(
        record,
        shown_session,
        reset_temp=bool(shown_session and not shown_temp and snapshot.temp_vars),
        resumed=resume,
        edit=edit,
        stamp=snapshot.stamp,
    )
    user = _load_user(snapshot.user, policies, now, loaded, settings.max_value_bytes)
    session = _scope("session", snapshot.session_vars if shown_session else (), settings)
    hidden = session.hide(MESSAGE_IDS)
    if hidden is not None:
        seen = loads(hidden)
        loaded.message_ids = seen if isinstance(seen, list) else []
    loaded.message_id = message_id
    if message_id is not None:
        _refuse_duplicate(identity, loaded.message_ids, message_id)
    state = TurnState(
        identity,
        user,
        session,
        _scope("temp", snapshot.temp_vars if shown_temp else (), settings),
        _scope("bot", snapshot.bot, settings),
        is_new_session=not shown_session,
        message=message,
        session_expired=not alive,
        temp_expired=not temp_alive,
    )
    if not shown_session and not edit:
        state.timed_out_session = record
    if not shown_temp and not edit:
        state.expired_temp = {row.key.name: row.value for row in snapshot.temp_vars}
    if message is not None and settings.last_messages > 0:
        _remember_message(state, message, now, settings.last_messages)
    return state, loaded


def _scope(name: Scope, rows: Sequence[StoredVar], settings: BotSettings) -> ScopeMemory:
    texts = {row.key.name: row.value for row in rows}
    return ScopeMemory(name, texts, settings.max_value_bytes, stored=rows)


def _refuse_duplicate(identity: Identity, seen: list[JsonValue], message_id: str) -> None:
    for entry in seen:
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == message_id:
            replies = entry[1] if isinstance(entry[1], list) else []
            raise DuplicateMessageError(
                f"message {message_id!r} of session {identity.session_id!r} was already "
                "processed: nothing ran again",
                list(replies),
            )


def _load_user(
    rows: list[StoredVar],
    policies: RetentionPolicies,
    now: float,
    loaded: LoadedTurn,
    max_bytes: int,
) -> ScopeMemory:
    texts: dict[str, str] = {}
    values: dict[str, JsonValue] = {}
    expiries: dict[str, float | None] = {}
    policed = bool(policies)
    for row in rows:
        name = row.key.name
        if row.expires_at is None and not (policed and policies.for_variable(name).expires):
            texts[name] = row.value
            loaded.user_rows[name] = (row, None)
            continue
        ev = policies.evaluate_row(row, now)
        if ev.expired:
            continue
        texts[name] = dumps(ev.value) if ev.stripped else row.value
        values[name] = ev.value
        expiries[name] = ev.expires_at
        loaded.user_rows[name] = (row, ev)
    return ScopeMemory("user", texts, max_bytes, expiries, values, rows)


MIN_MESSAGE_SHARE: Final = 32
"""The fewest bytes of ``limits.maxValueBytes`` an entry of ``session.lastMessages`` gets
for its type and text: with more entries than that allows, the oldest go."""


def _remember_message(
    state: TurnState, message: dict[str, JsonValue], now: float, keep: int
) -> None:
    # each of the ``keep`` entries gets an equal share of limits.maxValueBytes, less its
    # brackets, comma, keys and timestamp (64 bytes): the history always fits, and an
    # entry stored larger by an earlier version is cut too; fewer entries are kept when
    # a share would be under MIN_MESSAGE_SHARE
    limit = state.session.max_value_bytes - 2
    keep = max(1, min(keep, limit // (1 + 64 + MIN_MESSAGE_SHARE)))
    share = limit // keep - 1 - 64

    def fit(entry: dict[str, JsonValue]) -> dict[str, JsonValue]:
        kind = truncate_text(str(entry.get("type")), max(2, min(share // 4, 64)))
        text = entry.get("text")
        if isinstance(text, str):
            text = truncate_text(text, max(2, share - len(dumps(kind).encode())))
        return {**entry, "type": kind, "text": text}

    entry: dict[str, JsonValue] = {
        "type": message.get("type"),
        "text": message.get("text"),
        "timestamp": iso_time(now),
    }
    previous = state.session.get(LAST_MESSAGES)
    history = list(previous) if isinstance(previous, list) else []
    history.append(entry)
    kept = [fit(item) if isinstance(item, dict) else item for item in history[-keep:]]
    while True:
        try:
            state.session[LAST_MESSAGES] = kept
            return
        except ValueTooLargeError:  # shares too small for an entry: keep fewer
            if not kept:
                raise
            del kept[0]


def finish_turn(
    state: TurnState,
    loaded: LoadedTurn,
    settings: BotSettings,
    policies: RetentionPolicies,
    now: float,
) -> TurnWrite:
    """Return the checks and writes that persist what ``state`` changed, as of ``now``.

    Every row it writes already carries the commit's version.
    """
    ident = state.identity
    bot_id, user_key, session_key = ident.bot_id, ident.user_key, ident.session_key
    version = new_version()
    upserts: list[StoredVar] = []
    deletes: list[VarKey] = []
    deltas: list[VarDelta] = []
    for scope, owner in (
        (state.session, session_key),
        (state.temp, session_key),
        (state.bot, ""),
    ):
        changed, deleted = scope.changes()
        kind = scope.scope
        upserts += [
            StoredVar(VarKey(kind, bot_id, owner, n), t, now, None, None, version)
            for n, t in changed.items()
        ]
        deletes += [VarKey(kind, bot_id, owner, n) for n in deleted]
        deltas += [VarDelta(VarKey(kind, bot_id, owner, n), by) for n, by in scope.deltas().items()]
    changed, deleted = state.user.changes()
    upserts += [
        _user_var(
            state, loaded, policies, VarKey("user", bot_id, user_key, name), text, now, version
        )
        for name, text in changed.items()
    ]
    deletes += [VarKey("user", bot_id, user_key, n) for n in deleted]
    deltas += [
        _user_delta(policies, VarKey("user", bot_id, user_key, n), by, now)
        for n, by in state.user.deltas().items()
    ]
    session = _session_record(state, loaded, settings, now, version)
    if session is not None and session.version != version:
        session = replace(session, version=version)
    if session is not None and loaded.message_id is not None and settings.message_ids:
        upserts.append(_message_ids(state, loaded, settings, now)._replace(version=version))
    kvs = loaded.kvs if loaded.kvs is not None and loaded.kvs.used else None
    return TurnWrite(
        session,
        session_version=None if session is None else _version(loaded.session),
        reset_session=session is not None
        and loaded.session is not None
        and not loaded.session_alive,
        reset_temp=session is not None and (loaded.reset_temp or state.flow_ended),
        deletes=deletes,
        upserts=upserts,
        deltas=deltas,
        checks=_checks(state, user_key, erasable=session is None or loaded.session is None),
        scope_checks=_scope_checks(state, user_key),
        kvs_writes=kvs.writes() if kvs is not None else (),
        kvs_checks=kvs.checks() if kvs is not None else (),
        kvs_prefix_checks=kvs.prefix_checks() if kvs is not None else (),
        kvs_deltas=kvs.deltas() if kvs is not None else (),
        now=now,
        version=version,
        loaded_stamp=loaded.stamp,
    )


def _version(record: SessionRecord | None) -> int:
    return 0 if record is None else record.version


def _checks(state: TurnState, user_key: str, *, erasable: bool) -> list[VarCheck]:
    """Every user and bot variable the turn read or wrote, with the version it loaded.

    ``erasable``: the commit checks no stored session (none was stored, or an edit does
    not write the timed-out one it found), so if another process erased the user meanwhile,
    nothing else the commit checks would have changed: every variable of the user memory
    it loaded must then still be stored (:data:`ANY_STORED`), which the erasure ends. A
    value another session of the user changes, or a variable it adds, does not matter.
    """
    bot_id = state.bot_id
    checks = {
        VarKey(scope.scope, bot_id, owner, name): scope.versions.get(name, 0)
        for scope, owner in ((state.user, user_key), (state.bot, ""))
        for name in scope.checked()
    }
    if erasable:
        for name in state.user.versions:
            checks.setdefault(VarKey("user", bot_id, user_key, name), ANY_STORED)
    return [VarCheck(key, version) for key, version in checks.items()]


def _scope_checks(state: TurnState, user_key: str) -> list[ScopeCheck]:
    """The user or bot memory the turn listed or counted: the same names must be stored."""
    return [
        ScopeCheck(scope.scope, state.bot_id, owner, scope.stored_names())
        for scope, owner in ((state.user, user_key), (state.bot, ""))
        if scope.listed
    ]


def _user_delta(policies: RetentionPolicies, key: VarKey, by: int | float, now: float) -> VarDelta:
    """An increment of a user variable: its retention counts from this change.

    A number has no fields, so only the variable's own policy counts; its value is not
    looked at, which would make the commit check it (increments never conflict).
    """
    ttl = policies.for_variable(key.name).ttl
    return VarDelta(key, by, None if ttl is None else now + ttl)


def _message_ids(
    state: TurnState, loaded: LoadedTurn, settings: BotSettings, now: float
) -> StoredVar:
    """The session's remembered message ids, with this one and its replies, within
    ``limits.maxValueBytes``: the oldest go first, and a message whose replies alone
    would not fit is remembered without them (a copy of it then gets no reply)."""
    kept = loaded.message_ids if loaded.session_alive else []
    entry: JsonValue = [loaded.message_id, list(state.replies)]
    remembered = [*kept, entry][-settings.message_ids :]
    text = dumps(remembered)
    if not _fits(text, settings.max_value_bytes):  # each entry's size once, then the sum
        sizes = [len(dumps(item).encode()) + 1 for item in remembered]  # and its comma
        while len(remembered) > 1 and sum(sizes) + 1 > settings.max_value_bytes:
            del remembered[0], sizes[0]
        if sum(sizes) + 1 > settings.max_value_bytes:  # the replies alone do not fit
            remembered = [[loaded.message_id, None]]  # kept whatever the limit: one id
        text = dumps(remembered)
    key = VarKey("session", state.bot_id, state.identity.session_key, MESSAGE_IDS)
    return StoredVar(key, text, now)


def _fits(text: str, max_bytes: int) -> bool:
    """Whether ``text`` is at most ``max_bytes`` in UTF-8 (4 bytes a character at most)."""
    return len(text) * 4 <= max_bytes or len(text.encode()) <= max_bytes


def _session_record(
    state: TurnState, loaded: LoadedTurn, settings: BotSettings, now: float, version: int
) -> SessionRecord | None:
    """The session's timers after this turn; a resumed turn leaves them as they were."""
    ident, record = state.identity, loaded.session
    if loaded.edit:
        return _edited_session(state, loaded, settings, now)
    if loaded.resumed:
        if record is None:  # swept or never started: resuming it cannot start one
            _refuse_session_changes(
                state,
                f"session {state.session_id!r} is not stored (swept, ended or never started): "
                "a resumed turn cannot change its session and temp memory",
            )
            return None
        temp_expires_at = record.temp_expires_at if len(state.temp) else None
        return replace(record, temp_expires_at=temp_expires_at)
    started = record.started_at if record is not None and loaded.session_alive else now
    expires_at = now + settings.session_timeout
    return SessionRecord(
        ident.bot_id,
        ident.session_key,
        ident.user_key,
        started_at=started,
        last_seen=now,
        expires_at=expires_at,
        temp_expires_at=min(now + settings.dialog_timeout, expires_at) if len(state.temp) else None,
        version=version,
    )


def _edited_session(
    state: TurnState, loaded: LoadedTurn, settings: BotSettings, now: float
) -> SessionRecord | None:
    """An edit keeps the session's timers; it cannot bring a session to life."""
    record = loaded.session
    if record is None or not loaded.session_alive:
        _refuse_session_changes(
            state,
            f"session {state.session_id!r} has timed out or never started: "
            "its session and temp memory cannot be edited",
        )
        return None
    if not len(state.temp):
        return replace(record, temp_expires_at=None)
    dialog_ends = record.dialog_ends(settings.session_timeout, settings.dialog_timeout)
    if now >= dialog_ends and _changed(state.temp):
        raise SessionNotAliveError(
            f"the dialog of session {state.session_id!r} has timed out: "
            "its temp memory cannot be edited"
        )
    if record.temp_expires_at is None:
        return replace(record, temp_expires_at=dialog_ends)
    return record


def _refuse_session_changes(state: TurnState, message: str) -> None:
    """Raise :class:`SessionNotAliveError` if the turn changed session or temp memory."""
    if _changed(state.session) or _changed(state.temp):
        raise SessionNotAliveError(message)


def _changed(scope: ScopeMemory) -> bool:
    """Whether the turn wrote, deleted or added to a variable of ``scope``."""
    return scope.changes() != ({}, []) or bool(scope.deltas())


def _user_var(
    state: TurnState,
    loaded: LoadedTurn,
    policies: RetentionPolicies,
    key: VarKey,
    text: str,
    now: float,
    version: int,
) -> StoredVar:
    policy = policies.for_variable(key.name)
    if not policy.expires:
        return StoredVar(key, text, now, None, None, version)
    value = state.user[key.name]
    old_row, old_ev = loaded.user_rows.get(key.name, (None, None))
    if old_row is None:
        times = policies.field_times_after_write(key.name, MISSING, {}, None, value, now)
        stored = StoredExpiry(None, {})
    else:
        old_text = state.user.loaded_text(key.name)
        old_value = loads(old_text) if old_text is not None else MISSING
        old_times = old_ev.field_times if old_ev is not None else {}
        times = policies.field_times_after_write(
            key.name, old_value, old_times, old_row.changed_at, value, now
        )
        # a field the turn did not change keeps its expiry: one passed since is final
        stored = replace(StoredExpiry.of(old_row), variable=None)
    ev = policies.evaluate(key.name, value, now, times, now, stored)
    if ev.stripped:
        text = dumps(ev.value)
    return StoredVar(key, text, now, ev.expires_at, ev.stored_times(), version)
