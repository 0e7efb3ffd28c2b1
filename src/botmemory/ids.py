"""Identities: who a user is, which session a turn belongs to, and the rules for ids.

A user is ``(bot_id, channel, user_id)``: user memory is never shared between bots
or channels. A session id is ``bot::channel::user``, plus ``::thread`` when there is
a thread. Storage never keys on that string: it keys on the parts, encoded as a JSON
array, so ids that contain ``::`` can never collide.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Final

from botmemory.errors import InvalidIdError

__all__ = ["BOT_ID_PATTERN", "Identity", "validate_bot_id", "validate_id"]

BOT_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")
MAX_ID_LENGTH: Final = 255


def validate_bot_id(bot_id: object) -> str:
    """Return ``bot_id`` if it matches ``[A-Za-z0-9_-]{1,64}``, else raise."""
    if not isinstance(bot_id, str) or BOT_ID_PATTERN.fullmatch(bot_id) is None:
        raise InvalidIdError(
            f"bot id {bot_id!r} is invalid: use 1 to 64 letters, digits, '_' or '-'"
        )
    return bot_id


def validate_id(value: object, kind: str, *, max_length: int = MAX_ID_LENGTH) -> str:
    """Return ``value`` if it is 1 to ``max_length`` characters with no control character."""
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise InvalidIdError(
            f"{kind} {value!r} is invalid: use a string of 1 to {max_length} characters"
        )
    if _CONTROL.search(value):
        raise InvalidIdError(f"{kind} {value!r} is invalid: it contains a control character")
    if _SURROGATE.search(value):
        raise InvalidIdError(f"{kind} {value!r} is invalid: it is not valid Unicode text")
    return value


@dataclass(frozen=True, slots=True)
class Identity:
    """The user and session a turn belongs to."""

    bot_id: str
    channel: str
    user_id: str
    thread_id: str | None = None
    user_key: str = field(init=False, repr=False, compare=False)
    """Storage key of the user inside its bot (collision-free)."""
    session_key: str = field(init=False, repr=False, compare=False)
    """Storage key of the session inside its bot (collision-free)."""

    def __post_init__(self) -> None:
        user = [self.channel, self.user_id]
        object.__setattr__(self, "user_key", json.dumps(user, ensure_ascii=False))
        session = json.dumps([*user, self.thread_id], ensure_ascii=False)
        object.__setattr__(self, "session_key", session)

    @classmethod
    def of(
        cls, bot_id: str, user_id: str, channel: str = "api", thread_id: str | None = None
    ) -> Identity:
        """Validate every part and build the identity."""
        return cls(
            validate_bot_id(bot_id),
            validate_id(channel, "channel"),
            validate_id(user_id, "user id"),
            None if thread_id is None else validate_id(thread_id, "thread id"),
        )

    @property
    def session_id(self) -> str:
        """The readable session id: ``bot::channel::user[::thread]``."""
        parts = [self.bot_id, self.channel, self.user_id]
        if self.thread_id is not None:
            parts.append(self.thread_id)
        return "::".join(parts)
