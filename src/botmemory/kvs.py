"""The key-value store: JSON values under keys of your choosing, with optional expiry.

Each bot has its own key space, and there is one global space. ``path`` reads and
writes inside a value (``a.b[0].c``) atomically. ``expiry`` applies to the whole key;
``set`` without an expiry clears an earlier one. Expired keys are invisible at once
and removed by the janitor.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

from botmemory.clock import Clock
from botmemory.durations import DurationInput, Seconds, parse_lifetime
from botmemory.errors import InvalidValueError
from botmemory.ids import Identity, validate_bot_id, validate_id
from botmemory.storage.base import KvsDelta, KvsModifier, KvsRecord, Storage
from botmemory.values import (
    MISSING,
    JsonValue,
    get_path,
    list_indexes,
    loads,
    parse_path,
    set_path,
    to_json_text,
)

__all__ = [
    "GLOBAL_NAMESPACE",
    "KeyValueStore",
    "KvsAccess",
    "KvsEntry",
    "conversation_storage_key",
    "escape_key_part",
    "global_storage_key",
    "parse_expiry",
    "user_key_prefixes",
    "user_storage_key",
]

T = TypeVar("T")


class KvsPrimitives(Protocol):
    """What a :class:`KeyValueStore` runs on: a storage backend, or a turn's view of one."""

    async def kvs_get(self, namespace: str, key: str, now: float) -> KvsRecord | None: ...
    async def kvs_put(self, namespace: str, key: str, now: float, record: KvsRecord) -> None: ...
    async def kvs_modify(
        self, namespace: str, key: str, now: float, modify: KvsModifier[T]
    ) -> T: ...
    async def kvs_delete(self, namespace: str, key: str, now: float) -> bool: ...
    async def kvs_keys(self, namespace: str, prefix: str, now: float) -> list[str]: ...
    async def kvs_delete_prefix(self, namespace: str, prefix: str) -> int: ...
    async def kvs_add(
        self, namespace: str, key: str, now: float, delta: KvsDelta, add: KvsModifier[KvsRecord]
    ) -> None: ...


GLOBAL_NAMESPACE = ""
"""The namespace of the global key space (no bot id is empty)."""
MAX_KEY_LENGTH = 1024

Expiry = DurationInput | None
"""A key's time to live: ``"1h"``, ``"30d"``, ``"never"``, a timedelta, or ``None`` (never).

A bare number is not an expiry (it has no unit): it raises ``InvalidDurationError``.
"""


def parse_expiry(expiry: Expiry | object, where: str = "expiry") -> Seconds | None:
    """Return an expiry, or ``None`` for no expiry (``None`` or ``"never"``).

    An expiry under 1 ms (zero, negative) is an error: it would be an instant expiry; so
    is a bare number or an empty string.
    """
    if expiry is None:
        return None
    return parse_lifetime(expiry, where=where)


def escape_key_part(part: str) -> str:
    """Escape ``%`` and ``/`` so that an id is one segment of a key path."""
    return part.replace("%", "%25").replace("/", "%2F")


_LONG_PART: Final = 64
"""An escaped id longer than this is written as a digest in a key that would otherwise
be longer than :data:`MAX_KEY_LENGTH` (see :func:`_part`)."""


def _part(escaped: str, *, short: bool) -> str:
    """An escaped id as a part of a key; ``short``: a long one as ``%#`` and its digest.

    Ids are up to 255 characters, and escaping triples ``%``, ``/`` and ``:``, so a key
    made of several could pass :data:`MAX_KEY_LENGTH` and never be stored: a flow
    setting a conversation variable would then fail at every message. Such a key is
    written with its long ids as digests instead; every key that fits keeps its ids as
    they are. No escaped id contains ``%#`` (a ``%`` is ``%25``), so a digest never reads
    as another id.
    """
    if not short or len(escaped) <= _LONG_PART:
        return escaped
    return "%#" + hashlib.sha256(escaped.encode()).hexdigest()[:40]


def user_storage_key(user_id: str, name: str = "") -> str:
    """``storage/users/<userId>/<name>``: the key of a user's stored variable.

    The user id is escaped, so that a user called ``a/b`` can never reach the keys of
    a user called ``a``; a long id in a key too long is a digest (see :func:`_part`).
    """
    key = _user_keys(user_id, short=False) + name
    return key if len(key) <= MAX_KEY_LENGTH else _user_keys(user_id, short=True) + name


def _user_keys(user_id: str, *, short: bool) -> str:
    return f"storage/users/{_part(escape_key_part(user_id), short=short)}/"


def _session_part(part: str, *, short: bool = False) -> str:
    """Escape ``%``, ``/`` and ``:``: an id is one part of a session id inside a key."""
    return _part(escape_key_part(part).replace(":", "%3A"), short=short)


