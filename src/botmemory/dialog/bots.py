"""A bot is a folder: ``bots/<botId>/`` with flows, actions and hooks. Load them all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from botmemory.dialog.actions import RESERVED_PREFIXES, ActionSpec, collect_actions
from botmemory.dialog.builtin_actions import BUILTIN_ACTIONS
from botmemory.dialog.errors import BotLoadError
from botmemory.dialog.flows import Flow, load_flows
from botmemory.dialog.hooks import HookSpec, load_hooks
from botmemory.dialog.loader import call_problem, import_file, unload
from botmemory.ids import BOT_ID_PATTERN

__all__ = ["Bot", "load_bot", "load_bots", "unload_bot"]


@dataclass(frozen=True)
class Bot:
    """Everything the dialog engine runs for one bot."""

    bot_id: str
    flows: Mapping[str, Flow]
    actions: Mapping[str, ActionSpec]
    hooks: Mapping[str, Sequence[HookSpec]]


def unload_bot(bot: Bot) -> None:
    """Let go of the Python files ``bot`` loaded (a reload replaced or removed it)."""
    hooks = [spec.function for specs in bot.hooks.values() for spec in specs]
    unload([*(spec.function for spec in bot.actions.values()), *hooks])


def load_bots(data_dir: str | Path) -> dict[str, Bot]:
    """Load every ``bots/<botId>/`` of a data folder that has a ``flows`` folder.

    Raises one :class:`BotLoadError` listing every problem of every bot.
    """
    root = Path(data_dir) / "bots"
    problems: list[str] = []
    bots: dict[str, Bot] = {}
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for folder in folders:
        if (folder / "flows").is_dir() and BOT_ID_PATTERN.fullmatch(folder.name):
            bots[folder.name] = _load(folder, f"bots/{folder.name}", problems)
    if problems:
        raise BotLoadError(problems)
    return bots


def load_bot(bot_dir: str | Path, bot_id: str | None = None) -> Bot:
    """Load one bot folder (its id is the folder's name unless given)."""
    folder = Path(bot_dir)
    problems: list[str] = []
    bot = _load(folder, f"bots/{folder.name}", problems, bot_id or folder.name)
    if problems:
        raise BotLoadError(problems)
    return bot


def _load(folder: Path, label: str, problems: list[str], bot_id: str | None = None) -> Bot:
    bot_id = bot_id or folder.name
    actions = _load_actions(folder, bot_id, label, problems)
    hooks = load_hooks(folder, bot_id, label, problems)
    flows = load_flows(folder, label, actions, problems)
    return Bot(bot_id, flows, actions, hooks)


def _load_actions(
    folder: Path, bot_id: str, label: str, problems: list[str]
) -> dict[str, ActionSpec]:
    actions = dict(BUILTIN_ACTIONS)
    root = folder / "actions"
    paths = sorted(root.glob("*.py")) if root.is_dir() else []
    for path in paths:
        where = f"{label}/actions/{path.name}"
        module = import_file(path, bot_id, "actions", where)
        if isinstance(module, str):
            problems.append(module)
            continue
        for spec in collect_actions(module, where):
            problem = _action_problem(spec, actions)
            if problem is not None:
                problems.append(f"{where}: action {spec.name!r}{problem}")
            # a refused action stays known to the flows, so that a flow calling it is not
            # also reported as calling an unknown action (with a problem, no bot loads)
            actions.setdefault(spec.name, spec)
    return actions


def _action_problem(spec: ActionSpec, actions: Mapping[str, ActionSpec]) -> str | None:
    """Why a bot's action is refused, following its name; ``None`` if it is not."""
    problem = call_problem(spec.function, ("event", "state", "args", "kvs"))
    if problem is not None:
        return f": {problem}"
    if spec.name.startswith(RESERVED_PREFIXES):
        return (
            f": names starting with {' or '.join(RESERVED_PREFIXES)} are reserved for "
            "builtin actions"
        )
    if spec.name in actions:
        return f" is also defined in {actions[spec.name].source}"
    return None
