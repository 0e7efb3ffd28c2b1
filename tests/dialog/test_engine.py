"""Running flows: one turn per message, waiting, transitions, jumps, END, errors."""

from __future__ import annotations

import asyncio
import logging

import pytest

from botmemory import InvalidIdError, InvalidValueError
from botmemory.dialog import DEFAULT_ERROR_REPLY, POSITION_KEY, DialogEngine, UnknownBotError
from tests.dialog.conftest import MakeEngine, flow, node, set_var

ASK_NAME = {
    "main.flow.json": flow(
        node(
            "ask",
            say="What's your name?",
            receive=[set_var("user", "name", "{{event.text}}")],
            next=[{"node": "greet"}],
        ),
        node("greet", say="Nice to meet you, {{user.name}}!", next=[{"node": "END"}]),
    )
}


async def user_memory(engine: DialogEngine, user: str = "u1") -> dict[str, object]:
    async with engine.memory.turn("b", user) as state:
        return dict(state.user)


async def temp_memory(engine: DialogEngine, user: str = "u1") -> dict[str, object]:
    async with engine.memory.turn("b", user) as state:
        return dict(state.temp)


async def test_a_node_with_on_receive_waits_for_the_next_message(make_engine: MakeEngine) -> None:
    engine = await make_engine(ASK_NAME)
    assert await engine.process("b", "u1", text="hi") == ["What's your name?"]
    assert await engine.process("b", "u1", text="Ada") == ["Nice to meet you, Ada!"]
    assert (await user_memory(engine))["name"] == "Ada"


async def test_templates_see_the_event_and_the_four_memories(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "n",
                    enter=[
                        set_var("user", "u", "U"),
                        set_var("session", "s", "S"),
                        set_var("temp", "t", "T"),
                        set_var("bot", "b", "B"),
                    ],
                    say="{{event.type}} {{event.text}} {{event.channel}} {{event.userId}} "
                    "{{event.botId}} {{user.u}} {{session.s}} {{temp.t}} {{bot.b}}",
                    receive=[],
                )
            )
        }
    )
    replies = await engine.process("b", "u1", text="hello", channel="web")
    assert replies == ["text hello web u1 b U S T B"]


async def test_the_position_is_kept_in_temp_but_hidden_from_templates(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node("n", enter=[set_var("temp", "x", 1)], say="{{temp}}", receive=[])
            )
        }
    )
    assert await engine.process("b", "u1", text="hi") == ['{"x": 1}']
    temp = await temp_memory(engine)
    assert temp[POSITION_KEY] == {"flow": "main.flow.json", "node": "n", "stack": []}


async def test_transitions_are_tried_in_order_and_the_first_that_holds_wins(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "ask",
                    say="number?",
                    receive=[set_var("temp", "n", "{{event.text}}")],
                    next=[
                        {"condition": "int(temp.n) > 10", "node": "big"},
                        {"condition": "int(temp.n) > 5", "node": "medium"},
                        {"node": "small"},
                    ],
                ),
                node("big", say="big"),
                node("medium", say="medium"),
                node("small", say="small"),
            )
        }
    )
    results = []
    for number in ("20", "7", "1"):
        await engine.process("b", "u1", text="start")
        results += await engine.process("b", "u1", text=number)
    assert results == ["big", "medium", "small"]


async def test_a_waiting_node_whose_transitions_do_not_match_waits_again(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "confirm",
                    say="yes or no?",
                    receive=[{"say": "you said {{event.text}}"}],
                    next=[{"condition": 'event.text in ["yes", "no"]', "node": "done"}],
                ),
                node("done", say="ok"),
            )
        }
    )
    assert await engine.process("b", "u1", text="hi") == ["yes or no?"]
    assert await engine.process("b", "u1", text="maybe") == ["you said maybe"]  # no re-prompt
    assert await engine.process("b", "u1", text="yes") == ["you said yes", "ok"]


