"""The errors of the dialog engine.

They join the hierarchy of :mod:`botmemory.errors`::

    BotMemoryError
     ├── ConfigError
     │    └── BotLoadError                 a bot's flows, actions or hooks are invalid
     ├── ExpressionError (ValueError)      a condition cannot be parsed or evaluated
     ├── TemplateError (ValueError)        a mustache template cannot be parsed
     ├── UnknownBotError (LookupError)     no bot folder with flows for this id
     └── DialogError                       a turn of the dialog failed (bot, flow, node)
          ├── ActionError                  an action raised or got bad arguments
          ├── HookError                    a hook raised
          └── TransitionLoopError          too many steps without waiting for the user
"""

from __future__ import annotations

from botmemory.errors import BotMemoryError, ConfigError

__all__ = [
    "ActionError",
    "BotLoadError",
    "DialogError",
    "ExpressionError",
    "HookError",
    "TemplateError",
    "TransitionLoopError",
    "UnknownBotError",
]


class BotLoadError(ConfigError):
    """A bot's folder cannot be loaded; each problem names its file (and node)."""


class ExpressionError(BotMemoryError, ValueError):
    """A condition is malformed or unsafe, or failed while it was evaluated."""


class TemplateError(BotMemoryError, ValueError):
    """A mustache template is malformed or names something it may not."""


class UnknownBotError(BotMemoryError, LookupError):
    """The dialog engine has no bot of that id (no ``bots/<botId>/flows`` folder)."""


class DialogError(BotMemoryError):
    """A turn of the dialog engine failed; says where, so the log can name it."""

    def __init__(
        self, message: str, bot_id: str = "", flow: str | None = None, node: str | None = None
    ) -> None:
        super().__init__(message)
        self.bot_id = bot_id
        self.flow = flow
        self.node = node

    def located(self, bot_id: str, flow: str | None, node: str | None) -> DialogError:
        """Fill in where the error happened, if it was not known where it was raised."""
        self.bot_id = self.bot_id or bot_id
        self.flow = self.flow or flow
        self.node = self.node or node
        return self


class ActionError(DialogError):
    """An action raised, or was given arguments it cannot use."""


class HookError(DialogError):
    """A hook raised."""


class TransitionLoopError(DialogError):
    """The flow took more steps than allowed without waiting for the user."""
