"""Hooks: Python functions in hooks/<hook_name>/*.py around the dialog, with the KVS."""

from __future__ import annotations

import logging

import pytest

from botmemory.dialog import DEFAULT_ERROR_REPLY
from tests.dialog.conftest import MakeEngine, flow, node, set_var

TRACE = """
    from botmemory.dialog import Event

    def hook(event, state, kvs):
        trail = state.session.get("trail", [])
        what = event.text if event is not None else None
        trail.append(["{name}", event.type, event.direction, what, state.temp.get("said")])
        state.session["trail"] = trail
"""

FLOW = {
    "main.flow.json": flow(
        node(
            "n",
            enter=[set_var("temp", "said", "{{event.text}}")],
            say="echo {{event.text}}",
            receive=[],
            next=[{"node": "n"}],
        )
    )
}


async def test_incoming_and_outgoing_hooks_run_in_order_around_the_flow(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        FLOW,
        hooks={
            "before_incoming": {"a.py": TRACE.format(name="before_incoming")},
            "after_incoming": {"a.py": TRACE.format(name="after_incoming")},
            "before_outgoing": {"a.py": TRACE.format(name="before_outgoing")},
        },
    )
    await engine.process("b", "u1", text="hi")
    async with engine.memory.turn("b", "u1") as state:
        assert state.session["trail"] == [
            ["before_incoming", "text", "incoming", "hi", None],
            ["after_incoming", "text", "incoming", "hi", None],
            ["before_outgoing", "text", "outgoing", "echo hi", "hi"],
        ]


async def test_hook_files_run_in_name_order_sync_or_async_and_use_the_kvs(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        FLOW,
        hooks={
            "before_incoming": {
                "2_second.py": """
                    async def hook(event, state, kvs):
                        await kvs.set("order", (await kvs.get("order", default="")) + "2")
                """,
                "1_first.py": """
                    def hook(event, state, kvs):
                        state.user["seen"] = state.user.get("seen", 0) + 1
                """,
            }
        },
    )
    await engine.process("b", "u1", text="hi")
    await engine.process("b", "u1", text="again")
    assert await engine.memory.kvs.for_bot("b").get("order") == "22"
    async with engine.memory.turn("b", "u1") as state:
        assert state.user["seen"] == 2


async def test_before_outgoing_may_replace_a_reply(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        FLOW,
        hooks={
            "before_outgoing": {
                "upper.py": """
                    def hook(event, state, kvs):
                        return event.text.upper()
                """
            }
        },
    )
    assert await engine.process("b", "u1", text="hi") == ["ECHO HI"]


async def test_a_failing_hook_persists_nothing_and_sends_the_error_reply(
    make_engine: MakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    engine = await make_engine(
        FLOW,
        hooks={
            "before_outgoing": {
                "bad.py": """
                    def hook(event, state, kvs):
                        state.user["touched"] = True
                        raise KeyError("no such thing")
                """
            }
        },
    )
    with caplog.at_level(logging.ERROR, logger="botmemory.dialog"):
        assert await engine.process("b", "u1", text="hi") == [DEFAULT_ERROR_REPLY]
    message = next(r.getMessage() for r in caplog.records if r.name == "botmemory.dialog")
    assert "bot=b flow=main.flow.json node=n" in message
    assert "hook before_outgoing (bots/b/hooks/before_outgoing/bad.py) failed" in message
    async with engine.memory.turn("b", "u1") as state:
        assert "touched" not in state.user
        assert "said" not in state.temp


@pytest.mark.parametrize("kind", ["before_incoming", "after_incoming", "before_outgoing"])
async def test_a_hook_calling_sys_exit_fails_its_turn_only(
    make_engine: MakeEngine, kind: str
) -> None:
    """As when its file is imported: sys.exit() in a bot's code must not end botmemory."""
    engine = await make_engine(
        FLOW,
        hooks={
            kind: {
                "leave.py": """
                    import sys

                    def hook(event, state, kvs):
                        state.user["touched"] = True
                        sys.exit(3)
                """
            }
        },
    )
    assert await engine.process("b", "u1", text="hi") == [DEFAULT_ERROR_REPLY]
    async with engine.memory.turn("b", "u1") as state:
        assert "touched" not in state.user