async def test_end_discards_temp_and_the_next_message_starts_main_again(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "first",
                    enter=[set_var("temp", "seen", "{{temp.seen}}x"), set_var("session", "s", 1)],
                    say="temp={{temp.seen}}",
                    receive=[],
                    next=[{"node": "END"}],
                )
            )
        }
    )
    assert await engine.process("b", "u1", text="a") == ["temp=x"]
    assert await engine.process("b", "u1", text="b") == []  # onReceive, then END
    assert await temp_memory(engine) == {}
    assert await engine.process("b", "u1", text="c") == ["temp=x"]  # a fresh main flow


async def test_a_node_without_transitions_ends_the_flow(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        {"main.flow.json": flow(node("only", enter=[set_var("temp", "x", 1)], say="once"))}
    )
    assert await engine.process("b", "u1", text="a") == ["once"]
    assert await temp_memory(engine) == {}


async def test_a_jump_to_another_flow_comes_back_after_the_jump(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node("start", say="main", next=[{"flow": "sub/ask.flow.json"}, {"node": "after"}]),
                node("after", say="back in main with {{temp.answer}}", receive=[]),
            ),
            "sub/ask.flow.json": flow(
                node(
                    "q",
                    say="question?",
                    receive=[set_var("temp", "answer", "{{event.text}}")],
                    next=[{"node": "#"}],
                ),
            ),
        }
    )
    assert await engine.process("b", "u1", text="hi") == ["main", "question?"]
    assert (await temp_memory(engine))[POSITION_KEY] == {
        "flow": "sub/ask.flow.json",
        "node": "q",
        "stack": [{"flow": "main.flow.json", "node": "start", "resume": 1}],
    }
    assert await engine.process("b", "u1", text="42") == ["back in main with 42"]


async def test_a_loop_between_flows_does_not_nest_whatever_the_messages(
    make_engine: MakeEngine,
) -> None:
    """A menu whose topic goes back to it: the stack stays one frame deep."""
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node("menu", say="menu?", receive=[], next=[{"flow": "topic.flow.json"}]),
            ),
            "topic.flow.json": flow(
                node(
                    "answer",
                    say="topic?",
                    receive=[],
                    next=[
                        {"condition": 'event.text == "again"', "flow": "topic.flow.json"},
                        {"condition": 'event.text == "back"', "node": "#"},
                        {"flow": "main.flow.json"},
                    ],
                ),
            ),
        },
        config={"limits": {"maxValueBytes": 4_096}},
    )
    in_topic = {
        "flow": "topic.flow.json",
        "node": "answer",
        "stack": [{"flow": "main.flow.json", "node": "menu", "resume": 1}],
    }
    assert await engine.process("b", "u1", text="hi") == ["menu?"]
    for _ in range(20):  # each pass nested one frame deeper, until turns failed
        assert await engine.process("b", "u1", text="pick") == ["topic?"]
        assert (await temp_memory(engine))[POSITION_KEY] == in_topic
        assert await engine.process("b", "u1", text="menu") == ["menu?"]
        assert (await temp_memory(engine))[POSITION_KEY]["stack"] == []
    assert await engine.process("b", "u1", text="pick") == ["topic?"]
    assert await engine.process("b", "u1", text="again") == ["topic?"]  # itself: no frame
    assert (await temp_memory(engine))[POSITION_KEY] == in_topic
    assert await engine.process("b", "u1", text="back") == []  # "#" still returns to main
    back = {"flow": "main.flow.json", "node": "menu", "stack": []}
    assert (await temp_memory(engine))[POSITION_KEY] == back  # no transition left: it waits


async def test_end_inside_a_called_flow_ends_the_whole_dialog(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node("start", say="main", next=[{"flow": "sub.flow.json"}, {"node": "after"}]),
                node("after", say="never"),
            ),
            "sub.flow.json": flow(node("q", say="sub", next=[{"node": "END"}])),
        }
    )
    assert await engine.process("b", "u1", text="hi") == ["main", "sub"]
    assert await temp_memory(engine) == {}


