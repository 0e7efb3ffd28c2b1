"""Dialog timeouts and session ends, fired by the janitor; time moves by the clock only."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest

from botmemory import ManualClock
from botmemory.dialog import POSITION_KEY, DialogEngine
from botmemory.errors import LockTimeoutError
from botmemory.storage.base import SessionRecord
from tests.dialog.conftest import GATES, Gate, MakeEngine, Outbox, flow, node, set_var

MINUTE = 60.0
EXPLODE = """
    from botmemory.dialog import action

    @action("explode")
    def explode(event, state, args, kvs):
        raise RuntimeError("kaboom")
"""
HOOK_TRACE = """
    def hook(event, state, kvs):
        state.user["trail"] = state.user.get("trail", []) + [
            ["{name}", None if event is None else event.type, state.temp.get("t")]
        ]
"""


SESSION_TRACE = """
    def hook(event, state, kvs):
        state.user["trail"] = state.user.get("trail", []) + [["end", state.session.get("s")]]
"""


def asking(**extra: Any) -> dict[str, Any]:
    """A waiting node that fills temp and session."""
    return node(
        "ask",
        enter=[set_var("temp", "t", "kept"), set_var("session", "s", "kept")],
        say="question?",
        receive=[],
        next=[{"node": "END"}],
        **extra,
    )


def late(name: str, text: str) -> dict[str, Any]:
    """A timeout target that writes user and session memory and says ``text``."""
    return node(
        name,
        enter=[set_var("user", "timedOut", name), set_var("session", "late", True)],
        say=text + " {{temp.t}}",
    )


async def memories(engine: DialogEngine) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    async with engine.memory.turn("b", "u1") as state:
        session = {k: v for k, v in state.session.items() if k != "lastMessages"}
        return dict(state.user), session, dict(state.temp)


async def timed_out(engine: DialogEngine, clock: ManualClock, minutes: float = 5) -> Outbox:
    outbox = Outbox()
    engine.on_timeout_replies = outbox
    clock.advance(timedelta(seconds=minutes * MINUTE + 1))
    await engine.memory.janitor.run_once()
    return outbox


async def test_a_dialog_timeout_runs_the_hook_then_the_target_then_drops_temp(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    engine = await make_engine(
        {"main.flow.json": flow(asking(timeout="slow"), late("slow", "too slow!"))},
        hooks={"before_session_timeout": {"a.py": HOOK_TRACE.format(name="hook")}},
    )
    assert await engine.process("b", "u1", text="hi") == ["question?"]
    outbox = await timed_out(engine, clock)
    assert outbox.sent == [("u1", ["too slow! kept"])]
    user, session, temp = await memories(engine)
    assert user == {"trail": [["hook", "timeout", "kept"]], "timedOut": "slow"}
    assert session == {"s": "kept", "late": True}  # the session lives on, with the changes
    assert temp == {}
    assert await engine.process("b", "u1", text="hi") == ["question?"]  # main starts again
    assert (await timed_out(engine, clock, minutes=0)).sent == []  # nothing more to time out


TARGETS = [
    ("node timeout", {"timeout": "byNode"}, True, True, True, "byNode"),
    ("node named timeout", {}, True, True, True, "timeout"),
    ("flow timeoutNode", {}, False, True, True, "byFlow"),
    ("timeout flow", {}, False, False, True, "flow"),
    ("nothing", {}, False, False, False, None),
]


@pytest.mark.parametrize(
    ("case", "node_extra", "timeout_node", "flow_node", "timeout_flow", "expected"),
    TARGETS,
    ids=[t[0] for t in TARGETS],
)
async def test_the_first_timeout_target_found_runs(
    make_engine: MakeEngine,
    clock: ManualClock,
    case: str,
    node_extra: dict[str, Any],
    timeout_node: bool,
    flow_node: bool,
    timeout_flow: bool,
    expected: str | None,
) -> None:
    nodes = [asking(**node_extra), late("byNode", "byNode"), late("byFlow", "byFlow")]
    if timeout_node:
        nodes.append(late("timeout", "timeout"))
    main = flow(*nodes, **({"timeoutNode": "byFlow"} if flow_node else {}))
    flows = {"main.flow.json": main}
    if timeout_flow:
        flows["timeout.flow.json"] = flow(late("flow", "flow"))
    engine = await make_engine(flows)
    await engine.process("b", "u1", text="hi")
    outbox = await timed_out(engine, clock)
    user, _, temp = await memories(engine)
    assert outbox.replies == ([] if expected is None else [f"{expected} kept"])
    assert user.get("timedOut") == expected
    assert temp == {}


async def test_a_timeout_inside_a_called_flow_uses_that_flows_targets(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node("start", next=[{"flow": "sub.flow.json"}]), late("timeout", "main's")
            ),
            "sub.flow.json": flow(asking(), late("timeout", "sub's")),
        }
    )
    await engine.process("b", "u1", text="hi")
    assert (await timed_out(engine, clock)).replies == ["sub's kept"]


async def test_a_message_after_the_timeout_handles_it_first(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    engine = await make_engine(
        {"main.flow.json": flow(asking(timeout="slow"), late("slow", "too slow!"))},
        hooks={"before_session_timeout": {"a.py": HOOK_TRACE.format(name="hook")}},
    )
    outbox = Outbox()
    engine.on_timeout_replies = outbox
    await engine.process("b", "u1", text="hi")
    clock.advance(timedelta(seconds=5 * MINUTE + 1))
    found = await engine.memory.storage.expired_temps(clock(), 100)
    assert len(found) == 1
    # the janitor has not swept yet: the message's turn handles the timeout first
    assert await engine.process("b", "u1", text="back") == ["too slow! kept", "question?"]
    (janitor_hook,) = engine.memory.janitor.dialog_timeout_hooks()
    await janitor_hook(found)  # the janitor got to it only after the message: nothing to do
    user, _, temp = await memories(engine)
    assert outbox.sent == []
    assert user["trail"] == [["hook", "timeout", "kept"]]  # the hook ran once, saw old temp
    assert temp[POSITION_KEY]["node"] == "ask"


async def test_a_copy_of_a_message_that_handled_a_late_timeout_gets_all_its_replies(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    engine = await make_engine(
        {"main.flow.json": flow(asking(timeout="slow"), late("slow", "too slow!"))}
    )
    engine.on_timeout_replies = Outbox()
    await engine.process("b", "u1", text="hi")
    clock.advance(timedelta(seconds=5 * MINUTE + 1))
    first = await engine.answer("b", "u1", text="back", message_id="m1")
    assert first.replies == ["too slow! kept", "question?"]
    again = await engine.answer("b", "u1", text="back", message_id="m1")  # a client's retry
    assert again.replies == first.replies


async def test_a_timeout_and_a_message_of_one_session_never_run_at_once(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    GATES["timeout"] = gate = Gate()
    start = node("start", next=[{"condition": "user.timedOut", "node": "again"}, {"node": "ask"}])
    again = node("again", say="welcome back after {{user.timedOut}}")
    engine = await make_engine(
        {"main.flow.json": flow(start, asking(timeout="slow"), late("slow", "too slow!"), again)},
        hooks={
            "before_session_timeout": {
                "held.py": """
                    from tests.dialog.conftest import GATES

                    async def hook(event, state, kvs):
                        await GATES["timeout"].wait()
                """
            }
        },
    )
    outbox = Outbox()
    engine.on_timeout_replies = outbox
    await engine.process("b", "u1", text="hi")
    clock.advance(timedelta(seconds=5 * MINUTE + 1))
    janitor = asyncio.create_task(engine.memory.janitor.run_once())
    await asyncio.wait_for(gate.entered.wait(), 5)
    message = asyncio.create_task(engine.process("b", "u1", text="now"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not message.done()  # waits for the timeout turn of its session
    gate.released.set()
    await janitor
    assert await message == ["welcome back after slow"]  # it saw what the timeout wrote
    assert outbox.replies == ["too slow! kept"]


async def test_a_short_session_timeout_runs_the_dialog_timeout_then_the_session_end(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    engine = await make_engine(
        {"main.flow.json": flow(asking(timeout="slow"), late("slow", "too slow!"))},
        config={"dialog": {"timeoutInterval": "1h", "sessionTimeoutInterval": "10m"}},
        hooks={
            "before_session_timeout": {"a.py": HOOK_TRACE.format(name="timeout")},
            "on_session_end": {
                "a.py": HOOK_TRACE.format(name="end"),
                "b.py": """
                    async def hook(event, state, kvs):
                        await kvs.set("last/" + state.user_id, state.session.get("late"))
                """,
            },
        },
    )
    await engine.process("b", "u1", text="hi")
    outbox = await timed_out(engine, clock, minutes=10)
    report = engine.memory.janitor.last_report
    assert report is not None
    assert report.sessions == 1
    assert outbox.replies == ["too slow! kept"]
    async with engine.memory.turn("b", "u1") as state:
        assert state.is_new_session
        assert state.user["trail"] == [["timeout", "timeout", "kept"], ["end", None, None]]
        assert state.user["timedOut"] == "slow"
    assert await engine.memory.kvs.for_bot("b").get("last/u1") is True


async def test_a_message_before_the_sweep_ends_the_timed_out_session_first(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    """The session-end hooks run once, on the old session, whoever gets there first."""
    engine = await make_engine(
        {"main.flow.json": flow(node("n", enter=[set_var("session", "s", "old")], say="hello"))},
        hooks={"on_session_end": {"a.py": SESSION_TRACE}},
    )
    ended: list[str] = []

    async def janitor_hook(sessions: list[SessionRecord]) -> None:
        ended.extend(s.key for s in sessions)

    engine.memory.janitor.on_session_end = janitor_hook
    await engine.process("b", "u1", text="hi")
    clock.advance(timedelta(seconds=30 * MINUTE - 0.001))  # just before the timeout
    await engine.process("b", "u1", text="still here")
    user, _, _ = await memories(engine)
    assert "trail" not in user  # the same session goes on
    assert ended == []
    clock.advance(timedelta(seconds=30 * MINUTE))  # the timeout, to the millisecond
    found = await engine.memory.storage.expired_sessions(clock(), 100)
    assert len(found) == 1
    assert await engine.process("b", "u1", text="back") == ["hello"]
    user, session, _ = await memories(engine)
    assert user["trail"] == [["end", "old"]]  # ran on the old session, before the message
    assert session == {"s": "old"}  # the new session's, set by the message
    assert len(ended) == 1  # the janitor's own hooks too
    bot_hooks = engine.memory.janitor.session_end_hooks()[0]
    await bot_hooks(found)  # the janitor read the session before the message: no-op
    await engine.memory.janitor.run_once()
    user, _, _ = await memories(engine)
    assert user["trail"] == [["end", "old"]]
    assert len(ended) == 1


async def test_a_message_while_the_janitor_ends_its_session_waits_and_hooks_run_once(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    engine = await make_engine(
        {"main.flow.json": flow(node("n", enter=[set_var("session", "s", "old")], say="hello"))},
        hooks={"on_session_end": {"a.py": SESSION_TRACE}},
    )
    ended: list[str] = []
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow_janitor_hook(sessions: list[SessionRecord]) -> None:
        ended.extend(s.key for s in sessions)
        entered.set()
        await release.wait()

    engine.memory.janitor.on_session_end = slow_janitor_hook
    await engine.process("b", "u1", text="hi")
    clock.advance(timedelta(seconds=30 * MINUTE + 1))
    janitor = asyncio.create_task(engine.memory.janitor.run_once())
    await entered.wait()  # the janitor is in its hooks: the bot's ran, the session is stored
    message = asyncio.create_task(engine.process("b", "u1", text="back"))
    for _ in range(50):
        await asyncio.sleep(0)
    assert not message.done()  # it waits for the janitor to finish ending the session
    release.set()
    await janitor
    assert await message == ["hello"]
    user, session, _ = await memories(engine)
    assert user["trail"] == [["end", "old"]]
    assert session == {"s": "old"}  # the new session's
    assert len(ended) == 1


async def test_a_message_waiting_for_the_janitors_dialog_timeouts_still_ends_its_session(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    """The janitor's temp pass clears temp memory only: the message, which waited for
    it, then ends the session itself (here before the janitor's session pass)."""
    engine = await make_engine(
        {"main.flow.json": flow(asking())},
        hooks={"on_session_end": {"a.py": SESSION_TRACE}},
    )
    gates = [asyncio.Event(), asyncio.Event()]
    entered = [asyncio.Event(), asyncio.Event()]
    ended: list[str] = []

    async def slow_dialog_hook(sessions: list[SessionRecord]) -> None:
        batch = sum(e.is_set() for e in entered)
        entered[batch].set()
        await gates[batch].wait()

    async def session_hook(sessions: list[SessionRecord]) -> None:
        ended.extend(s.key for s in sessions)

    engine.memory.janitor.on_dialog_timeout = slow_dialog_hook
    engine.memory.janitor.on_session_end = session_hook
    engine.memory.janitor.batch_size = 1
    assert await engine.process("b", "u1", text="hi") == ["question?"]
    clock.advance(timedelta(seconds=1))
    assert await engine.process("b", "u2", text="hi") == ["question?"]
    clock.advance(timedelta(seconds=31 * MINUTE))  # dialogs and sessions timed out
    janitor = asyncio.create_task(engine.memory.janitor.run_once())
    await entered[0].wait()  # the temp pass's first batch (u1) holds u1
    message = asyncio.create_task(engine.process("b", "u1", text="back"))
    for _ in range(50):
        await asyncio.sleep(0)
    assert not message.done()  # it waits for that batch
    gates[0].set()
    await entered[1].wait()  # the second batch (u2): u1 is free, the message goes on
    assert await message == ["question?"]
    gates[1].set()
    await janitor
    user, session, _ = await memories(engine)
    assert user["trail"] == [["end", "kept"]]  # u1's old session ended, once
    assert session == {"s": "kept"}  # the new one's
    assert ended.count('["api", "u1", null]') == 1


async def test_late_timeout_replies_of_a_message_that_then_fails_go_to_the_sink(
    make_engine: MakeEngine, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They are committed before the message's own turn: a 503 must not lose them."""
    engine = await make_engine(
        {"main.flow.json": flow(asking(timeout="slow"), late("slow", "too slow!"))},
        config={"dialog": {"timeoutInterval": "1h", "sessionTimeoutInterval": "10m"}},
    )
    outbox = Outbox()
    engine.on_timeout_replies = outbox
    await engine.process("b", "u1", text="hi")
    clock.advance(timedelta(seconds=10 * MINUTE + 1))
    run_turn, messages = engine.memory.run_turn, []

    async def busy_second_message(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("resume"):
            messages.append(args)
            if len(messages) == 2:
                raise LockTimeoutError("busy")
        return await run_turn(*args, **kwargs)

    monkeypatch.setattr(engine.memory, "run_turn", busy_second_message)
    with pytest.raises(LockTimeoutError):
        await engine.process("b", "u1", text="back")
    assert outbox.replies == ["too slow! kept"]


async def test_two_messages_after_the_timeout_end_the_session_once(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    engine = await make_engine(
        {"main.flow.json": flow(node("n", say="hello"))},
        hooks={"on_session_end": {"a.py": SESSION_TRACE}},
    )
    ended: list[str] = []

    async def awaiting_hook(sessions: list[SessionRecord]) -> None:
        ended.extend(s.key for s in sessions)
        for _ in range(10):
            await asyncio.sleep(0)

    engine.memory.janitor.on_session_end = awaiting_hook
    await engine.process("b", "u1", text="hi")
    clock.advance(timedelta(seconds=30 * MINUTE + 1))
    errors = engine.memory.stats.turn_errors
    answers = await asyncio.gather(
        engine.process("b", "u1", text="one"), engine.process("b", "u1", text="two")
    )
    assert answers == [["hello"], ["hello"]]
    user, _, _ = await memories(engine)
    assert user["trail"] == [["end", None]]
    assert len(ended) == 1
    assert engine.memory.stats.turn_errors == errors  # leaving a turn to end it first: no error


async def test_a_message_after_the_session_timed_out_gets_the_dialog_timeout_replies_first(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    engine = await make_engine(
        {"main.flow.json": flow(asking(timeout="slow"), late("slow", "too slow!"))},
        config={"dialog": {"timeoutInterval": "1h", "sessionTimeoutInterval": "10m"}},
        hooks={
            "before_session_timeout": {"a.py": HOOK_TRACE.format(name="timeout")},
            "on_session_end": {"a.py": HOOK_TRACE.format(name="end")},
        },
    )
    outbox = Outbox()
    engine.on_timeout_replies = outbox
    await engine.process("b", "u1", text="hi")
    clock.advance(timedelta(seconds=10 * MINUTE + 1))
    assert await engine.process("b", "u1", text="back") == ["too slow! kept", "question?"]
    assert outbox.sent == []  # the replies went with the message's answer
    user, session, temp = await memories(engine)
    assert user["trail"] == [["timeout", "timeout", "kept"], ["end", None, None]]
    assert session == {"s": "kept"}  # set again by the new session's flow
    assert temp[POSITION_KEY]["node"] == "ask"
    assert (await timed_out(engine, clock, minutes=0)).sent == []


async def test_a_failing_session_end_hook_does_not_keep_the_user_from_talking(
    make_engine: MakeEngine, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    engine = await make_engine(
        {"main.flow.json": flow(node("n", say="hello"))},
        hooks={"on_session_end": {"a.py": "def hook(event, state, kvs):\n    1 / 0\n"}},
    )
    await engine.process("b", "u1", text="hi")
    clock.advance(timedelta(seconds=30 * MINUTE + 1))
    with caplog.at_level(logging.ERROR):
        assert await engine.process("b", "u1", text="back") == ["hello"]
    assert "ZeroDivisionError" in caplog.text
    assert await engine.process("b", "u1", text="again") == ["hello"]


async def test_outside_a_flow_nothing_times_out(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    engine = await make_engine(
        {"main.flow.json": flow(node("n", say="hello"))},  # ends at once
        hooks={
            "before_outgoing": {"a.py": "def hook(event, state, kvs):\n    state.temp['t'] = 1\n"},
            "before_session_timeout": {"a.py": HOOK_TRACE.format(name="hook")},
        },
    )
    await engine.process("b", "u1", text="hi")
    assert (await memories(engine))[2] == {"t": 1}
    outbox = await timed_out(engine, clock)
    user, _, temp = await memories(engine)
    assert outbox.sent == []
    assert "trail" not in user
    assert temp == {}


async def test_a_failing_timeout_is_logged_and_persists_nothing(
    make_engine: MakeEngine, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                asking(timeout="broken"),
                node("broken", enter=[set_var("user", "x", 1), {"action": "explode"}]),
            )
        },
        actions={"x.py": EXPLODE},
    )
    await engine.process("b", "u1", text="hi")
    with caplog.at_level(logging.ERROR, logger="botmemory.dialog"):
        outbox = await timed_out(engine, clock)
    message = next(r.getMessage() for r in caplog.records if r.name == "botmemory.dialog")
    assert "dialog timeout failed" in message
    assert "bot=b flow=main.flow.json node=broken" in message
    user, _, temp = await memories(engine)
    assert outbox.sent == []
    assert user == {}
    assert temp == {}  # the janitor empties it anyway


@pytest.mark.parametrize("failing", ["hook", "target"])
async def test_a_failing_late_timeout_is_logged_and_the_message_goes_on(
    make_engine: MakeEngine, clock: ManualClock, caplog: pytest.LogCaptureFixture, failing: str
) -> None:
    """A message that finds its dialog timed out before the janitor's sweep handles the
    timeout as the janitor would: a failure is logged, saves nothing, and the message
    (and the next) still runs, without the timed-out temp memory."""
    broken = (
        "def hook(event, state, kvs):\n    state.user['x'] = 1\n    raise RuntimeError('kaboom')\n"
    )
    engine = await make_engine(
        {
            "main.flow.json": flow(
                asking(timeout="slow"),
                node(
                    "slow",
                    enter=[set_var("user", "x", 2)]
                    + ([{"action": "explode"}] if failing == "target" else []),
                ),
            )
        },
        hooks={"before_session_timeout": {"a.py": broken}} if failing == "hook" else {},
        actions={"x.py": EXPLODE},
    )
    await engine.process("b", "u1", text="hi")
    clock.advance(timedelta(seconds=5 * MINUTE - 0.001))
    assert await engine.memory.storage.expired_temps(clock(), 100) == []
    clock.advance(timedelta(seconds=0.001))
    assert len(await engine.memory.storage.expired_temps(clock(), 100)) == 1  # not swept
    with caplog.at_level(logging.ERROR, logger="botmemory.dialog"):
        assert await engine.process("b", "u1", text="back") == ["question?"]
    assert "dialog timeout failed" in caplog.text
    user, session, temp = await memories(engine)
    assert user == {}  # nothing of the failed timeout
    assert session == {"s": "kept"}
    assert temp == {"t": "kept", POSITION_KEY: temp[POSITION_KEY]}  # the flow's fresh start
    assert await engine.process("b", "u1", text="again") == []  # the node ends the flow


async def test_close_takes_the_engine_hooks_out_of_the_janitor(make_engine: MakeEngine) -> None:
    engine = await make_engine({"main.flow.json": flow(node("n"))})
    janitor = engine.memory.janitor
    assert len(janitor.dialog_timeout_hooks()) == len(janitor.session_end_hooks()) == 1
    await engine.close()
    assert janitor.dialog_timeout_hooks() == janitor.session_end_hooks() == []
