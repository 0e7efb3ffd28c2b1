"""The storage contract: the few primitives every backend implements.

Everything else (ids, JSON validation, retention, session and temp lifetimes, KVS
paths, the janitor's loop) lives once, above this contract. Values cross it as
canonical JSON text; times as epoch seconds from the injected clock.

Guarantees every backend gives:

- ``commit_turn`` checks a turn's read set and applies all of its writes in one
  transaction, or raises :class:`~botmemory.errors.ConflictError` and applies none.
  Every stored variable, session and KVS record carries a ``version`` (a random
  63-bit id of the commit that wrote it; ``0`` means absent), so a check is an
  equality, and a row deleted then created again never passes for the old one.
  Every write outside a turn (KVS calls, the janitor's updates and deletes, session
  timers brought within shortened timeouts) gives what it changes a new version
  (:func:`new_version`), so a turn that loaded it before conflicts.
- ``kvs_modify`` is an atomic read-modify-write of one key.
- Reads of KVS keys ignore expired keys, so correctness never waits for the janitor.
- The ``expired_*`` and ``scan_*`` methods return at most ``limit`` rows; the janitor
  (or the start-up reconciling) then deletes or updates exactly those, guarded against
  a turn that changed them in between.
- ``session_lock`` serializes turns of one session (in-process by default; backends
  shared by several processes extend it across processes). ``locked_turn`` holds it
  and loads the turn, which a backend may do in one round trip.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from collections.abc import Set as AbstractSet
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Final, Literal, NamedTuple, TypeVar

from botmemory.durations import Seconds, format_duration, parse_duration
from botmemory.errors import LockTimeoutError
from botmemory.values import is_json_number

__all__ = [
    "ANY_STORED",
    "TURN_WAIT",
    "CurrentVars",
    "KvsCheck",
    "KvsDelta",
    "KvsModifier",
    "KvsPrefixCheck",
    "KvsRecord",
    "KvsRows",
    "KvsWrite",
    "Scope",
    "ScopeCheck",
    "SessionCursor",
    "SessionRecord",
    "SessionUpdate",
    "Storage",
    "StoredVar",
    "TurnKeys",
    "TurnSnapshot",
    "TurnWrite",
    "UserRecords",
    "VarCheck",
    "VarDelta",
    "VarKey",
    "VarUpdate",
    "add_to_number",
    "cleared_version",
    "final_kvs",
    "final_vars",
    "kvs_added",
    "new_version",
    "reset_scopes",
]

Scope = Literal["user", "session", "temp", "bot"]
SCOPES: Final[tuple[Scope, ...]] = ("user", "session", "temp", "bot")
"""The four memories, in the order they are shown."""
TURN_WAIT: Final = parse_duration("30s")
"""How long a turn waits for an earlier turn of its session in its process, on the
backends without a setting of their own (memory, SQLite): then
:class:`~botmemory.errors.LockTimeoutError`, as PostgreSQL's default ``lock_timeout``."""
T = TypeVar("T")


class VarKey(NamedTuple):
    """Where one variable lives. ``owner`` is the user key, session key, or ``""`` for bot.

    Variable records are named tuples: a turn builds dozens of them, and tuples are
    the cheapest immutable records Python has.
    """

    scope: Scope
    bot_id: str
    owner: str
    name: str


class StoredVar(NamedTuple):
    """One stored variable. ``expires_at`` and ``field_times`` are used by user variables."""

    key: VarKey
    value: str
    changed_at: float
    expires_at: float | None = None
    field_times: str | None = None
    """The expiries of a user variable's parts, as :class:`~botmemory.retention.StoredExpiry`
    reads them (opaque to a backend, which stores and returns the text as it is)."""
    version: int = 0
    """The id of the commit that last wrote it (``0`` before it is stored)."""


def new_version() -> int:
    """Return a fresh row version: a random id in ``[1, 2**62]``, never ``0`` (absent)."""
    return random.getrandbits(62) + 1


