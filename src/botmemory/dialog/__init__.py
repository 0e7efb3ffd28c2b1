"""The dialog engine: bots written as files (flows, actions, hooks) over the four memories.

::

    from botmemory.dialog import DialogEngine

    engine = await DialogEngine.from_data_dir("data")
    print(await engine.process("welcome", "u1", text="hi"))

A bot's own actions use the :func:`action` decorator. See ``docs/flows.md``.
"""

from __future__ import annotations

from botmemory.dialog.actions import ActionFunction, ActionSpec, action
from botmemory.dialog.bots import Bot, load_bot, load_bots
from botmemory.dialog.builtin_actions import BUILTIN_ACTIONS
from botmemory.dialog.engine import DEFAULT_ERROR_REPLY, Answer, DialogEngine, ReplySink
from botmemory.dialog.errors import (
    ActionError,
    BotLoadError,
    DialogError,
    ExpressionError,
    HookError,
    TemplateError,
    TransitionLoopError,
    UnknownBotError,
)
from botmemory.dialog.events import Event
from botmemory.dialog.expressions import Condition, compile_condition
from botmemory.dialog.flows import flow_schema
from botmemory.dialog.hooks import HOOK_NAMES, HookFunction
from botmemory.dialog.runner import POSITION_KEY
from botmemory.dialog.templates import Template, compile_template

__all__ = [
    "BUILTIN_ACTIONS",
    "DEFAULT_ERROR_REPLY",
    "HOOK_NAMES",
    "POSITION_KEY",
    "ActionError",
    "ActionFunction",
    "ActionSpec",
    "Answer",
    "Bot",
    "BotLoadError",
    "Condition",
    "DialogEngine",
    "DialogError",
    "Event",
    "ExpressionError",
    "HookError",
    "HookFunction",
    "ReplySink",
    "Template",
    "TemplateError",
    "TransitionLoopError",
    "UnknownBotError",
    "action",
    "compile_condition",
    "compile_template",
    "flow_schema",
    "load_bot",
    "load_bots",
]
