"""The read-only memory view behind ``/memory`` and ``botmemory memory show``."""

from __future__ import annotations

from datetime import timedelta

from botmemory import ManualClock
from botmemory.cli.memory_text import EXPIRY_RULES, dialog_position, memory_lines, shown_variables
from botmemory.storage.base import SCOPES
from tests.dialog.conftest import MakeEngine, flow, node, set_var


async def test_the_view_shows_each_variable_with_its_expiry_and_changes_nothing(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "n",
                    enter=[
                        set_var("user", "name", "Ada"),
                        set_var("user", "mood", "ok"),
                        set_var("session", "topic", "tea"),
                        set_var("temp", "step", 1),
                        set_var("bot", "count", 1),
                    ],
                    receive=[],
                )
            )
        },
        config={"dataRetention": {"policies": {"mood": "1d"}}},
    )
    await engine.process("b", "u1", text="hi")
    now = clock()
    view = await engine.memory.peek("b", "u1")
    found = {
        scope: {
            name: (v.value, v.expires_at, EXPIRY_RULES[scope])
            for name, v in shown_variables(view, scope)
        }
        for scope in SCOPES
    }
    assert found["user"] == {
        "name": ("Ada", None, "retention policy"),
        "mood": ("ok", now + 86400, "retention policy"),
    }
    assert found["session"]["topic"] == ("tea", now + 30 * 60, "session timeout")
    assert found["temp"] == {"step": (1, now + 5 * 60, "dialog timeout")}
    assert found["bot"] == {"count": (1, None, "never")}
    assert dialog_position(view) == {"flow": "main.flow.json", "node": "n", "stack": []}
    lines = memory_lines(view)
    assert '  mood = "ok"  (retention policy: expires 2023-11-15T22:13:20.000Z, in 1d)' in lines
    assert '  name = "Ada"  (never expires)' in lines
    # looking kept nothing alive: the session still times out 30 minutes after the message
    clock.advance(timedelta(seconds=30 * 60 + 1))
    async with engine.memory.turn("b", "u1") as state:
        assert state.is_new_session
