"""Where the Redis backend keeps what, and how it encodes records.

Every key starts with the URL's ``prefix`` (default ``botmemory:``), then a hash tag:

- ``{b:<bot>}`` for everything of one bot: user variables, sessions, session and temp
  variables, bot variables, the bot's KVS keys and the janitor's indexes of that bot.
  All keys of one turn share it, so a turn is one ``MULTI``/``EXEC`` in one cluster slot.
- ``{global}`` for the global key-value store.
- ``{meta}`` for botmemory's own settings, the list of bots and the janitor's lease.

Records keep their expiry times as data (epoch seconds of the injected clock): reads
decide on those, never on Redis' clock. Numbers are written as ``repr(float(x))`` so
that a guard can compare them as strings.

Every variable, session and KVS record carries its version (the id of the commit that
wrote it): packed variables and KVS records start with a line ``v<version>``, a session
hash has a field ``ver``. Versions stay strings end to end (Lua numbers are doubles and
would round a 62-bit id). Records written by layout 1, before versions existed, read
as version ``1``: nonzero, so a check for "still absent" fails on them, and the first
write after the upgrade gives them a random version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from botmemory.durations import Seconds
from botmemory.storage.base import KvsRecord, SessionRecord, StoredVar, VarKey

__all__ = [
    "LAYOUT_VERSION",
    "OLD_VERSION",
    "BotKeys",
    "KvsKeys",
    "MetaKeys",
    "kvs_keys",
    "native_ttl_ms",
    "num",
    "pack_kvs",
    "pack_session",
    "pack_var",
    "split_version",
    "unpack_kvs",
    "unpack_session",
    "unpack_var",
    "user_var_member",
    "var_guard",
]

LAYOUT_VERSION: Final = 2
"""Bump when the layout changes; a newer layout in Redis is refused.

2: records carry versions. Layout 1 data is read as it is (version :data:`OLD_VERSION`);
opening marks the data as layout 2, so that a botmemory too old to write versions
refuses it instead of writing records that no check could see change.
"""

OLD_VERSION: Final = 1
"""The version of a record written before records had versions."""


def num(value: float) -> str:
    """Encode a time so that equal floats give equal strings."""
    return repr(float(value))


def _opt(value: float | None) -> str:
    return "" if value is None else num(value)


def _opt_float(text: str) -> float | None:
    return None if text == "" else float(text)


@dataclass(frozen=True, slots=True)
class KvsKeys:
    """The keys of one KVS namespace.

    ``data(key)`` holds the value (a string with a native TTL when it expires),
    ``names`` every key name (a sorted set, all scores 0, for prefix listings by lex
    range), ``due`` the names that expire, scored by ``expires_at``.
    """

    base: str

    def data(self, key: str) -> str:
        """String: the packed record of ``key``."""
        return f"{self.base}kvs:{key}"

    @property
    def names(self) -> str:
        """Sorted set (lex): every key name of the namespace."""
        return f"{self.base}kvs-keys"

    @property
    def due(self) -> str:
        """Sorted set: the names that expire, scored by ``expires_at``."""
        return f"{self.base}due:kvs"

    @property
    def commits(self) -> str:
        """Sorted set: ids of the turn commits applied lately, scored by wall-clock time."""
        return f"{self.base}commits"


@dataclass(frozen=True, slots=True)
class BotKeys(KvsKeys):
    """The keys of one bot; all share the hash tag ``{b:<bot>}``."""

    @classmethod
    def of(cls, prefix: str, bot_id: str) -> BotKeys:
        """The keys of ``bot_id`` under ``prefix``."""
        return cls(f"{prefix}{{b:{bot_id}}}:")

    def user(self, user_key: str) -> str:
        """Hash: variable name → packed user variable."""
        return f"{self.base}u:{user_key}"

    def user_sessions(self, user_key: str) -> str:
        """Set of the user's session keys."""
        return f"{self.base}user-sessions:{user_key}"

    @property
    def users(self) -> str:
        """Sorted set (lex) of users that have stored user variables."""
        return f"{self.base}users"

    def session(self, session_key: str) -> str:
        """Hash: the session record (see :func:`pack_session`)."""
        return f"{self.base}s:{session_key}"

    def session_vars(self, session_key: str) -> str:
        """Hash: variable name → packed session variable."""
        return f"{self.base}sv:{session_key}"

    def temp_vars(self, session_key: str) -> str:
        """Hash: variable name → packed temp variable."""
        return f"{self.base}st:{session_key}"

    @property
    def bot_vars(self) -> str:
        """Hash: variable name → packed bot variable."""
        return f"{self.base}bot"

    def var_hash(self, key: VarKey) -> str:
        """The hash that holds the variable ``key``."""
        if key.scope == "user":
            return self.user(key.owner)
        if key.scope == "session":
            return self.session_vars(key.owner)
        if key.scope == "temp":
            return self.temp_vars(key.owner)
        return self.bot_vars

    @property
    def due_user_vars(self) -> str:
        """Sorted set: :func:`user_var_member` scored by the variable's ``expires_at``."""
        return f"{self.base}due:user-vars"

    @property
    def due_sessions(self) -> str:
        """Sorted set: session keys scored by ``expires_at``."""
        return f"{self.base}due:sessions"

    @property
    def due_temps(self) -> str:
        """Sorted set: session keys scored by ``temp_expires_at``."""
        return f"{self.base}due:temps"

    def lease(self, session_key: str) -> str:
        """String: the token of the process that runs a turn of the session."""
        return f"{self.base}lease:{session_key}"

    @property
    def retry_lease(self) -> str:
        """String: the token of the process whose turn of the bot runs again after a conflict."""
        return f"{self.base}retry-lease"

    @property
    def registered(self) -> str:
        """String: present while the bot is in ``{meta}:bots`` (gone with a data loss)."""
        return f"{self.base}registered"