async def test_conversation_end_runs_once_when_a_flow_ends(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "a",
                    enter=[set_var("temp", "t", "x"), set_var("user", "name", "Ada")],
                    say="main",
                    next=[{"node": "END"}],
                ),
            ),
            "conversation_end.flow.json": flow(
                node("bye", say="bye {{user.name}}, temp is [{{temp.t}}]", next=[{"node": "END"}])
            ),
        }
    )
    assert await engine.process("b", "u1", text="hi") == ["main", "bye Ada, temp is []"]
    assert await engine.process("b", "u1", text="hi") == ["main", "bye Ada, temp is []"]


async def test_an_action_error_persists_nothing_and_sends_the_error_reply(
    make_engine: MakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "ask",
                    say="name?",
                    receive=[set_var("user", "name", "{{event.text}}"), {"action": "boom"}],
                    next=[{"node": "ok"}],
                ),
                node("ok", say="saved"),
            )
        },
        actions={
            "boom.py": """
                from botmemory.dialog import action

                @action("boom")
                def boom(event, state, args, kvs):
                    state.session["half"] = "done"
                    if event.text == "Bad":
                        raise RuntimeError("disk on fire")
            """
        },
    )
    await engine.process("b", "u1", text="hi")
    with caplog.at_level(logging.ERROR, logger="botmemory.dialog"):
        assert await engine.process("b", "u1", text="Bad") == [DEFAULT_ERROR_REPLY]
    line = next(r.getMessage() for r in caplog.records if r.name == "botmemory.dialog")
    assert "bot=b flow=main.flow.json node=ask" in line
    assert "disk on fire" in line
    assert "name" not in await user_memory(engine)
    async with engine.memory.turn("b", "u1") as state:
        assert "half" not in state.session
    # still waiting at the same node: the next message runs its onReceive again
    assert await engine.process("b", "u1", text="Ada") == ["saved"]
    assert (await user_memory(engine))["name"] == "Ada"


async def test_the_error_reply_can_be_configured(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "n",
                    enter=[
                        {
                            "action": "base.setVariable",
                            "args": {"type": "{{event.text}}", "name": "x", "value": 1},
                        }
                    ],
                )
            )
        },
        error_reply="Oops.",
    )
    assert await engine.process("b", "u1", text="nowhere") == ["Oops."]
    assert await engine.process("b", "u1", text="user") == []


async def test_a_loop_of_transitions_stops_with_a_clear_error(
    make_engine: MakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node("ping", enter=[set_var("user", "x", 1)], next=[{"node": "pong"}]),
                node("pong", next=[{"node": "ping"}]),
            )
        },
        max_steps=20,
    )
    with caplog.at_level(logging.ERROR, logger="botmemory.dialog"):
        assert await engine.process("b", "u1", text="hi") == [DEFAULT_ERROR_REPLY]
    message = next(r.getMessage() for r in caplog.records if r.name == "botmemory.dialog")
    assert "TransitionLoopError" in message
    assert "20 nodes without waiting" in message
    assert "main.flow.json/ping -> main.flow.json/pong" in message
    assert await user_memory(engine) == {}


async def test_turns_of_one_session_run_one_after_the_other(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "n",
                    enter=[{"action": "slowCount"}],
                    say="{{session.n}}",
                    receive=[],
                    next=[{"node": "n"}],
                )
            )
        },
        actions={
            "slow.py": """
                import asyncio
                from botmemory.dialog import action

                @action("slowCount")
                async def slow_count(event, state, args, kvs):
                    n = state.session.get("n", 0)
                    await asyncio.sleep(0)
                    state.session["n"] = n + 1
            """
        },
    )
    results = await asyncio.gather(*(engine.process("b", "u1", text=str(i)) for i in range(5)))
    assert sorted(r[0] for r in results) == ["1", "2", "3", "4", "5"]


