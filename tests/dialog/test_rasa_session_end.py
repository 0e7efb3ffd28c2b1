"""A session's end is handled once, and never for a session that is gone.

Follows Rasa's ``tests/core/test_processor.py`` session tests: the session start
sequence (``ActionSessionStart``) runs once per session, when the session changes, and
never for a conversation that has none. Here its counterpart is the ``on_session_end``
hooks, which the janitor runs before it removes a timed-out session.
"""

from __future__ import annotations

from datetime import timedelta

from botmemory import ManualClock
from tests.dialog.conftest import MakeEngine, flow, node

TRAIL = """
    def hook(event, state, kvs):
        state.user["ends"] = state.user.get("ends", 0) + 1
"""


async def test_a_session_already_removed_runs_no_end_hook_and_starts_no_session(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    # Two janitors (two processes) that both found the session timed out: the first
    # handles its end and removes it; the second comes late and must not handle it again,
    # nor leave a session behind that the user's next message would find.
    engine = await make_engine(
        {"main.flow.json": flow(node("n", say="hello"))},
        hooks={"on_session_end": {"a.py": TRAIL}},
    )
    mem = engine.memory
    await engine.process("b", "u1", text="hi")
    clock.advance(timedelta(minutes=30))
    found = await mem.storage.expired_sessions(clock(), 100)
    assert (await mem.janitor.run_once()).sessions == 1
    (hook,) = mem.janitor.session_end_hooks()
    await hook(found)  # the late janitor
    assert (await mem.export_user("b", "u1")).sessions == ()
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session
        assert state.user["ends"] == 1
