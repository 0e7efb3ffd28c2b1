"""Fixtures of the dialog tests: bot folders written from dicts, engines over every backend."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from botmemory.dialog import DialogEngine, Event
from tests.conftest import OpenMemory

Flows = Mapping[str, Any]
MakeEngine = Callable[..., Awaitable[DialogEngine]]


def write_bot(
    data_dir: Path,
    flows: Flows,
    *,
    bot_id: str = "b",
    actions: Mapping[str, str] | None = None,
    hooks: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """Write ``data_dir/bots/<bot_id>/``: flows (dicts, or JSON5 text), actions, hooks."""
    bot = data_dir / "bots" / bot_id
    (bot / "flows").mkdir(parents=True, exist_ok=True)
    for name, flow in flows.items():
        path = bot / "flows" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(flow if isinstance(flow, str) else json.dumps(flow, indent=2))
    for name, code in (actions or {}).items():
        (bot / "actions").mkdir(exist_ok=True)
        (bot / "actions" / name).write_text(textwrap.dedent(code))
    for hook, files in (hooks or {}).items():
        (bot / "hooks" / hook).mkdir(parents=True, exist_ok=True)
        for name, code in files.items():
            (bot / "hooks" / hook / name).write_text(textwrap.dedent(code))
    return data_dir


def node(
    name: str,
    *,
    say: str | list[str] | None = None,
    enter: list[dict[str, Any]] | None = None,
    receive: list[dict[str, Any]] | None = None,
    next: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A node: ``say`` adds say instructions after ``enter``; ``receive`` makes it wait."""
    on_enter = list(enter or [])
    for text in [say] if isinstance(say, str) else say or []:
        on_enter.append({"say": text})
    built: dict[str, Any] = {"name": name, "onEnter": on_enter, **extra}
    if receive is not None:
        built["onReceive"] = receive
    if next is not None:
        built["next"] = next
    return built


def flow(*nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A flow starting at its first node."""
    return {"startNode": nodes[0]["name"], "nodes": list(nodes), **extra}


def set_var(scope: str, name: str, value: object) -> dict[str, Any]:
    """A ``base.setVariable`` instruction."""
    return {"action": "base.setVariable", "args": {"type": scope, "name": name, "value": value}}


@pytest.fixture
async def make_engine(open_memory: OpenMemory, tmp_path: Path) -> AsyncIterator[MakeEngine]:
    """Build engines over a memory on the backend under test; all closed afterwards."""
    engines: list[DialogEngine] = []

    async def make(
        flows: Flows,
        *,
        config: Mapping[str, Any] | None = None,
        bot_configs: Mapping[str, Mapping[str, Any]] | None = None,
        actions: Mapping[str, str] | None = None,
        hooks: Mapping[str, Mapping[str, str]] | None = None,
        bot_id: str = "b",
        **options: Any,
    ) -> DialogEngine:
        data = write_bot(
            tmp_path / f"data{len(engines)}", flows, bot_id=bot_id, actions=actions, hooks=hooks
        )
        memory = await open_memory(config, bot_configs)
        engine = DialogEngine.open(memory, data, **options)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.close()


class Outbox:
    """Collects the replies of timeout handling."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str]]] = []

    async def __call__(self, event: Event, replies: list[str]) -> None:
        self.sent.append((event.user_id, replies))

    @property
    def replies(self) -> list[str]:
        return [reply for _, replies in self.sent for reply in replies]


class Gate:
    """Lets a test hold a hook inside its body: the hook awaits ``wait()``."""

    def __init__(self) -> None:
        import asyncio

        self.entered = asyncio.Event()
        self.released = asyncio.Event()

    async def wait(self) -> None:
        self.entered.set()
        await self.released.wait()


GATES: dict[str, Gate] = {}
"""Gates by name, for hook code written to files (``from tests.dialog.conftest import GATES``)."""