def _conversations_of(identity: Identity, *, short: bool = False) -> str:
    """``storage/conversation/<bot>::<channel>::<user>``: before every session's part."""
    parts = (identity.bot_id, identity.channel, identity.user_id)
    return "storage/conversation/" + "::".join(_session_part(p, short=short) for p in parts)


def conversation_storage_key(identity: Identity, name: str) -> str:
    """``storage/conversation/<sessionId>/<name>``: a conversation's stored variable.

    The session id is ``bot::channel::user[::thread]`` with ``%``, ``/`` and ``:`` of each
    id escaped (``%25``, ``%2F``, ``%3A``): user ``a`` in thread ``b`` and user ``a::b``
    never share a key, and every key of a user's conversations starts with one of
    :func:`user_key_prefixes`. A long id in a key too long is a digest (see :func:`_part`).
    """

    def key(short: bool) -> str:
        thread = identity.thread_id
        after = "" if thread is None else "::" + _session_part(thread, short=short)
        return f"{_conversations_of(identity, short=short)}{after}/{name}"

    found = key(short=False)
    return found if len(found) <= MAX_KEY_LENGTH else key(short=True)


def user_key_prefixes(identity: Identity) -> tuple[str, ...]:
    """The prefixes of every key of a bot's store that belongs to the user of ``identity``.

    The user's stored variables (``storage/users/<userId>/``, shared by the user id on
    every channel) and the conversation variables of each of the user's sessions on the
    identity's channel, every thread, ended or not, in both the ways a key writes the
    ids (with a long one as a digest, or not). No other user's key starts with them.
    """
    found: list[str] = []
    for short in (False, True):
        conversations = _conversations_of(identity, short=short)
        user = _user_keys(identity.user_id, short=short)
        found += [p for p in (user, f"{conversations}/", f"{conversations}::") if p not in found]
    return tuple(found)


def global_storage_key(name: str = "") -> str:
    """``storage/global/<name>``: a variable shared by every user of one bot."""
    return f"storage/global/{name}"


@dataclass(frozen=True, slots=True)
class KvsEntry:
    """A key's value with its expiry."""

    key: str
    value: JsonValue
    expires_at: float | None
    """Epoch seconds, or ``None`` for a key that does not expire."""


