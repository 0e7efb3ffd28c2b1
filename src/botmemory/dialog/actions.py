"""Actions: what a flow node does besides talking. Builtins, and a bot's own.

A bot's actions live in ``bots/<botId>/actions/*.py``::

    from botmemory.dialog import action

    @action("shop.addToCart")
    async def add_to_cart(event, state, args, kvs):
        cart = state.temp.setdefault("cart", [])
        cart.append(args["item"])

An action receives the event, the turn's :class:`~botmemory.turns.TurnState`, its
arguments (string values rendered as templates) and the bot's key-value store. It may
be sync or async. What it changes in the state is persisted with the turn.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Final, TypeVar

from botmemory.dialog.errors import TemplateError
from botmemory.dialog.events import Event
from botmemory.dialog.operators import plain
from botmemory.dialog.templates import Template, compile_template
from botmemory.kvs import KeyValueStore
from botmemory.turns import TurnState
from botmemory.values import JsonValue

__all__ = [
    "ACTION_MARK",
    "ActionFunction",
    "ActionSpec",
    "action",
    "collect_actions",
    "compile_args",
    "invoke",
    "render_args",
]

ActionFunction = Callable[
    [Event, TurnState, dict[str, JsonValue], KeyValueStore], "object | Awaitable[object]"
]
"""``(event, state, args, kvs)``, sync or async; the return value is ignored."""
ArgsCheck = Callable[[Mapping[str, object]], list[str]]

ACTION_MARK: Final = "__botmemory_action__"
RESERVED_PREFIXES: Final = ("base.", "builtin.")

F = TypeVar("F", bound=Callable[..., object])


def action(name: str) -> Callable[[F], F]:
    """Register the decorated function as the action ``name`` of the bot it belongs to."""
    if not isinstance(name, str) or not name.strip():
        raise TypeError(
            f"@action needs the action's name, as in @action('shop.addToCart'), not {name!r}"
        )

    def mark(function: F) -> F:
        setattr(function, ACTION_MARK, name)
        return function

    return mark


@dataclass(frozen=True)
class ActionSpec:
    """An action a flow can name: its function, where it comes from, how to check args."""

    name: str
    function: ActionFunction
    source: str
    """``"builtin"``, or the file that defines it."""
    check: ArgsCheck | None = None
    """Return the problems of a node's (unrendered) arguments; ``None`` accepts any."""


def collect_actions(module: ModuleType, source: str) -> list[ActionSpec]:
    """Return the functions defined in ``module`` and marked with :func:`action`."""
    found: list[ActionSpec] = []
    for value in vars(module).values():
        name = getattr(value, ACTION_MARK, None)
        defined_here = getattr(value, "__module__", None) == module.__name__
        if callable(value) and isinstance(name, str) and defined_here:
            found.append(ActionSpec(name, value, source))
    return found


async def invoke(
    spec: ActionSpec,
    event: Event,
    state: TurnState,
    args: dict[str, JsonValue],
    kvs: KeyValueStore,
) -> None:
    """Call an action, awaiting it if it is async."""
    result = spec.function(event, state, args, kvs)
    if inspect.isawaitable(result):
        await result


# --- Arguments: strings are templates --------------------------------------------------

CompiledArg = Template | dict[str, "CompiledArg"] | list["CompiledArg"] | JsonValue


def compile_args(args: Mapping[str, object]) -> dict[str, CompiledArg]:
    """Compile every string (also nested) of ``args`` into a template; raise TemplateError."""
    return {key: _compile(value, key) for key, value in args.items()}


def _compile(value: object, where: str) -> CompiledArg:
    if isinstance(value, str):
        try:
            return compile_template(value)
        except TemplateError as exc:
            raise TemplateError(f"args.{where}: {exc}") from None
    if isinstance(value, dict):
        return {k: _compile(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_compile(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value  # type: ignore[return-value]


def render_args(
    args: Mapping[str, CompiledArg], context: Mapping[str, object]
) -> dict[str, JsonValue]:
    """Render the templates of ``args``; a string that is one tag keeps the value's type."""
    return {key: _render(value, context) for key, value in args.items()}


def _render(value: CompiledArg, context: Mapping[str, object]) -> JsonValue:
    if isinstance(value, Template):
        # a copy: storing {{temp.cart}} elsewhere must not share the list with temp
        return plain(value.value(context))  # type: ignore[return-value]
    if isinstance(value, dict):
        return {k: _render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, context) for v in value]
    return value