def cleared_version(version: int) -> int:
    """Return the version ``clear_temps`` gives a session it read with ``version``.

    The same in every janitor run, never ``0``: a run that finds a session's temp memory
    already empty can tell whether another run emptied it from the same state (its
    version is this one: not counted again) or a turn did (counted, once).
    """
    digest = hashlib.blake2b(version.to_bytes(8, "big", signed=True), digest_size=8).digest()
    return (int.from_bytes(digest, "big") & (2**62 - 1)) + 1


ANY_STORED: Final = -1
"""The version of a :class:`VarCheck` that only asks for the variable to be still stored."""


class VarCheck(NamedTuple):
    """A commit holds only if ``key`` still has ``version`` (``0``: still absent;
    :data:`ANY_STORED`: still stored, whatever its version now)."""

    key: VarKey
    version: int

    def holds(self, version: int) -> bool:
        """Whether the check holds for the stored ``version`` (``0``: absent)."""
        return version != 0 if self.version == ANY_STORED else version == self.version


class ScopeCheck(NamedTuple):
    """A commit holds only if the owner's stored variables have exactly these names.

    For a turn that listed or counted a scope: no variable was added or removed since.
    ``names`` are every stored name of the owner, expired rows included. The values
    the turn then read are checked one by one (:class:`VarCheck`).
    """

    scope: Scope
    bot_id: str
    owner: str
    names: AbstractSet[str]


class VarDelta(NamedTuple):
    """Add ``by`` to a number variable at commit time, whatever its value then.

    A missing variable, or a user variable expired at the commit's ``now``, counts as
    ``0``. The row gets the commit's ``changed_at`` and ``expires_at``. A stored value that
    is not a number makes the commit raise :class:`~botmemory.errors.ConflictError`.
    """

    key: VarKey
    by: int | float
    expires_at: float | None = None


class KvsCheck(NamedTuple):
    """A commit holds only if the live record of ``key`` still has ``version``."""

    namespace: str
    key: str
    version: int


class KvsPrefixCheck(NamedTuple):
    """A commit holds only if the live keys under ``prefix`` are exactly these."""

    namespace: str
    prefix: str
    versions: tuple[tuple[str, int], ...]


class KvsWrite(NamedTuple):
    """Store ``record`` under ``key`` (``None`` deletes it) as part of a turn."""

    namespace: str
    key: str
    record: KvsRecord | None


class KvsDelta(NamedTuple):
    """Add ``by`` to the number under ``key`` at commit time, whatever it is then.

    A missing or expired key counts as ``0``. ``expires_at`` is the key's new expiry;
    ``None`` keeps the expiry of a live key (none for a key it creates). A stored value
    that is not a number, or a sum out of range (infinite, an integer beyond 64 bits),
    makes the commit raise :class:`~botmemory.errors.InvalidValueError`: nothing written.
    """

    namespace: str
    key: str
    by: int | float
    expires_at: float | None = None


def kvs_added(record: KvsRecord | None, delta: KvsDelta, now: float) -> KvsRecord:
    """The record ``delta`` leaves, added to ``record`` (as stored: live or not at ``now``)."""
    live = record is not None and (record.expires_at is None or record.expires_at > now)
    base = record if live else None
    kept = None if base is None else base.expires_at
    expires_at = kept if delta.expires_at is None else delta.expires_at
    total = number_sum(None if base is None else base.value, delta.by)
    if total is None:
        from botmemory.errors import InvalidValueError

        raise InvalidValueError(  # nothing was read: running the turn again would not help
            f"kvs[{delta.key!r}]: cannot add {delta.by!r} to {base.value if base else 0}: "
            "not a number, or the sum is out of range; the turn wrote nothing"
        )
    return KvsRecord(total, expires_at)