async def test_a_payload_message_without_text(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node("n", next=[{"condition": 'event.type == "payload"', "node": "p"}]),
                node("p", say="chose {{event.payload.choice}}"),
            )
        }
    )
    assert await engine.process("b", "u1", payload={"choice": "red"}) == ["chose red"]
    async with engine.memory.turn("b", "u1") as state:
        assert state.session["lastMessages"][-1]["type"] == "payload"  # type: ignore[index,call-overload]


async def test_bad_calls_raise_instead_of_replying(make_engine: MakeEngine) -> None:
    engine = await make_engine(ASK_NAME)
    with pytest.raises(UnknownBotError, match="'nobot'"):
        await engine.process("nobot", "u1", text="hi")
    with pytest.raises(InvalidIdError):
        await engine.process("b", "", text="hi")
    with pytest.raises(InvalidValueError, match="text or a payload"):
        await engine.process("b", "u1")


async def test_a_position_the_flows_no_longer_have_starts_over(make_engine: MakeEngine) -> None:
    engine = await make_engine(ASK_NAME)
    async with engine.memory.turn("b", "u1") as state:
        state.temp[POSITION_KEY] = {"flow": "gone.flow.json", "node": "x", "stack": []}
        state.temp["stale"] = True
    assert await engine.process("b", "u1", text="hi") == ["What's your name?"]
    assert "stale" not in await temp_memory(engine)


async def test_users_and_bots_have_their_own_position(make_engine: MakeEngine) -> None:
    engine = await make_engine(ASK_NAME)
    assert await engine.process("b", "u1", text="hi") == ["What's your name?"]
    assert await engine.process("b", "u2", text="hi") == ["What's your name?"]
    assert await engine.process("b", "u1", text="Ada") == ["Nice to meet you, Ada!"]
    assert await engine.process("b", "u1", text="hi", thread_id="t") == ["What's your name?"]


async def test_error_reply_and_max_steps_come_from_the_bots_config(
    make_engine: MakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    engine = await make_engine(
        {"main.flow.json": flow(node("a", next=[{"node": "b"}]), node("b", next=[{"node": "a"}]))},
        bot_configs={"b": {"dialog": {"errorReply": "Oops, try later.", "maxSteps": 3}}},
    )
    with caplog.at_level(logging.ERROR, logger="botmemory.dialog"):
        assert await engine.process("b", "u1", text="hi") == ["Oops, try later."]
    assert any("went through 3 nodes" in r.getMessage() for r in caplog.records)


async def test_the_message_type_is_the_events_type(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        {"main.flow.json": flow(node("n", say="{{event.type}}", receive=[], next=[{"node": "n"}]))}
    )
    assert await engine.process("b", "u1", text="y", message_type="quick_reply") == ["quick_reply"]
    assert await engine.process("b", "u1", payload=1) == ["payload"]
    async with engine.memory.turn("b", "u1") as state:
        history = state.session["lastMessages"]
    assert [m["type"] for m in history] == ["quick_reply", "payload"]  # type: ignore[index,union-attr]
    with pytest.raises(InvalidValueError, match="message type 'sticker' is not known"):
        await engine.process("b", "u1", text="y", message_type="sticker")


async def test_private_names_inside_a_value_are_never_shown(make_engine: MakeEngine) -> None:
    """Names starting with ``_`` are hidden at every depth: printed whole, counted,
    searched, in a template or a condition."""
    profile = {"_secret": "pw", "ok": 1, "list": [{"_k": 1, "v": 2}]}
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "n",
                    enter=[set_var("user", "p", profile)],
                    say=[
                        "{{user.p}}",
                        "{{#user.p.list}}{{.}}{{/user.p.list}}",
                    ],
                    next=[
                        {
                            "condition": "contains(user.p, '_secret') or len(user.p) != 2",
                            "node": "leak",
                        },
                        {"node": "END"},
                    ],
                ),
                node("leak", say="leaked"),
            )
        }
    )
    replies = await engine.process("b", "u1", text="hi")
    assert replies == ['{"ok": 1, "list": [{"v": 2}]}', '{"v": 2}']
    async with engine.memory.turn("b", "u1") as state:
        assert state.user["p"] == profile  # stored as it was