class KeyValueStore:
    """The key-value store of one bot, or the global one."""

    def __init__(
        self, storage: KvsPrimitives, namespace: str, clock: Clock, max_value_bytes: int
    ) -> None:
        self._storage = storage
        self.namespace = namespace
        self._clock = clock
        self._max_bytes = max_value_bytes

    def _key(self, key: str) -> str:
        return validate_id(key, "key", max_length=MAX_KEY_LENGTH)

    async def get(self, key: str, path: str | None = None, default: JsonValue = None) -> JsonValue:
        """Return the value of ``key`` (or what ``path`` points at in it), else ``default``."""
        record = await self._storage.kvs_get(self.namespace, self._key(key), self._clock())
        if record is None:
            return default
        value = loads(record.value)
        if not path:  # no path, or "" (as in Botpress)
            return value
        found = get_path(value, list_indexes(value, parse_path(path)))
        return default if found is MISSING else found  # type: ignore[return-value]

    async def entry(self, key: str) -> KvsEntry | None:
        """Return ``key`` with its value and expiry, or ``None`` if it holds nothing."""
        record = await self._storage.kvs_get(self.namespace, self._key(key), self._clock())
        return None if record is None else KvsEntry(key, loads(record.value), record.expires_at)

    async def set(
        self, key: str, value: JsonValue, path: str | None = None, expiry: Expiry = None
    ) -> KvsEntry:
        """Store ``value`` under ``key`` (or at ``path`` inside it) with an optional expiry.

        Return the key as stored: its whole value and its expiry, even if that expiry
        has passed by the time the caller reads it.
        """
        key = self._key(key)
        seconds = parse_expiry(expiry)
        where = f"kvs[{key!r}]" + (f".{path}" if path else "")
        text = to_json_text(value, where, self._max_bytes)
        now = self._clock()
        expires_at = None if seconds is None else now + seconds
        if not path:  # no path, or "" (as in Botpress)
            await self._storage.kvs_put(self.namespace, key, now, KvsRecord(text, expires_at))
            return KvsEntry(key, loads(text), expires_at)
        segments = parse_path(path)

        def put_inside(record: KvsRecord | None) -> tuple[KvsRecord, JsonValue]:
            current = MISSING if record is None else loads(record.value)
            if current is None:  # a stored null holds nothing to write into
                current = MISSING
            updated = set_path(current, list_indexes(current, segments), loads(text))
            return KvsRecord(to_json_text(updated, where, self._max_bytes), expires_at), updated

        stored = await self._storage.kvs_modify(self.namespace, key, now, put_inside)
        return KvsEntry(key, stored, expires_at)

    async def delete(self, key: str) -> bool:
        """Delete ``key``; return whether it existed."""
        return await self._storage.kvs_delete(self.namespace, self._key(key), self._clock())

    async def exists(self, key: str) -> bool:
        """Return whether ``key`` holds a value (a stored 0, "", false or null counts)."""
        return (
            await self._storage.kvs_get(self.namespace, self._key(key), self._clock()) is not None
        )

    async def keys(self, prefix: str = "") -> list[str]:
        """Return the live keys starting with ``prefix`` (taken literally), sorted."""
        if not isinstance(prefix, str):
            raise InvalidValueError(f"prefix {prefix!r} must be a string")
        return await self._storage.kvs_keys(self.namespace, prefix, self._clock())

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix`` (taken literally); return how many."""
        if not isinstance(prefix, str) or not prefix:
            raise InvalidValueError(
                f"prefix {prefix!r} must be a non-empty string; "
                "to clear everything, delete the keys one by one"
            )
        return await self._storage.kvs_delete_prefix(self.namespace, prefix)

    async def incr(self, key: str, by: int | float = 1, expiry: Expiry = None) -> int | float:
        """Add ``by`` to the number under ``key`` (0 if absent) atomically; return the result.

        With ``expiry`` the key expires that long from now; without, it keeps its expiry.
        Inside a turn the result is checked at commit: another turn that changes the
        key meanwhile makes this one run again (:meth:`add` never does).
        """
        delta, now = self._delta(key, by, expiry)
        adder = number_adder(delta, self._max_bytes)
        record = await self._storage.kvs_modify(self.namespace, delta.key, now, adder)
        total: int | float = loads(record.value)  # type: ignore[assignment]  # checked
        return total

    async def add(self, key: str, by: int | float = 1, expiry: Expiry = None) -> None:
        """Add ``by`` to the number under ``key`` (0 if absent), without reading it.

        Like :meth:`incr`, but it returns nothing, so inside a turn it is a delta added
        at commit: turns that add to one key (a message counter, say) never conflict,
        and none of their additions is lost. A stored value that is not a number, or a
        sum out of range, then fails the commit with :class:`InvalidValueError`, nothing
        written; outside a turn, or once the turn has read the key, it raises at once.
        """
        delta, now = self._delta(key, by, expiry)
        adder = number_adder(delta, self._max_bytes)
        await self._storage.kvs_add(self.namespace, delta.key, now, delta, adder)

    def _delta(self, key: str, by: object, expiry: Expiry) -> tuple[KvsDelta, float]:
        key = self._key(key)
        if isinstance(by, bool) or not isinstance(by, int | float):
            raise InvalidValueError(f"add {by!r} to kvs[{key!r}]: give a number")
        to_json_text(by, f"add to kvs[{key!r}]", self._max_bytes)  # finite, in range
        seconds = parse_expiry(expiry)
        now = self._clock()
        expires_at = None if seconds is None else now + seconds
        return KvsDelta(self.namespace, key, by, expires_at), now


def number_adder(delta: KvsDelta, max_bytes: int) -> KvsModifier[KvsRecord]:
    """The modifier that adds ``delta`` to a live record (``None``: 0) and returns the
    record it stores; :class:`InvalidValueError` when the value is not a number."""

    def add(record: KvsRecord | None) -> tuple[KvsRecord, KvsRecord]:
        current = 0 if record is None else loads(record.value)
        if isinstance(current, bool) or not isinstance(current, int | float):
            raise InvalidValueError(
                f"kvs[{delta.key!r}] holds {current!r}, not a number to increment"
            )
        total = to_json_text(current + delta.by, f"kvs[{delta.key!r}]", max_bytes)
        kept = None if record is None else record.expires_at
        added = KvsRecord(total, kept if delta.expires_at is None else delta.expires_at)
        return added, added

    return add


class KvsAccess:
    """Hands out the key-value store of each bot and the global one."""

    def __init__(self, storage: Storage, clock: Clock, max_value_bytes: int) -> None:
        self._storage = storage
        self._clock = clock
        self._max_bytes = max_value_bytes

    def for_bot(self, bot_id: str) -> KeyValueStore:
        """Return the key-value store of ``bot_id``: its keys are invisible to other bots."""
        return KeyValueStore(self._storage, validate_bot_id(bot_id), self._clock, self._max_bytes)

    def for_global(self) -> KeyValueStore:
        """Return the global key-value store, shared by every bot."""
        return KeyValueStore(self._storage, GLOBAL_NAMESPACE, self._clock, self._max_bytes)