def number_sum(text: str | None, by: int | float) -> str | None:
    """The JSON text of ``text`` (a JSON number, or ``None`` for 0) plus ``by``; ``None``
    when ``text`` is not a number or the sum is not one botmemory stores (infinite, an
    integer out of range)."""
    current = 0 if text is None else json.loads(text)
    if not is_json_number(current):
        return None
    total = current + by
    return json.dumps(total) if is_json_number(total) else None


def add_to_number(text: str | None, by: int | float) -> str:
    """Return the JSON text of ``text`` (a JSON number, or ``None`` for 0) plus ``by``.

    Raise :class:`~botmemory.errors.ConflictError` when ``text`` is not a number, or the
    sum is out of range: the value changed since the turn checked it, so the turn must
    run again (and its fresh load then tells what is wrong).
    """
    total = number_sum(text, by)
    if total is None:
        from botmemory.errors import ConflictError

        raise ConflictError(f"cannot add {by!r} to {text}: it is no longer a number in range")
    return total


@dataclass(frozen=True, slots=True)
class VarUpdate:
    """A janitor's change to a user variable, applied only if it did not change meanwhile.

    ``value`` ``None`` deletes the variable; otherwise the row gets ``value``,
    ``expires_at`` and ``field_times``, and a new version. The guard is ``changed_at``
    and ``version``, as read: a turn that wrote the variable since wins, even one that
    wrote it at the same ``changed_at`` (an injected clock, a coarse one). A ``version``
    of ``None`` guards on ``changed_at`` alone.
    """

    key: VarKey
    changed_at: float
    value: str | None
    expires_at: float | None = None
    field_times: str | None = None
    version: int | None = None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session's identity and lifetimes."""

    bot_id: str
    key: str
    user_key: str
    started_at: float
    last_seen: float
    expires_at: float
    temp_expires_at: float | None
    """When the temp memory expires; ``None`` when it is empty."""
    version: int = 0
    """The id of the commit (or janitor change) that last wrote it."""

    # When a session and its dialog end: the one place this rule is written. Turns,
    # peeks, exports and the start-up reconciling all ask these methods.
    def session_ends(self, session_timeout: Seconds) -> float:
        """When the session ends: its stored expiry, or ``session_timeout`` after its
        last turn if that is sooner (the timeout was shortened since)."""
        return min(self.expires_at, self.last_seen + session_timeout)

    def dialog_ends(self, session_timeout: Seconds, dialog_timeout: Seconds) -> float:
        """When its dialog (temp memory) ends: ``dialog_timeout`` after the last turn,
        and never after the session, nor after the stored temp expiry if there is one."""
        ends = min(self.last_seen + dialog_timeout, self.session_ends(session_timeout))
        return ends if self.temp_expires_at is None else min(ends, self.temp_expires_at)

    def within(self, session_timeout: Seconds, dialog_timeout: Seconds) -> SessionRecord:
        """This session with its timers brought within these timeouts (never lengthened).

        ``expires_at`` becomes :meth:`session_ends`, and a ``temp_expires_at`` that is
        set becomes :meth:`dialog_ends`.
        """
        temp = self.temp_expires_at
        if temp is not None:
            temp = self.dialog_ends(session_timeout, dialog_timeout)
        return replace(self, expires_at=self.session_ends(session_timeout), temp_expires_at=temp)


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    """New timers for a session, applied only if the session did not change meanwhile.

    The guard is the version of ``read``, the session as it was scanned: a turn (or the
    janitor) that rewrote the session since wins, and the update is skipped. An applied
    update sets ``expires_at`` and ``temp_expires_at`` and gives the session ``version``.
    """

    read: SessionRecord
    expires_at: float
    temp_expires_at: float | None
    version: int = field(default_factory=new_version)


SessionCursor = tuple[str, str]
"""Where a scan of sessions goes on: a position that the backend returned, to pass back."""


@dataclass(frozen=True, slots=True)
class TurnKeys:
    """What a turn loads."""

    bot_id: str
    user_key: str
    session_key: str


