"""What :class:`~botmemory.memory.Memory` shows of stored data, as typed records.

:meth:`Memory.peek <botmemory.memory.Memory.peek>` answers a :class:`MemoryView`,
:meth:`Memory.export_user <botmemory.memory.Memory.export_user>` a :class:`UserExport`
and :meth:`Memory.forget_user <botmemory.memory.Memory.forget_user>` an
:class:`ErasureCounts`. The records are frozen, with snake_case fields and times as epoch
seconds; each one's ``to_json()`` gives the camelCase JSON document that the HTTP API, the
CLI and export files show (the export format is a contract: ``to_json()`` keeps it).
Layers above map the records to what they print or serve; none parses JSON back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from botmemory.clock import iso_or_none, iso_time
from botmemory.storage.base import SCOPES, Scope
from botmemory.values import JsonValue

__all__ = [
    "ErasureCounts",
    "ExportedMessage",
    "ExportedSession",
    "ExportedVariable",
    "MemoryView",
    "SessionView",
    "UserExport",
    "VariableView",
]


# -- Memory.peek ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VariableView:
    """A variable's value, and when it goes away if nothing changes."""

    value: JsonValue
    expires_at: float | None
    """Epoch seconds; ``None`` when it never expires (or, in bot memory, ever)."""

    def to_json(self) -> dict[str, JsonValue]:
        """Return ``{"value": ..., "expiresAt": ..., "expiresAtIso": ...}``."""
        return {
            "value": self.value,
            "expiresAt": self.expires_at,
            "expiresAtIso": iso_or_none(self.expires_at),
        }


@dataclass(frozen=True, slots=True)
class SessionView:
    """Whether a session is alive, and when it times out."""

    alive: bool
    expires_at: float | None
    """Epoch seconds; ``None`` when no session is alive."""

    def to_json(self) -> dict[str, JsonValue]:
        """Return ``{"alive": ..., "expiresAt": ..., "expiresAtIso": ...}``."""
        return {
            "alive": self.alive,
            "expiresAt": self.expires_at,
            "expiresAtIso": iso_or_none(self.expires_at),
        }


@dataclass(frozen=True, slots=True)
class MemoryView:
    """The four memories of one session as the next message would see them.

    ``scopes`` maps ``"user"``, ``"session"``, ``"temp"`` and ``"bot"``, in that order, to
    the scope's variables by name. A user variable expires by its retention policy, a
    session variable with the session, a temp variable with the dialog; bot variables
    never expire.
    """

    bot_id: str
    user_id: str
    channel: str
    thread_id: str | None
    session_id: str
    """``bot::channel::user`` plus ``::thread`` when there is a thread."""
    now: float
    """The memory's clock when it looked, epoch seconds: count expiries down from it."""
    session: SessionView
    scopes: Mapping[Scope, Mapping[str, VariableView]]

    def to_json(self) -> dict[str, JsonValue]:
        """Return the camelCase document ``botmemory memory show --json`` prints, which
        the HTTP API shows too (``GET .../users/{userId}/memory``)."""
        return {
            "botId": self.bot_id,
            "userId": self.user_id,
            "channel": self.channel,
            "threadId": self.thread_id,
            "sessionId": self.session_id,
            "now": self.now,
            "nowIso": iso_time(self.now),
            "session": self.session.to_json(),
            "scopes": {
                scope: {name: v.to_json() for name, v in self.scopes.get(scope, {}).items()}
                for scope in SCOPES
            },
        }


# -- Memory.export_user --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ExportedVariable:
    """A user variable in an export: its value, last change and expiry."""

    value: JsonValue
    changed_at: float
    """Epoch seconds of the last change (ISO 8601 in the JSON document)."""
    expires_at: float | None
    """Epoch seconds, ``None`` when it never expires (ISO 8601 or null in the JSON)."""

    def to_json(self) -> dict[str, JsonValue]:
        """Return ``{"value", "changedAt", "expiresAt"}`` with ISO 8601 times."""
        expires = None if self.expires_at is None else iso_time(self.expires_at)
        return {"value": self.value, "changedAt": iso_time(self.changed_at), "expiresAt": expires}


@dataclass(frozen=True, slots=True)
class ExportedMessage:
    """A message id a live session remembers, with the replies stored for it."""

    id: str
    replies: tuple[JsonValue, ...]
    """What the bot answered, answered again to a copy of the message; empty when the
    replies were too large to keep."""

    def to_json(self) -> dict[str, JsonValue]:
        """Return ``{"id", "replies"}``."""
        return {"id": self.id, "replies": list(self.replies)}


@dataclass(frozen=True, slots=True)
class ExportedSession:
    """A live session in an export, with its variables and its live temp memory."""

    session_id: str
    started_at: float
    last_seen: float
    expires_at: float
    """All three epoch seconds (ISO 8601 in the JSON document)."""
    variables: Mapping[str, JsonValue]
    """Session memory, plain values by name."""
    temp: Mapping[str, JsonValue]
    """Temp memory, plain values by name; empty when the dialog timed out."""
    messages: tuple[ExportedMessage, ...] = ()
    """The message ids the session remembers with their replies, oldest first."""

    def to_json(self) -> dict[str, JsonValue]:
        """Return the session as the export document holds it."""
        return {
            "sessionId": self.session_id,
            "startedAt": iso_time(self.started_at),
            "lastSeen": iso_time(self.last_seen),
            "expiresAt": iso_time(self.expires_at),
            "variables": dict(self.variables),
            "temp": dict(self.temp),
            "messages": [message.to_json() for message in self.messages],
        }


@dataclass(frozen=True, slots=True)
class UserExport:
    """Everything still alive for one user of one bot on one channel."""

    bot_id: str
    channel: str
    user_id: str
    exported_at: float
    """Epoch seconds (ISO 8601 in the JSON document)."""
    user: Mapping[str, ExportedVariable]
    """User memory by name."""
    sessions: tuple[ExportedSession, ...]
    """The user's live sessions on the channel, each thread's its own."""
    kvs: Mapping[str, JsonValue]
    """The bot's keys of the user and of their conversations, with their values."""

    def to_json(self) -> dict[str, JsonValue]:
        """Return the export document (docs/memory.md, Export and erasure)."""
        return {
            "botId": self.bot_id,
            "channel": self.channel,
            "userId": self.user_id,
            "exportedAt": iso_time(self.exported_at),
            "user": {name: variable.to_json() for name, variable in self.user.items()},
            "sessions": [session.to_json() for session in self.sessions],
            "kvs": dict(self.kvs),
        }


# -- Memory.forget_user --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ErasureCounts:
    """How much of each kind erasing a user removed."""

    user_variables: int
    sessions: int
    session_variables: int
    """Session and temp variables of the erased sessions."""
    kvs: int
    """Keys of the bot's store: the user's and their conversations'."""

    @classmethod
    def of(cls, counts: Mapping[str, int]) -> ErasureCounts:
        """Read the counts a storage's ``delete_user`` returns."""
        return cls(
            counts["user_variables"], counts["sessions"], counts["session_variables"], counts["kvs"]
        )

    def to_json(self) -> dict[str, int]:
        """Return ``{"user_variables", "sessions", "session_variables", "kvs"}``."""
        return {
            "user_variables": self.user_variables,
            "sessions": self.sessions,
            "session_variables": self.session_variables,
            "kvs": self.kvs,
        }