def kvs_keys(prefix: str, namespace: str) -> KvsKeys:
    """The keys of a KVS namespace: a bot's shares its tag, the global one has its own."""
    return BotKeys.of(prefix, namespace) if namespace else KvsKeys(f"{prefix}{{global}}:")


@dataclass(frozen=True, slots=True)
class MetaKeys:
    """botmemory's own keys."""

    settings: str
    bots: str
    layout: str
    janitor_lease: str

    @classmethod
    def of(cls, prefix: str) -> MetaKeys:
        """botmemory's keys under ``prefix``."""
        base = f"{prefix}{{meta}}:"
        return cls(f"{base}settings", f"{base}bots", f"{base}layout", f"{base}janitor-lease")


def native_ttl_ms(expires_at: float, now: float, grace: Seconds) -> int:
    """Native TTL of a whole key whose data expires at ``expires_at``, in milliseconds.

    ``now`` is botmemory's (injected) clock at the write, never this host's wall clock
    nor Redis': the TTL is the time that clock leaves until ``expires_at``, plus
    ``grace``, and never shorter than ``grace`` (nor than 1s). So Redis frees a key only
    after that clock says it expired, wherever the clock stands; Redis counts the TTL in
    real time, so a clock that moves slower than real time (one standing still in a
    test) has ``grace`` of real time to spare.
    """
    remaining = max(expires_at - now, 0.0)
    return max(1000, int((remaining + grace) * 1000))


# -- records -------------------------------------------------------------------------------
def _versioned(version: int, body: str) -> str:
    return f"v{version}\n{body}"


def split_version(raw: str) -> tuple[int, str]:
    """The version of a packed variable or KVS record, and the rest of it."""
    if raw.startswith("v"):
        version, body = raw[1:].split("\n", 1)
        return int(version), body
    return OLD_VERSION, raw


def pack_var(var: StoredVar) -> str:
    """``v<version>``, ``changed_at``, ``expires_at``, ``field_times``, the value: one a line.

    The value comes last and is split off whole, so it may contain anything.
    """
    body = f"{num(var.changed_at)}\n{_opt(var.expires_at)}\n{var.field_times or ''}\n{var.value}"
    return _versioned(var.version, body)


def unpack_var(key: VarKey, raw: str) -> StoredVar:
    """The variable ``key`` from its packed form."""
    version, body = split_version(raw)
    changed_at, expires_at, field_times, value = body.split("\n", 3)
    return StoredVar(
        key, value, float(changed_at), _opt_float(expires_at), field_times or None, version
    )


def var_guard(changed_at: float) -> str:
    """The start of a packed variable last changed at ``changed_at``, after its version."""
    return num(changed_at) + "\n"


def user_var_member(user_key: str, name: str) -> str:
    """A user variable's member in the ``due:user-vars`` index."""
    return json.dumps([user_key, name], separators=(",", ":"))


def pack_session(session: SessionRecord) -> dict[str, str]:
    """The session hash; ``temp`` is absent (and must be deleted) when temp is empty."""
    fields = {
        "user": session.user_key,
        "started": num(session.started_at),
        "seen": num(session.last_seen),
        "expires": num(session.expires_at),
        "ver": str(session.version),
    }
    if session.temp_expires_at is not None:
        fields["temp"] = num(session.temp_expires_at)
    return fields


def unpack_session(bot_id: str, key: str, fields: dict[str, str]) -> SessionRecord | None:
    """The session from its hash, ``None`` if the hash is empty (absent)."""
    if not fields:
        return None
    return SessionRecord(
        bot_id,
        key,
        fields["user"],
        float(fields["started"]),
        float(fields["seen"]),
        float(fields["expires"]),
        _opt_float(fields.get("temp", "")),
        int(fields.get("ver", OLD_VERSION)),
    )


def pack_kvs(record: KvsRecord) -> str:
    """``v<version>``, ``expires_at`` (empty for none), the value: one a line."""
    return _versioned(record.version, f"{_opt(record.expires_at)}\n{record.value}")


def unpack_kvs(raw: str | None, now: float) -> KvsRecord | None:
    """The record if it is live at ``now``."""
    if raw is None:
        return None
    version, body = split_version(raw)
    expires_at, value = body.split("\n", 1)
    record = KvsRecord(value, _opt_float(expires_at), version)
    if record.expires_at is not None and record.expires_at <= now:
        return None
    return record