@dataclass(frozen=True, slots=True)
class TurnSnapshot:
    """Everything stored for a turn, expired or not: the layer above decides."""

    user: list[StoredVar]
    bot: list[StoredVar]
    session: SessionRecord | None
    session_vars: list[StoredVar]
    temp_vars: list[StoredVar]
    stamp: object = None
    """What the database looked like when it was read, if the backend can tell (else
    ``None``): handed back as :attr:`TurnWrite.loaded_stamp`."""


@dataclass(slots=True)  # not frozen: built on every turn, and freezing costs a third
class TurnWrite:
    """A turn's checks and writes, in one transaction.

    First every check: the session's ``session_version``, ``checks``, ``scope_checks``,
    ``kvs_checks`` and ``kvs_prefix_checks``; if one fails, raise
    :class:`~botmemory.errors.ConflictError` and write nothing. Then, in this order:
    resets, deletes, upserts, deltas, the session record, KVS writes, KVS deltas. Every
    row written gets ``version``.
    """

    session: SessionRecord | None
    """The session's new timers; ``None`` leaves the session alone (an edit without one)."""
    session_version: int | None = None
    """The version the session record must still have (``0``: absent); ``None``: no check."""
    reset_session: bool = False
    """Delete every session and temp variable of the session first (it had expired)."""
    reset_temp: bool = False
    """Delete every temp variable of the session first (flow ended or temp expired)."""
    deletes: Sequence[VarKey] = ()
    upserts: Sequence[StoredVar] = ()
    deltas: Sequence[VarDelta] = ()
    checks: Sequence[VarCheck] = ()
    scope_checks: Sequence[ScopeCheck] = ()
    kvs_writes: Sequence[KvsWrite] = ()
    kvs_checks: Sequence[KvsCheck] = ()
    kvs_prefix_checks: Sequence[KvsPrefixCheck] = ()
    kvs_deltas: Sequence[KvsDelta] = ()
    """Additions to KVS numbers: never checked, so turns adding to one key never conflict."""
    now: float = 0.0
    """The commit's time: ``changed_at`` of deltas; KVS and delta expiry is judged at it."""
    version: int = field(default_factory=new_version)
    """The id of this commit: the ``version`` of every row it writes."""
    loaded_stamp: object = None
    """The :attr:`TurnSnapshot.stamp` of the load. A backend that finds the same stamp
    at commit (nothing in the database changed since) may skip the session, variable
    and scope checks, which then hold; KVS checks judge liveness at ``now`` and always
    run."""


@dataclass(frozen=True, slots=True)
class KvsRecord:
    """A KVS value as stored."""

    value: str
    expires_at: float | None
    version: int = 0
    """The id of the write that stored it (set by the backend on every write)."""


@dataclass(frozen=True, slots=True)
class UserRecords:
    """Everything stored for one user: for export."""

    user: list[StoredVar]
    sessions: list[SessionRecord]
    session_vars: list[StoredVar] = field(default_factory=list)
    temp_vars: list[StoredVar] = field(default_factory=list)


KvsModifier = Callable[[KvsRecord | None], tuple[KvsRecord | None, T]]
"""Given the live record (``None`` if absent or expired), return the record to store
(``None`` to delete) and a result for the caller. A backend may call it more than once
(when another process wrote the key meanwhile), so it must have no side effects."""


