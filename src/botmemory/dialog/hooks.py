"""Hooks: a bot's Python code that runs around the dialog, outside flows.

``bots/<botId>/hooks/<hook_name>/*.py`` each define ``hook(event, state, kvs)``, sync or
async; the files of one hook run in the order of their names. The hooks:

- ``before_incoming``, ``after_incoming``: for each user message, before the flow runs
  (memory is loaded; ``session.lastMessages`` already has the message).
- ``before_outgoing``: for each reply, with the outgoing event; return a string to
  replace the reply's text.
- ``before_session_timeout``: on dialog timeout, before the timeout node or flow runs;
  the event is the ``"timeout"`` event.
- ``on_session_end``: when the janitor drops a timed-out session; the event is ``None``.

``state`` is the turn's memory (changes are persisted with the turn); ``kvs`` is the
bot's key-value store.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from botmemory.dialog.errors import HookError
from botmemory.dialog.events import Event
from botmemory.dialog.loader import call_problem, import_file
from botmemory.kvs import KeyValueStore
from botmemory.turns import TurnState

__all__ = [
    "HOOK_NAMES",
    "HookFunction",
    "HookSpec",
    "Hooks",
    "before_outgoing",
    "load_hooks",
    "run_hooks",
]

HOOK_NAMES: Final = (
    "before_incoming",
    "after_incoming",
    "before_outgoing",
    "before_session_timeout",
    "on_session_end",
)
HOOK_FUNCTION: Final = "hook"

HookFunction = Callable[[Event | None, TurnState, KeyValueStore], "object | Awaitable[object]"]
"""``(event, state, kvs)``, sync or async."""


@dataclass(frozen=True)
class HookSpec:
    """One hook function and the file it comes from."""

    hook: str
    function: HookFunction
    source: str


Hooks = Mapping[str, Sequence[HookSpec]]
"""Hook name -> its functions, in the order they run."""


def load_hooks(
    bot_dir: Path, bot_id: str, label: str, problems: list[str]
) -> dict[str, list[HookSpec]]:
    """Import ``bot_dir/hooks/*/*.py``; add a problem naming the file for each bad one,
    and for each Python file directly in ``hooks/``, which would never run."""
    hooks: dict[str, list[HookSpec]] = {name: [] for name in HOOK_NAMES}
    root = bot_dir / "hooks"
    if not root.is_dir():
        return hooks
    stray = (p for p in root.iterdir() if p.suffix == ".py" and p.is_file())
    for path in sorted(p for p in stray if not p.name.startswith("__")):  # __init__.py: fine
        problems.append(_stray_file(path.name, f"{label}/hooks/{path.name}"))
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "__pycache__"):
        where = f"{label}/hooks/{folder.name}"
        if folder.name not in hooks:
            problems.append(f"{where}: unknown hook: the hooks are {', '.join(HOOK_NAMES)}")
            continue
        for path in sorted(folder.glob("*.py")):
            spec = _load_one(path, bot_id, folder.name, f"{where}/{path.name}", problems)
            if spec is not None:
                hooks[folder.name].append(spec)
    return hooks


def _stray_file(name: str, where: str) -> str:
    """The problem of a Python file directly in ``hooks/``, not in a hook's folder."""
    hook = name.removesuffix(".py")
    if hook in HOOK_NAMES:
        fix = f"move it to hooks/{hook}/{name}"
    else:
        fix = f"the hooks are {', '.join(HOOK_NAMES)}"
    return (
        f"{where}: a file directly in hooks/ never runs: hooks go in "
        f"hooks/<hook name>/<file>.py; {fix}"
    )


def _load_one(
    path: Path, bot_id: str, hook: str, label: str, problems: list[str]
) -> HookSpec | None:
    module = import_file(path, bot_id, f"hooks_{hook}", label)
    if isinstance(module, str):
        problems.append(module)
        return None
    function = getattr(module, HOOK_FUNCTION, None)
    if not callable(function):
        problems.append(f"{label}: defines no function {HOOK_FUNCTION}(event, state, kvs)")
        return None
    problem = call_problem(function, ("event", "state", "kvs"))
    if problem is not None:
        problems.append(f"{label}: {problem}")
        return None
    return HookSpec(hook, function, label)


async def run_hooks(
    specs: Sequence[HookSpec], event: Event | None, state: TurnState, kvs: KeyValueStore
) -> list[object]:
    """Run hook functions in order; return what each returned.

    An exception in a hook is raised as :class:`HookError` naming the hook and its file.
    """
    results: list[object] = []
    for spec in specs:
        try:
            result = spec.function(event, state, kvs)
            if inspect.isawaitable(result):
                result = await result
        except (Exception, SystemExit) as exc:  # sys.exit() in a hook fails the turn only
            message = f"hook {spec.hook} ({spec.source}) failed: {type(exc).__name__}: {exc}"
            raise HookError(message) from exc
        results.append(result)
    return results


async def before_outgoing(
    hooks: Hooks, event: Event, replies: Sequence[str], state: TurnState, kvs: KeyValueStore
) -> list[str]:
    """Pass each reply through the ``before_outgoing`` hooks; a returned string replaces it."""
    sent: list[str] = []
    for text in replies:
        for result in await run_hooks(
            hooks.get("before_outgoing", ()), event.reply(text), state, kvs
        ):
            if isinstance(result, str):
                text = result
        sent.append(text)
    return sent
