"""Every error botmemory raises.

The hierarchy::

    BotMemoryError
     ├── ConfigError                       bad configuration (file, line, key)
     ├── InvalidDurationError (ValueError)  a duration that cannot be parsed
     ├── InvalidIdError (ValueError)        a bot, user, channel or thread id
     ├── InvalidValueError (ValueError)     not a JSON value, or a bad KVS path
     │    ├── ValueTooLargeError            larger than limits.maxValueBytes
     │    │    └── MessageTooLargeError     a message over limits.maxMessageBytes
     │    └── SessionNotAliveError          an edit of a session or dialog that is over
     ├── UserErasedError                    the user was erased while a turn ran
     ├── TurnAbandonedError                 a turn's body left the turn on purpose
     ├── ConflictError                      concurrent turns kept changing what a turn read
     ├── DuplicateMessageError              a message id that was already processed
     ├── BackendError                       the storage failed
     │    ├── BackendUnavailableError (ConnectionError)
     │    ├── SchemaVersionError            database schema newer than this code
     │    ├── ErasurePendingError           erased, but bytes remain in the files for now
     │    └── LockTimeoutError (TimeoutError)
     ├── WrongLoopError (RuntimeError, asyncio.InvalidStateError)
     │                                      a blocking call made on the memory's event loop
     └── MissingDependencyError (ImportError)  an optional driver is not installed

Drivers' own exceptions are translated into these at the storage boundary: a user
never has to catch ``sqlite3.Error`` or ``asyncpg.PostgresError``.
"""

from __future__ import annotations

import asyncio

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "BotMemoryError",
    "ConfigError",
    "ConflictError",
    "DuplicateMessageError",
    "ErasurePendingError",
    "InvalidDurationError",
    "InvalidIdError",
    "InvalidValueError",
    "LockTimeoutError",
    "MessageTooLargeError",
    "MissingDependencyError",
    "SchemaVersionError",
    "SessionNotAliveError",
    "TurnAbandonedError",
    "UserErasedError",
    "ValueTooLargeError",
    "WrongLoopError",
]


class BotMemoryError(Exception):
    """Root of every error botmemory raises."""


class ConfigError(BotMemoryError):
    """The configuration is invalid; the message lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"invalid configuration: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"invalid configuration ({len(self.problems)} problems):\n{lines}"
        super().__init__(message)


class InvalidDurationError(BotMemoryError, ValueError):
    """A duration string or number cannot be used where it was given."""


class InvalidIdError(BotMemoryError, ValueError):
    """A bot, user, channel or thread id does not follow the rules for ids."""


class InvalidValueError(BotMemoryError, ValueError):
    """A value is not JSON, or a KVS path does not fit the stored value."""


class ValueTooLargeError(InvalidValueError):
    """A serialized value is larger than ``limits.maxValueBytes``."""


class MessageTooLargeError(ValueTooLargeError):
    """A user message is larger than ``limits.maxMessageBytes``: it was not stored."""


class SessionNotAliveError(InvalidValueError):
    """An edit changed the session or temp memory of a session or dialog that is over."""


class UserErasedError(BotMemoryError):
    """The user was erased while a turn ran: the turn wrote nothing."""


class TurnAbandonedError(BotMemoryError):
    """Raised by a turn's body to leave the turn: nothing is written, and the turn is not
    counted as failed (the dialog engine does so to end a timed-out session first)."""


class ConflictError(BotMemoryError):
    """A turn's commit found that what it read or wrote changed since it loaded it.

    The commit wrote nothing. :meth:`Memory.run_turn <botmemory.Memory.run_turn>` and
    the dialog engine run the turn again from a fresh load, up to
    ``concurrency.maxAttempts`` times, and raise this only when every attempt conflicted.
    """


class DuplicateMessageError(BotMemoryError):
    """A turn was started for a message id that its session already processed.

    Nothing runs and nothing is written; ``replies`` holds what the first turn of
    that message stored (``TurnState.replies``), so that the caller can answer again.
    """

    def __init__(self, message: str, replies: list[object]) -> None:
        super().__init__(message)
        self.replies = replies


class BackendError(BotMemoryError):
    """The storage backend failed."""


class BackendUnavailableError(BackendError, ConnectionError):
    """The storage backend cannot be reached; retry once it is back."""


class SchemaVersionError(BackendError):
    """The database schema is newer than this version of botmemory knows."""


class ErasurePendingError(BackendError):
    """A user was erased, but the erased bytes could not be removed from the files yet.

    The data is deleted and no reader started since sees it. On SQLite another
    connection was in the middle of a transaction (a read or a write), so the WAL file,
    which still holds the old pages, could not be emptied. Call ``forget_user`` again to
    finish: it deletes whatever came since and checks again. ``counts`` is what this
    erasure removed.
    """

    def __init__(self, message: str, counts: dict[str, int]) -> None:
        super().__init__(message)
        self.counts = counts


class LockTimeoutError(BackendError, TimeoutError):
    """A session lock or the janitor lock could not be taken in time."""


class MissingDependencyError(BotMemoryError, ImportError):
    """An optional driver is not installed; the message says what to install."""


class WrongLoopError(BotMemoryError, RuntimeError, asyncio.InvalidStateError):
    """A blocking call was made on the event loop the memory runs on: await its
    asynchronous version instead. An ``asyncio.InvalidStateError`` too, as LangGraph's
    asynchronous stores raise for the same mistake."""
