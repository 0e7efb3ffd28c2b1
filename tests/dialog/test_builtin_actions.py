"""The builtin actions: variables in the four memories and storage in the key-value store."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from botmemory import ConfigError, ManualClock
from botmemory.dialog import DEFAULT_ERROR_REPLY, DialogEngine
from tests.conftest import DAY
from tests.dialog.conftest import MakeEngine, flow, node, set_var


def run_actions(*instructions: dict[str, Any], say: str = "") -> dict[str, Any]:
    """A bot whose every message runs ``instructions`` (args may use {{event.text}})."""
    return {
        "main.flow.json": flow(
            node("n", enter=list(instructions), say=say or None, receive=[], next=[{"node": "n"}])
        )
    }


def action(action_name: str, /, **args: Any) -> dict[str, Any]:
    return {"action": action_name, "args": args}


async def memories(engine: DialogEngine, user: str = "u1") -> dict[str, dict[str, object]]:
    async with engine.memory.turn("b", user) as state:
        return {
            "user": dict(state.user),
            "session": {k: v for k, v in state.session.items() if k != "lastMessages"},
            "temp": {k: v for k, v in state.temp.items() if not k.startswith("_")},
            "bot": dict(state.bot),
        }


@pytest.mark.parametrize("scope", ["user", "session", "temp", "bot"])
async def test_set_variable_stores_what_the_user_typed_in_each_memory(
    make_engine: MakeEngine, scope: str
) -> None:
    engine = await make_engine(run_actions(set_var(scope, "said", "{{event.text}}")))
    await engine.process("b", "u1", text="hello there")
    assert (await memories(engine))[scope] == {"said": "hello there"}


@pytest.mark.parametrize("empty", ["", "null", None, "{{temp.missing}}"])
async def test_set_variable_with_an_empty_value_deletes(
    make_engine: MakeEngine, empty: object
) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "n",
                    enter=[set_var("user", "x", "{{event.text}}"), set_var("user", "y", 1)],
                    receive=[set_var("user", "x", empty)],
                )
            )
        }
    )
    await engine.process("b", "u1", text="kept")
    assert (await memories(engine))["user"] == {"x": "kept", "y": 1}
    await engine.process("b", "u1", text="again")
    assert (await memories(engine))["user"] == {"y": 1}


async def test_a_single_tag_keeps_the_type_and_a_dotted_name_reaches_inside(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        run_actions(
            set_var("temp", "n", 3),
            set_var("user", "count", "{{temp.n}}"),
            set_var("user", "profile.city", "Paris"),
            set_var("user", "profile.zip", "{{temp.n}}"),
            set_var("user", "text", "n={{temp.n}}"),
        )
    )
    await engine.process("b", "u1", text="x")
    user = (await memories(engine))["user"]
    assert user == {"count": 3, "profile": {"city": "Paris", "zip": 3}, "text": "n=3"}


async def test_remove_variable(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        run_actions(
            set_var("session", "a", 1),
            set_var("session", "b", {"c": 1, "d": 2}),
            action("base.removeVariable", type="session", name="a"),
            action("base.removeVariable", type="session", name="b.c"),
            action("base.removeVariable", type="session", name="never.there"),
        )
    )
    await engine.process("b", "u1", text="x")
    assert (await memories(engine))["session"] == {"b": {"d": 2}}


async def test_a_bad_memory_type_at_run_time_is_an_error(make_engine: MakeEngine) -> None:
    engine = await make_engine(run_actions(set_var("{{event.text}}", "x", 1)))
    assert await engine.process("b", "u1", text="galaxy") == [DEFAULT_ERROR_REPLY]


async def test_a_failed_turn_keeps_none_of_its_storage_writes(make_engine: MakeEngine) -> None:
    """The storage actions are part of the turn (docs/flows.md, Failures)."""
    engine = await make_engine(
        run_actions(
            action("builtin.setGlobalVariable", name="color", value="{{event.text}}"),
            action("builtin.setUserVariable", name="color", value="{{event.text}}"),
            action("builtin.incrementNumberOfConversations"),
            set_var("{{event.text}}", "x", 1),  # "galaxy" is no memory type: the turn fails
        )
    )
    assert await engine.process("b", "u1", text="galaxy") == [DEFAULT_ERROR_REPLY]
    assert await engine.memory.kvs.for_bot("b").keys() == []
    await engine.process("b", "u1", text="user")
    assert len(await engine.memory.kvs.for_bot("b").keys()) == 3


STORAGE = [
    ("User", "storage/users/u1/color"),
    ("Conversation", "storage/conversation/b::api::u1/color"),
    ("Global", "storage/global/color"),
]


@pytest.mark.parametrize(("kind", "key"), STORAGE)
async def test_storage_actions_use_their_key_in_the_bots_store(
    make_engine: MakeEngine, kind: str, key: str
) -> None:
    engine = await make_engine(
        run_actions(
            action(f"builtin.set{kind}Variable", name="color", value="{{event.text}}"),
            action(f"builtin.get{kind}Variable", name="color", output="got"),
            say="got {{temp.got}}",
        )
    )
    assert await engine.process("b", "u1", text="blue") == ["got blue"]
    kvs = engine.memory.kvs.for_bot("b")
    assert await kvs.keys() == [key]
    assert await kvs.get(key) == "blue"
    assert await engine.memory.kvs.for_global().keys() == []
    assert await engine.memory.kvs.for_bot("other").keys() == []


async def test_sessions_whose_ids_read_alike_never_share_conversation_variables(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        run_actions(
            action("builtin.getConversationVariable", name="color", output="got"),
            action("builtin.setConversationVariable", name="color", value="{{event.text}}"),
            say="had {{temp.got}}",
        )
    )
    await engine.process("b", "u1", text="blue", thread_id="t1")  # session b::api::u1::t1
    assert await engine.process("b", "u1::t1", text="red") == ["had "]  # b::api::u1::t1 too
    assert await engine.process("b", "u1", text="green", thread_id="t1") == ["had blue"]
    assert await engine.memory.kvs.for_bot("b").keys() == [
        "storage/conversation/b::api::u1%3A%3At1/color",
        "storage/conversation/b::api::u1::t1/color",
    ]


@pytest.mark.parametrize(("kind", "key"), STORAGE)
async def test_storage_setters_take_an_expiry(
    make_engine: MakeEngine, clock: ManualClock, kind: str, key: str
) -> None:
    engine = await make_engine(
        run_actions(
            action(f"builtin.set{kind}Variable", name="color", value="red", expiry="1h"),
            action(f"builtin.set{kind}Variable", name="forever", value="yes", expiry="never"),
        )
    )
    await engine.process("b", "u1", text="x")
    kvs = engine.memory.kvs.for_bot("b")
    clock.advance(timedelta(seconds=3600 - 0.001))
    assert await kvs.get(key) == "red"  # an hour, not 3.6 seconds
    clock.advance(timedelta(seconds=0.001))
    assert await kvs.get(key) is None
    assert await kvs.get(key.replace("color", "forever")) == "yes"


@pytest.mark.parametrize("expiry", ["", 5, "5", 3600, "soon", "0s", "0.0005ms", "0.0000001s"])
async def test_a_storage_expiry_without_a_unit_or_under_1ms_does_not_load(
    make_engine: MakeEngine, expiry: object
) -> None:
    with pytest.raises(ConfigError, match="expiry"):
        await make_engine(
            run_actions(action("builtin.setUserVariable", name="c", value="v", expiry=expiry))
        )


async def test_a_templated_expiry_without_a_unit_fails_the_turn(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        run_actions(action("builtin.setUserVariable", name="c", value="v", expiry="{{event.text}}"))
    )
    assert await engine.process("b", "u1", text="5") == [DEFAULT_ERROR_REPLY]
    assert await engine.process("b", "u1", text="0.0005ms") == [DEFAULT_ERROR_REPLY]
    assert await engine.memory.kvs.for_bot("b").keys() == []
    await engine.process("b", "u1", text="5m")
    assert await engine.memory.kvs.for_bot("b").keys() == ["storage/users/u1/c"]


@pytest.mark.parametrize(
    "setter",
    [
        action("builtin.setUserVariable", name="c", value="v", output=""),
        action("builtin.setGlobalVariable", name="c", value="v", output=""),
        action("builtin.incrementNumberOfConversations", output=""),
    ],
)
async def test_an_optional_output_left_empty_writes_no_temp_variable(
    make_engine: MakeEngine, setter: dict[str, Any]
) -> None:
    # the Botpress editor saves an optional field left empty as "": Botpress then
    # writes no output (``if (output)``), and so does botmemory
    engine = await make_engine(run_actions(setter))
    await engine.process("b", "u1", text="x")
    assert (await memories(engine))["temp"] == {}
    assert len(await engine.memory.kvs.for_bot("b").keys()) == 1


@pytest.mark.parametrize(
    "instruction",
    [
        action("builtin.getUserVariable", name="c", output=""),  # required: names nothing
        action("builtin.getNumberOfConversations", output=""),
        action("builtin.setUserVariable", name="c", value="v", output=" "),
        action("builtin.setUserVariable", name="c", value="v", output="{{temp.x}}"),
    ],
)
async def test_an_output_that_names_no_variable_does_not_load(
    make_engine: MakeEngine, instruction: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match="output"):
        await make_engine(run_actions(instruction))


async def test_getting_a_missing_storage_variable_clears_the_output(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        run_actions(
            set_var("temp", "got", "old"),
            action("builtin.getUserVariable", name="nothing", output="got"),
            say="[{{temp.got}}]",
        )
    )
    assert await engine.process("b", "u1", text="x") == ["[]"]


async def test_reset_global_variable_stays_inside_this_bot(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        run_actions(action("builtin.resetGlobalVariable", name="{{event.text}}"))
    )
    kvs, other = engine.memory.kvs.for_bot("b"), engine.memory.kvs.for_bot("other")
    await kvs.set("storage/global/visits", 3)
    await other.set("storage/global/visits", 5)
    await engine.memory.kvs.for_global().set("storage/global/visits", 7)
    await engine.process("b", "u1", text="visits")
    assert await kvs.get("storage/global/visits") is None
    assert await other.get("storage/global/visits") == 5
    assert await engine.memory.kvs.for_global().get("storage/global/visits") == 7


async def test_reset_session_empties_session_and_temp_but_keeps_last_messages(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "fill",
                    enter=[
                        set_var("session", "s", 1),
                        set_var("temp", "t", 1),
                        set_var("user", "u", 1),
                    ],
                    receive=[],
                    next=[{"node": "reset"}],
                ),
                node(
                    "reset",
                    enter=[action("builtin.resetSession")],
                    say="[{{session.s}}{{temp.t}}]",
                    receive=[],
                ),
            )
        }
    )
    await engine.process("b", "u1", text="one")
    assert await engine.process("b", "u1", text="two") == ["[]"]
    async with engine.memory.turn("b", "u1") as state:
        assert [m["text"] for m in state.session["lastMessages"]] == ["one", "two"]  # type: ignore[index,union-attr]
        assert set(state.session) == {"lastMessages"}
        assert state.user["u"] == 1
    assert await engine.process("b", "u1", text="three") == []  # still in the flow


async def test_number_of_conversations_counts_atomically(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "n",
                    enter=[
                        action("builtin.incrementNumberOfConversations", output="n"),
                        action("builtin.getNumberOfConversations", output="m"),
                    ],
                    say="{{temp.n}} {{temp.m}}",
                )
            )
        }
    )
    assert await engine.process("b", "u1", text="x") == ["1 1"]
    # many sessions of one user at once (threads), each incrementing
    await asyncio.gather(
        *(engine.process("b", "u1", text="x", thread_id=f"t{i}") for i in range(10))
    )
    assert await engine.process("b", "u1", text="x") == ["12 12"]
    assert await engine.memory.kvs.for_bot("b").get("storage/users/u1/numberOfConversations") == 12


async def test_get_number_of_conversations_is_zero_at_first(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        run_actions(action("builtin.getNumberOfConversations", output="m"), say="{{temp.m}}")
    )
    assert await engine.process("b", "u1", text="x") == ["0"]


async def test_storage_writes_survive_a_day_when_asked_and_user_memory_too(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    engine = await make_engine(
        run_actions(action("builtin.setUserVariable", name="seen", value="{{event.text}}"))
    )
    await engine.process("b", "u1", text="yes")
    clock.advance(timedelta(seconds=400 * DAY))
    assert await engine.memory.kvs.for_bot("b").get("storage/users/u1/seen") == "yes"


async def test_values_taken_from_memory_are_copies_without_reserved_names(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        run_actions(
            set_var("temp", "cart", ["tea"]),
            set_var("user", "saved", "{{temp}}"),
            set_var("user", "cart", "{{temp.cart}}"),
            set_var("temp", "cart[1]", "cake"),
        )
    )
    await engine.process("b", "u1", text="one")
    await engine.process("b", "u1", text="two")  # temp now holds the dialog position too
    found = await memories(engine)
    assert found["user"] == {"saved": {"cart": ["tea"]}, "cart": ["tea"]}
    assert found["temp"] == {"cart": ["tea", "cake"]}


async def test_increment_variable_counts_every_users_messages_at_once(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        run_actions(
            action("base.incrementVariable", type="bot", name="messages"),
            action("base.incrementVariable", type="user", name="score", by=2.5),
        )
    )
    users = [f"u{i}" for i in range(20)]
    await asyncio.gather(*(engine.process("b", user, text="hi") for user in users))
    await engine.process("b", "u1", text="again")
    state = await memories(engine)
    assert state["bot"]["messages"] == 21
    assert state["user"]["score"] == 5.0
    assert engine.memory.stats.conflicts == 0


@pytest.mark.parametrize(
    ("args", "problem"),
    [({"by": "two"}, "by 'two' must be a number"), ({"by": True}, "by True must be a number")],
)
async def test_increment_variable_needs_a_number(
    make_engine: MakeEngine, args: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        await make_engine(
            run_actions(action("base.incrementVariable", type="bot", name="n", **args))
        )


@pytest.mark.parametrize(
    ("name", "args", "problem"),
    [
        ("base.incrementVariable", {"type": "user", "name": "stats.visits"}, "not a path"),
        ("base.incrementVariable", {"type": "user", "name": "tags[0]"}, "not a path"),
        ("base.setVariable", {"type": "user", "name": "a..b", "value": 1}, "'a..b' is invalid"),
        ("base.setVariable", {"type": "user", "name": "tags[x]", "value": 1}, "is invalid"),
        ("base.removeVariable", {"type": "user", "name": "a."}, "'a.' is invalid"),
        ("builtin.setGlobalVariable", {"name": "a\u0001b", "value": 1}, "control character"),
        ("builtin.getUserVariable", {"name": "x" * 1100, "output": "o"}, "1 to 1024"),
        ("builtin.resetGlobalVariable", {"name": "a\u0001b"}, "control character"),
    ],
)
async def test_a_literal_name_every_run_would_refuse_does_not_load(
    make_engine: MakeEngine, name: str, args: dict[str, Any], problem: str
) -> None:
    """What the action refuses on every run, loading refuses once, with the place."""
    with pytest.raises(ConfigError, match=problem):
        await make_engine(run_actions(action(name, **args)))


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("base.incrementVariable", {"type": "user", "name": "visits"}),
        ("base.setVariable", {"type": "user", "name": "profile.tags[0]", "value": 1}),
        ("base.setVariable", {"type": "user", "name": "{{event.text}}", "value": 1}),
        ("builtin.setGlobalVariable", {"name": "a/b c", "value": 1}),
    ],
)
async def test_names_the_actions_take_still_load(
    make_engine: MakeEngine, name: str, args: dict[str, Any]
) -> None:
    await make_engine(run_actions(action(name, **args)))
