"""Identities: who a user is, which session a turn belongs to, and the rules for ids.

A user is ``(bot_id, channel, user_id)``: user memory is never shared between bots
or channels. A session id is ``bot::channel::user``, plus ``::thread`` when there is
a thread. Storage never keys on that string: it keys on the parts, encoded as a JSON
array, so ids that contain ``::`` can never collide.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from json.encoder import encode_basestring as _json_text
from typing import Final

from botmemory.errors import InvalidIdError

__all__ = ["BOT_ID_PATTERN", "Identity", "unknown_bot", "validate_bot_id", "validate_id"]

BOT_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FORBIDDEN: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
MAX_ID_LENGTH: Final = 255


def validate_bot_id(bot_id: object) -> str:
    """Return ``bot_id`` if it matches ``[A-Za-z0-9_-]{1,64}``, else raise."""
    if not isinstance(bot_id, str) or BOT_ID_PATTERN.fullmatch(bot_id) is None:
        raise InvalidIdError(
            f"bot id {bot_id!r} is invalid: use 1 to 64 letters, digits, '_' or '-'"
        )
    return bot_id


def unknown_bot(bot_id: str, known: Iterable[str], where: str = "") -> str:
    """The message for a bot id that names no bot: ``no bot 'x' <where>: the bots are ...``."""
    names = ", ".join(sorted(known)) or "none"
    return f"no bot {bot_id!r}{' ' + where if where else ''}: the bots are {names}"


def validate_id(value: object, kind: str, *, max_length: int = MAX_ID_LENGTH) -> str:
    """Return ``value`` if it is 1 to ``max_length`` characters with no control character."""
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise InvalidIdError(
            f"{kind} {value!r} is invalid: use a string of 1 to {max_length} characters"
        )
    if _FORBIDDEN.search(value):
        if _CONTROL.search(value):
            raise InvalidIdError(f"{kind} {value!r} is invalid: it contains a control character")
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
        # json.dumps([channel, user_id], ensure_ascii=False), and [..., thread_id]
        user = f"{_json_text(self.channel)}, {_json_text(self.user_id)}"
        object.__setattr__(self, "user_key", f"[{user}]")
        thread = "null" if self.thread_id is None else _json_text(self.thread_id)
        object.__setattr__(self, "session_key", f"[{user}, {thread}]")

    @classmethod
    def of(
        cls, bot_id: str, user_id: str, channel: str = "api", thread_id: str | None = None
    ) -> Identity:
        """Validate every part and build the identity."""
        if type(bot_id) is type(user_id) is type(channel) is str and (
            thread_id is None or type(thread_id) is str
        ):
            return _identity(bot_id, user_id, channel, thread_id)  # a recent one, if any
        return cls._validated(bot_id, user_id, channel, thread_id)

    @classmethod
    def _validated(cls, bot_id: str, user_id: str, channel: str, thread_id: str | None) -> Identity:
        return cls(
            validate_bot_id(bot_id),
            validate_id(channel, "channel"),
            validate_id(user_id, "user id"),
            None if thread_id is None else validate_id(thread_id, "thread id"),
        )

    @classmethod
    def from_key(cls, bot_id: str, session_key: str) -> Identity:
        """The identity whose :attr:`session_key` (as storage keeps it) is ``session_key``."""
        try:
            channel, user_id, thread_id = json.loads(session_key)
        except ValueError as exc:
            raise InvalidIdError(f"{session_key!r} is not a session key") from exc
        return cls.of(bot_id, user_id, channel, thread_id)

    @property
    def session_id(self) -> str:
        """The readable session id: ``bot::channel::user[::thread]``."""
        parts = [self.bot_id, self.channel, self.user_id]
        if self.thread_id is not None:
            parts.append(self.thread_id)
        return "::".join(parts)


@lru_cache(maxsize=4096)
def _identity(bot_id: str, user_id: str, channel: str, thread_id: str | None) -> Identity:
    """The identities of recent turns, validated once (an invalid one raises, uncached)."""
    return Identity._validated(bot_id, user_id, channel, thread_id)