class Storage(ABC):
    """A storage backend. One instance serves one database."""

    url: str

    def __init__(self) -> None:
        self._session_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._waiters: dict[tuple[str, str], int] = {}

    async def open(self) -> None:  # noqa: B027 - optional: not every backend connects
        """Connect and create or upgrade the schema."""

    @abstractmethod
    async def close(self) -> None:
        """Release every connection. Safe to call twice."""

    def _local_session_lock(
        self, bot_id: str, session_key: str
    ) -> AbstractAsyncContextManager[None]:
        """Hold the session's lock of this process, waited for without end."""
        return self._waited_session_lock(bot_id, session_key, None)

    @asynccontextmanager
    async def _waited_session_lock(
        self, bot_id: str, session_key: str, wait: Seconds | None, setting: str = ""
    ) -> AsyncIterator[None]:
        """Hold the session's lock of this process, waited for at most ``wait`` (``None``:
        without end), else raise :class:`~botmemory.errors.LockTimeoutError` naming the
        ``setting`` that sets it, if any: a turn that never ends cannot keep its
        session's later turns waiting forever."""
        key = (bot_id, session_key)
        lock = self._session_locks.setdefault(key, asyncio.Lock())
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            if wait is None or self._waiters[key] == 1:  # alone: the lock is free
                await lock.acquire()
            else:
                try:
                    async with asyncio.timeout(wait):
                        await lock.acquire()
                except TimeoutError as exc:
                    limit = (
                        f"{setting}={format_duration(wait)}" if setting else format_duration(wait)
                    )
                    raise LockTimeoutError(
                        f"another turn of session {session_key} in this process held it "
                        f"longer than {limit}"
                    ) from exc
            try:
                yield
            finally:
                lock.release()
        finally:
            self._waiters[key] -= 1
            if not self._waiters[key]:
                del self._waiters[key]
                del self._session_locks[key]

    def session_lock(self, bot_id: str, session_key: str) -> AbstractAsyncContextManager[None]:
        """Serialize the turns of one session, each waiting at most :data:`TURN_WAIT`."""
        return self._waited_session_lock(bot_id, session_key, TURN_WAIT)

    async def ping(self) -> None:
        """Raise a :class:`~botmemory.errors.BackendError` unless the storage answers."""
        await self.get_meta("schema")

    def sole_turn(self) -> bool:
        """Whether one turn only, in this process, holds or waits for a session's lock."""
        return len(self._waiters) == 1 and 1 in self._waiters.values()

    def turn_in_progress(self, bot_id: str, session_key: str) -> bool:
        """Whether a turn of this session runs in this process now (the janitor waits)."""
        return (bot_id, session_key) in self._session_locks

    def janitor_lock(self) -> AbstractAsyncContextManager[bool]:
        """Hold while the janitor runs; yields ``False`` if another process runs it now."""
        return _always_true()

    def retry_lock(self, bot_id: str) -> AbstractAsyncContextManager[object]:
        """Hold while a turn of ``bot_id`` runs again after a conflict.

        Across the processes sharing the database where the backend can, so that
        retried turns of a bot do not keep invalidating each other; in a process the
        memory already runs them one at a time. It only spares work: commits check.
        """
        return _always_true()

    # -- turns ---------------------------------------------------------------------
    @abstractmethod
    async def load_turn(self, keys: TurnKeys) -> TurnSnapshot:
        """Return every stored user, bot, session and temp variable of the turn."""

    def locked_turn(self, keys: TurnKeys) -> AbstractAsyncContextManager[TurnSnapshot]:
        """Hold the session's lock (:meth:`session_lock`) and yield what
        :meth:`load_turn` returns once it was granted."""
        return self._lock_then_load(keys)

    @asynccontextmanager
    async def _lock_then_load(self, keys: TurnKeys) -> AsyncIterator[TurnSnapshot]:
        async with self.session_lock(keys.bot_id, keys.session_key):
            yield await self.load_turn(keys)

    @abstractmethod
    async def commit_turn(self, write: TurnWrite) -> None:
        """Check a turn's read set and apply its writes in one transaction (see TurnWrite).

        Raise :class:`~botmemory.errors.ConflictError`, having written nothing, when a
        check fails. Never apply one ``write`` twice, even when a driver resends it.
        """

    # -- key-value store -------------------------------------------------------------
    @abstractmethod
    async def kvs_get(self, namespace: str, key: str, now: float) -> KvsRecord | None:
        """Return the live record of ``key`` with its version, or ``None``."""

    @abstractmethod
    async def kvs_put(self, namespace: str, key: str, now: float, record: KvsRecord) -> None:
        """Store ``record`` under ``key`` with a new version, replacing any earlier one.

        ``now`` is the clock's time of the write (a backend whose store expires keys by
        itself counts their lifetime from it)."""

    @abstractmethod
    async def kvs_modify(self, namespace: str, key: str, now: float, modify: KvsModifier[T]) -> T:
        """Atomically read ``key``, apply ``modify`` and store what it returns."""

    async def kvs_add(
        self, namespace: str, key: str, now: float, delta: KvsDelta, add: KvsModifier[KvsRecord]
    ) -> None:
        """Add ``delta`` to the number under ``key``: here, ``add`` applied atomically (a
        turn's view buffers ``delta`` for its commit instead)."""
        await self.kvs_modify(namespace, key, now, add)

    @abstractmethod
    async def kvs_delete(self, namespace: str, key: str, now: float) -> bool:
        """Delete ``key``; return whether a live key was there."""

    @abstractmethod
    async def kvs_keys(self, namespace: str, prefix: str, now: float) -> list[str]:
        """Return the live keys that start with ``prefix`` (taken literally), sorted."""

    @abstractmethod
    async def kvs_delete_prefix(self, namespace: str, prefix: str) -> int:
        """Delete every key that starts with ``prefix``; return how many live or not."""

    # -- users -------------------------------------------------------------------------
    @abstractmethod
    async def load_user(self, bot_id: str, user_key: str) -> UserRecords:
        """Return everything stored for one user, expired or not."""

    @abstractmethod
    async def delete_user(
        self, bot_id: str, user_key: str, kvs_prefixes: Sequence[str] = ()
    ) -> dict[str, int]:
        """Delete a user's data; count each kind.

        The user's variables, sessions with their session and temp variables, and every
        key of the bot's key-value store starting with one of ``kvs_prefixes`` (live or
        not), in one transaction where the backend can (Redis: the keys after the rest).
        Return ``user_variables``, ``sessions``, ``session_variables`` and ``kvs``.
        Backends that keep erased bytes in their files until a later step (SQLite's WAL)
        finish that step before returning, or raise
        :class:`~botmemory.errors.ErasurePendingError` (the data is deleted all the same).
        """

    # -- retention and the janitor -------------------------------------------------------
    @abstractmethod
    async def expired_user_vars(self, now: float, limit: int) -> list[StoredVar]:
        """Return up to ``limit`` user variables whose ``expires_at`` has passed."""

    @abstractmethod
    async def scan_user_vars(
        self, bot_id: str | None, after: VarKey | None, limit: int
    ) -> list[StoredVar]:
        """Return up to ``limit`` user variables (of one bot, or all) after ``after``.

        Ordered by ``(bot_id, owner, name)``: pass the last key back to continue.
        """

    @abstractmethod
    async def update_user_vars(self, updates: Sequence[VarUpdate]) -> list[VarUpdate]:
        """Apply the updates whose guard still holds; return those.

        Each update is atomic with its guard; a batch is one transaction where the
        backend can (SQLite, PostgreSQL) and one per bot at least (Redis).
        """

    @abstractmethod
    async def expired_sessions(self, now: float, limit: int) -> list[SessionRecord]:
        """Return up to ``limit`` sessions whose ``expires_at`` has passed, oldest first."""

    @abstractmethod
    async def delete_sessions(self, sessions: Sequence[SessionRecord]) -> int:
        """Delete these sessions with their session and temp variables, in one transaction.

        A session whose ``last_seen`` changed since it was read (a turn revived it) is
        kept. Return how many were deleted.
        """

    @abstractmethod
    async def expired_temps(self, now: float, limit: int) -> list[SessionRecord]:
        """Return up to ``limit`` sessions whose ``temp_expires_at`` has passed, oldest first."""

    @abstractmethod
    async def clear_temps(self, sessions: Sequence[SessionRecord]) -> int:
        """Empty the temp memory of these sessions and clear ``temp_expires_at``.

        A session whose ``temp_expires_at`` was set to another time since it was read
        (a turn filled temp again) is left alone. One that a turn emptied since it was
        read (the dialog-timeout hook's) counts; one that another call emptied from the
        same read state does not: the emptied session gets :func:`cleared_version` of the
        version read, so overlapping janitor runs count each temp memory once in total.
        Return how many were emptied.
        """

    @abstractmethod
    async def scan_sessions(
        self, after: SessionCursor | None, limit: int
    ) -> tuple[list[SessionRecord], SessionCursor | None]:
        """Return about ``limit`` stored sessions (expired or not) and where to go on.

        Pass the cursor back to continue; ``None`` means the scan is complete. Every
        session stored for the whole scan is returned at least once (Redis may return
        one twice, and a batch a little over ``limit``).
        """

    @abstractmethod
    async def update_sessions(self, updates: Sequence[SessionUpdate]) -> list[SessionUpdate]:
        """Apply the updates whose session still has the version read; return those.

        A session deleted since it was read stays deleted. A batch is one transaction
        where the backend can (SQLite, PostgreSQL) and one script per bot (Redis).
        """

    @abstractmethod
    async def delete_expired_kvs(self, now: float, limit: int) -> int:
        """Delete up to ``limit`` expired KVS keys."""

    @abstractmethod
    async def get_meta(self, name: str) -> str | None:
        """Return a stored setting of botmemory itself (for example a policy fingerprint)."""

    @abstractmethod
    async def set_meta(self, name: str, value: str) -> None:
        """Store a setting of botmemory itself."""


