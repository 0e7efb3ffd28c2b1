"""A session's end is handled once, and never for a session that is gone.

Follows Rasa's ``tests/core/test_processor.py`` session tests: the session start
sequence (``ActionSessionStart``) runs once per session, when the session changes, and
never for a conversation that has none. Here its counterpart is the ``on_session_end``
hooks, which the janitor runs before it removes a timed-out session.
"""

from __future__ import annotations

from datetime import timedelta

from botmemory import ManualClock, Memory
from botmemory.storage.base import SessionRecord
from tests.dialog.conftest import MakeEngine, flow, node, set_var

TRAIL = """
    def hook(event, state, kvs):
        state.user["ends"] = state.user.get("ends", 0) + 1
"""


async def timed_out_session(
    make_engine: MakeEngine, clock: ManualClock
) -> tuple[Memory, list[SessionRecord]]:
    """An engine whose end hook counts ``ends``, and u1's session, timed out and found."""
    engine = await make_engine(
        {"main.flow.json": flow(node("n", say="hello"))},
        hooks={"on_session_end": {"a.py": TRAIL}},
    )
    await engine.process("b", "u1", text="hi")
    clock.advance(timedelta(minutes=30))
    return engine.memory, await engine.memory.storage.expired_sessions(clock(), 100)


async def test_a_session_already_removed_runs_no_end_hook_and_starts_no_session(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    # A janitor that found the session timed out reaches it after another run handled
    # its end and removed it: it must not handle it again, nor leave a session behind
    # that the user's next message would find.
    mem, found = await timed_out_session(make_engine, clock)
    assert (await mem.janitor.run_once()).sessions == 1
    (hook,) = mem.janitor.session_end_hooks()
    await hook(found)  # the late janitor
    assert (await mem.export_user("b", "u1")).sessions == ()
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session
        assert state.user["ends"] == 1


async def test_a_user_erased_while_the_janitor_runs_gets_no_end_hook(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    # The user is erased (another process's forget_user) between the janitor finding
    # their timed-out session and running its end hooks: nothing of theirs comes back.
    mem, found = await timed_out_session(make_engine, clock)
    await mem.forget_user("b", "u1")
    (hook,) = mem.janitor.session_end_hooks()
    await hook(found)
    export = await mem.export_user("b", "u1")
    assert (export.user, export.sessions) == ({}, ())


async def test_a_user_erased_before_their_dialog_timeout_is_handled_gets_no_session(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    # The same race for the dialog timeout: the handler finds nothing to resume and
    # leaves nothing behind.
    waiting = node(
        "ask",
        enter=[set_var("temp", "t", "kept")],
        say="question?",
        receive=[],
        next=[{"node": "END"}],
    )
    engine = await make_engine({"main.flow.json": flow(waiting)})
    mem = engine.memory
    await engine.process("b", "u1", text="hi")
    clock.advance(timedelta(minutes=5))
    found = await mem.storage.expired_temps(clock(), 100)
    assert len(found) == 1
    await mem.forget_user("b", "u1")
    (hook,) = mem.janitor.dialog_timeout_hooks()
    await hook(found)
    export = await mem.export_user("b", "u1")
    assert (export.user, export.sessions) == ({}, ())
