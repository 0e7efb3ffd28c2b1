"""Events: what the user sent (or the timeout that fired), as flows, actions and hooks see it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal

from botmemory.values import JsonValue

__all__ = ["MESSAGE_TYPES", "Event"]

MESSAGE_TYPES: Final = ("text", "quick_reply", "postback", "payload")
"""The types a user's message may have: typed text, a quick reply, a button's postback, or
a bare payload."""


@dataclass(frozen=True)
class Event:
    """One event of a conversation. Templates and conditions see it as ``event``.

    ``type`` is the message's type (one of :data:`MESSAGE_TYPES`; by default ``"text"``
    for a message with text, ``"payload"`` for one without), ``"timeout"`` in
    dialog-timeout handling; outgoing replies are ``"text"`` events with
    ``direction="outgoing"``.
    """

    type: str
    bot_id: str
    user_id: str
    channel: str = "api"
    thread_id: str | None = None
    text: str | None = None
    payload: JsonValue = None
    direction: Literal["incoming", "outgoing"] = "incoming"

    def as_dict(self) -> dict[str, JsonValue]:
        """Return the event as templates see it: ``event.text``, ``event.userId``..."""
        return {
            "type": self.type,
            "text": self.text,
            "payload": self.payload,
            "channel": self.channel,
            "userId": self.user_id,
            "botId": self.bot_id,
            "threadId": self.thread_id,
            "direction": self.direction,
        }

    def message(self) -> dict[str, JsonValue]:
        """Return the message the turn remembers in ``session.lastMessages``."""
        message: dict[str, JsonValue] = {"type": self.type, "text": self.text}
        if self.payload is not None:
            message["payload"] = self.payload
        return message

    def reply(self, text: str) -> Event:
        """Return the outgoing event of one reply to this event."""
        return replace(self, type="text", text=text, payload=None, direction="outgoing")