@asynccontextmanager
async def _always_true() -> AsyncIterator[bool]:
    yield True


# -- what a commit leaves: for backends that add deltas in Python ----------------------------
CurrentVars = dict[VarKey, tuple[str, float | None]]
"""The stored value and expiry of variables a commit adds deltas to."""
KvsRows = dict[tuple[str, str], KvsRecord | None]
"""KVS records by ``(namespace, key)``; ``None``: absent, or deleted."""


def reset_scopes(write: TurnWrite) -> list[str]:
    """The scopes of its session that ``write`` empties first."""
    if write.session is None:
        return []
    return ["session", "temp"] if write.reset_session else ["temp"] if write.reset_temp else []


def final_kvs(write: TurnWrite, current: KvsRows) -> KvsRows:
    """Return the KVS records ``write`` stores (``None``: deleted): its writes, then its
    deltas added to what the writes left, else to the stored record."""
    records: KvsRows = {(w.namespace, w.key): w.record for w in write.kvs_writes}
    for delta in write.kvs_deltas:
        key = (delta.namespace, delta.key)
        base = records[key] if key in records else current.get(key)
        records[key] = kvs_added(base, delta, write.now)
    return records


def final_vars(write: TurnWrite, current: CurrentVars) -> list[StoredVar]:
    """Return the variables ``write`` stores: its upserts, then its deltas added.

    A delta adds to what the commit's earlier steps left: an upsert of the same
    variable, nothing after a reset or delete of it, else the stored value; an expired
    value counts as nothing.
    """
    rows: dict[VarKey, StoredVar] = {v.key: v for v in write.upserts}
    if not write.deltas:
        return list(rows.values())
    s, reset = write.session, reset_scopes(write)
    deleted = set(write.deletes)
    for delta in write.deltas:
        k = delta.key
        base: tuple[str, float | None] | None
        if k in rows:
            base = (rows[k].value, rows[k].expires_at)
        elif k in deleted or (
            s is not None and (k.bot_id, k.owner) == (s.bot_id, s.key) and k.scope in reset
        ):
            base = None
        else:
            base = current.get(k)
        text = base[0] if base is not None and _live_at(base[1], write.now) else None
        rows[k] = StoredVar(k, add_to_number(text, delta.by), write.now, delta.expires_at)
    return list(rows.values())


def _live_at(expires_at: float | None, now: float) -> bool:
    return expires_at is None or expires_at > now
