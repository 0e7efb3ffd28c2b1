"""Flows, builtin actions and dialog timeouts against Botpress's own code and tests.

Follows Botpress's ``src/bp/core/services/dialog/engine.test.ts`` (process event,
transition, process timeout; its flows from ``dialog/stubs.ts``), the dialog janitor
(``src/bp/core/services/dialog/janitor.ts``, ``src/bp/core/misc/expiry.ts``), and the
builtin module's actions (``modules/builtin/src/actions/``: ``setVariable``,
``removeVariable``, ``resetSession``, ``set/getUserVariable``,
``set/getConversationVariable``, ``set/get/resetGlobalVariable``,
``increment/getNumberOfConversations``), which have no tests of their own in Botpress.
Where botmemory differs on purpose (docs/flows.md), the test asserts botmemory's
documented behaviour and says why.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from botmemory import ManualClock
from botmemory.dialog import DialogEngine
from tests.dialog.conftest import MakeEngine, Outbox, flow, node, set_var

MINUTE = 60.0


def action(name: str, /, **args: Any) -> dict[str, Any]:
    return {"action": name, "args": args}


def on_every_message(*instructions: dict[str, Any], say: str = "") -> dict[str, Any]:
    """A bot whose every message runs ``instructions`` then says ``say``."""
    return {
        "main.flow.json": flow(
            node("n", enter=list(instructions), say=say or None, receive=[], next=[{"node": "n"}])
        )
    }


async def memories(engine: DialogEngine, user: str = "u1") -> dict[str, dict[str, Any]]:
    """The memories the next message of ``user`` would see, without being one (``peek``)."""
    view = await engine.memory.peek("b", user)
    return {
        scope: {
            name: variable.value
            for name, variable in variables.items()
            if not name.startswith("_") and name != "lastMessages"
        }
        for scope, variables in view.scopes.items()
    }


# --- engine.test.ts: process event and transition ------------------------------------


def stub_flows() -> dict[str, Any]:
    """Botpress's ``flowsStub``: main asks a name once and stores it with setUserVariable."""
    return {
        "main.flow.json": flow(
            node(
                "entry",
                enter=[action("builtin.getUserVariable", name="nickname", output="r")],
                next=[{"condition": "temp.r != null", "node": "welcome"}, {"node": "ask-name"}],
            ),
            node(
                "ask-name",
                say="What's your name?",
                receive=[
                    action(
                        "builtin.setUserVariable",
                        name="nickname",
                        value="{{event.text}}",
                        expiry="never",
                    ),
                    action("builtin.getUserVariable", name="nickname", output="r"),
                ],
                next=[{"node": "welcome"}],
            ),
            node("welcome", say="Hi {{temp.r}}", next=[{"flow": "other.flow.json"}]),
        ),
        "other.flow.json": flow(
            node("entry", say="in other", receive=[], next=[{"node": "#"}]),
        ),
    }


async def test_a_new_session_starts_at_the_start_node_of_main(make_engine: MakeEngine) -> None:
    # 'create a session if it doesnt exists': context main.flow.json / entry.
    engine = await make_engine(stub_flows())
    assert await engine.process("b", "u1", text="hello") == ["What's your name?"]
    assert await engine.process("b", "u1", text="Bob") == ["Hi Bob", "in other"]
    assert (await memories(engine))["temp"] == {"r": "Bob"}


async def test_a_flow_transition_enters_the_flow_at_its_start_node_and_hash_comes_back(
    make_engine: MakeEngine,
) -> None:
    # 'transition to the start node of the flow' and 'transition to the previous flow
    # when exiting a subflow': '#' returns to the calling flow.
    engine = await make_engine(stub_flows())
    await engine.process("b", "u1", text="hello")
    assert await engine.process("b", "u1", text="Bob") == ["Hi Bob", "in other"]
    # back in main at 'welcome', which has no transition left after the jump: END
    assert await engine.process("b", "u1", text="again") == []
    # the stored nickname skips the question in the next dialog
    assert await engine.process("b", "u1", text="hello") == ["Hi Bob", "in other"]


async def test_end_discards_the_dialog_but_keeps_session_memory(
    make_engine: MakeEngine,
) -> None:
    # Botpress's '"END" transition deletes the session' deletes the dialog session (its
    # context). botmemory's END discards temp memory and the position and keeps session
    # memory until the session times out (docs/flows.md, "How a turn runs", 6).
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "entry",
                    enter=[set_var("session", "s", 1), set_var("temp", "t", 1)],
                    say="start",
                    receive=[],
                    next=[{"node": "END"}],
                )
            )
        }
    )
    assert await engine.process("b", "u1", text="x") == ["start"]
    await engine.process("b", "u1", text="y")
    assert (await memories(engine))["session"] == {"s": 1}
    assert (await memories(engine))["temp"] == {}
    assert await engine.process("b", "u1", text="z") == ["start"]  # main starts again


async def test_a_transition_to_a_node_of_the_current_flow(make_engine: MakeEngine) -> None:
    # 'transition to the target node of the current flow'
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node("entry", receive=[], next=[{"node": "welcome"}]),
                node("welcome", say="welcome", receive=[]),
            )
        }
    )
    assert await engine.process("b", "u1", text="x") == []
    assert await engine.process("b", "u1", text="y") == ["welcome"]


# --- engine.test.ts: process timeout, and the dialog janitor --------------------------


def waiting(**extra: Any) -> dict[str, Any]:
    return node("entry", enter=[set_var("temp", "t", 1)], say="waiting", receive=[], **extra)


def target(name: str) -> dict[str, Any]:
    return node(name, say=f"timeout at {name}")


TIMEOUT_CASES = {
    "timeout node in the current flow": ({"main.flow.json": flow(waiting(), target("timeout"))},),
    "timeout property in the current flow": (
        {"main.flow.json": flow(waiting(), target("late"), timeoutNode="late")},
    ),
    "timeout.flow.json": (
        {"main.flow.json": flow(waiting()), "timeout.flow.json": flow(target("entry"))},
    ),
}
EXPECTED_TARGET = {
    "timeout node in the current flow": "timeout",
    "timeout property in the current flow": "late",
    "timeout.flow.json": "entry",
}


@pytest.mark.parametrize("case", list(TIMEOUT_CASES))
async def test_a_dialog_timeout_goes_to_the_timeout_target(
    make_engine: MakeEngine, clock: ManualClock, case: str
) -> None:
    (flows,) = TIMEOUT_CASES[case]
    engine = await make_engine(flows)
    outbox = Outbox()
    engine.on_timeout_replies = outbox
    assert await engine.process("b", "u1", text="hi") == ["waiting"]
    clock.advance(timedelta(seconds=5 * MINUTE))
    await engine.memory.janitor.run_once()
    assert outbox.replies == [f"timeout at {EXPECTED_TARGET[case]}"]
    assert (await memories(engine))["temp"] == {}


async def test_without_any_timeout_target_the_dialog_is_still_dropped(
    make_engine: MakeEngine, clock: ManualClock
) -> None:
    # Botpress's processTimeout 'throws when no timeout flows or nodes were found'; its
    # janitor catches that and deletes the session anyway. botmemory has nothing to
    # throw about: it discards temp and the position, silently (docs/flows.md, Timeouts).
    engine = await make_engine({"main.flow.json": flow(waiting())})
    outbox = Outbox()
    engine.on_timeout_replies = outbox
    await engine.process("b", "u1", text="hi")
    clock.advance(timedelta(seconds=5 * MINUTE))
    await engine.memory.janitor.run_once()
    assert outbox.sent == []
    assert (await memories(engine))["temp"] == {}
    assert await engine.process("b", "u1", text="hi") == ["waiting"]  # main again


def dialog_settings(name: str, global_value: str | None, bot_value: str | None) -> Any:
    """``make_engine``'s ``config`` and ``bot_configs`` setting ``dialog.<name>`` globally
    and for bot ``b``, each only when given."""
    return {
        "config": {"dialog": {name: global_value}} if global_value else None,
        "bot_configs": {"b": {"dialog": {name: bot_value}}} if bot_value else None,
    }


@pytest.mark.parametrize(
    ("global_interval", "bot_interval", "minutes"),
    [(None, None, 5), ("2m", None, 2), ("2m", "10m", 10)],
    ids=["default 5m", "global", "the bot's wins"],
)
async def test_a_dialog_times_out_exactly_after_its_timeout_interval(
    make_engine: MakeEngine,
    clock: ManualClock,
    global_interval: str | None,
    bot_interval: str | None,
    minutes: float,
) -> None:
    # The dialog janitor: a session untouched for dialog.timeoutInterval (the bot's
    # setting, else the global one) is stale; a message before keeps it alive.
    engine = await make_engine(
        {"main.flow.json": flow(waiting(), target("timeout"))},
        **dialog_settings("timeoutInterval", global_interval, bot_interval),
    )
    outbox = Outbox()
    engine.on_timeout_replies = outbox
    await engine.process("b", "u1", text="hi")
    clock.advance(timedelta(seconds=minutes * MINUTE - 0.001))
    await engine.memory.janitor.run_once()
    assert outbox.sent == []
    assert (await memories(engine))["temp"] == {"t": 1}
    clock.advance(timedelta(seconds=0.001))
    await engine.memory.janitor.run_once()
    assert outbox.replies == ["timeout at timeout"]


@pytest.mark.parametrize(
    ("global_interval", "bot_interval", "minutes"),
    [(None, None, 30), ("20m", None, 20), ("20m", "45m", 45)],
    ids=["default 30m", "global", "the bot's wins"],
)
async def test_session_memory_lasts_the_session_timeout_interval(
    make_engine: MakeEngine,
    clock: ManualClock,
    global_interval: str | None,
    bot_interval: str | None,
    minutes: float,
) -> None:
    # createExpiry: dialog.sessionTimeoutInterval of the bot, else the global one.
    engine = await make_engine(
        on_every_message(set_var("session", "topic", "{{event.text}}")),
        **dialog_settings("sessionTimeoutInterval", global_interval, bot_interval),
    )
    await engine.process("b", "u1", text="billing")
    clock.advance(timedelta(seconds=minutes * MINUTE - 0.001))
    assert (await memories(engine))["session"] == {"topic": "billing"}
    clock.advance(timedelta(seconds=0.001))
    assert (await memories(engine))["session"] == {}
    async with engine.memory.turn("b", "u1") as state:
        assert state.is_new_session


# --- setVariable.js and removeVariable.js --------------------------------------------


@pytest.mark.parametrize("scope", ["user", "session", "temp"])
@pytest.mark.parametrize("empty", ["null", "", None])
async def test_set_variable_with_null_or_nothing_erases_it(
    make_engine: MakeEngine, scope: str, empty: object
) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "n",
                    enter=[set_var(scope, "x", "kept?")],
                    receive=[set_var(scope, "x", empty)],
                    next=[{"node": "done"}],
                ),
                node("done", say="[{{" + scope + ".x}}]", receive=[]),
            )
        }
    )
    await engine.process("b", "u1", text="a")
    assert await engine.process("b", "u1", text="b") == ["[]"]
    assert "x" not in (await memories(engine))[scope]


@pytest.mark.parametrize("scope", ["user", "session", "temp", "bot"])
async def test_set_variable_stores_the_value_in_the_memory_type(
    make_engine: MakeEngine, scope: str
) -> None:
    engine = await make_engine(on_every_message(set_var(scope, "color", "{{event.text}}")))
    await engine.process("b", "u1", text="blue")
    assert (await memories(engine))[scope] == {"color": "blue"}


async def test_bot_variables_are_shared_by_every_user_of_the_bot_only(
    make_engine: MakeEngine,
) -> None:
    # Botpress keeps them in the bot's KVS under 'global'; botmemory in bot memory.
    engine = await make_engine(
        on_every_message(set_var("bot", "last", "{{event.userId}}"), say="{{bot.last}}")
    )
    assert await engine.process("b", "u1", text="x") == ["u1"]
    assert await engine.process("b", "u2", text="x") == ["u2"]
    assert (await memories(engine, "u1"))["bot"] == {"last": "u2"}
    async with engine.memory.turn("other", "u1") as state:
        assert dict(state.bot) == {}


@pytest.mark.parametrize("empty", ["null", ""])
async def test_set_variable_of_the_bot_with_null_erases_it_too(
    make_engine: MakeEngine, empty: str
) -> None:
    # Botpress's setVariable stores 'null' or '' as the bot variable's value (only the
    # other memories erase). botmemory erases in every memory alike (docs/flows.md,
    # Variables: "an empty value, "null" or null deletes the variable").
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "n",
                    enter=[set_var("bot", "x", 1)],
                    receive=[set_var("bot", "x", empty)],
                    next=[{"node": "done"}],
                ),
                node("done", receive=[]),
            )
        }
    )
    await engine.process("b", "u1", text="a")
    await engine.process("b", "u1", text="b")
    assert (await memories(engine))["bot"] == {}


async def test_set_variable_with_a_dotted_name_reaches_inside_an_object(
    make_engine: MakeEngine,
) -> None:
    # Botpress sets event.state[type][name]: 'profile.city' is one flat name there.
    # botmemory reads a dotted name as a path (docs/flows.md, Variables).
    engine = await make_engine(
        on_every_message(
            set_var("user", "profile.city", "{{event.text}}"), say="{{user.profile.city}}"
        )
    )
    assert await engine.process("b", "u1", text="Paris") == ["Paris"]
    assert (await memories(engine))["user"] == {"profile": {"city": "Paris"}}


@pytest.mark.parametrize("scope", ["user", "session", "temp", "bot"])
async def test_remove_variable_erases_it(make_engine: MakeEngine, scope: str) -> None:
    # Botpress's removeVariable of a bot variable stores the string 'null' in its place;
    # botmemory erases it, as in the other memories.
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "n",
                    enter=[set_var(scope, "x", 1), set_var(scope, "y", 2)],
                    receive=[action("base.removeVariable", type=scope, name="x")],
                    next=[{"node": "done"}],
                ),
                node("done", receive=[]),
            )
        }
    )
    await engine.process("b", "u1", text="a")
    await engine.process("b", "u1", text="b")
    assert (await memories(engine))[scope] == {"y": 2}


# --- resetSession.js -----------------------------------------------------------------


async def test_reset_session_clears_temp_and_session_but_not_user_nor_the_dialog(
    make_engine: MakeEngine,
) -> None:
    # Botpress keeps lastMessages (and NLU contexts, which botmemory has none of); the
    # dialog goes on from where it is.
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "fill",
                    enter=[
                        set_var("session", "s", 1),
                        set_var("temp", "t", 1),
                        set_var("user", "u", 1),
                        set_var("bot", "b", 1),
                    ],
                    receive=[action("builtin.resetSession")],
                    next=[{"node": "after"}],
                ),
                node("after", say="after [{{session.s}}{{temp.t}}] {{user.u}}", receive=[]),
            )
        }
    )
    await engine.process("b", "u1", text="one")
    assert await engine.process("b", "u1", text="two") == ["after [] 1"]
    state = await memories(engine)
    assert state["session"] == {}
    assert state["temp"] == {}
    assert state["user"] == {"u": 1}
    assert state["bot"] == {"b": 1}
    async with engine.memory.turn("b", "u1") as turn:
        assert [m["text"] for m in turn.session["lastMessages"]] == ["one", "two"]  # type: ignore[index,union-attr]


# --- the storage actions -------------------------------------------------------------

STORAGE = [
    ("User", "storage/users/u1/nickname"),
    ("Conversation", "storage/conversation/b::api::u1/nickname"),
    ("Global", "storage/global/nickname"),
]


@pytest.mark.parametrize(("kind", "key"), STORAGE)
async def test_a_stored_variable_is_read_back_until_it_expires(
    make_engine: MakeEngine, clock: ManualClock, kind: str, key: str
) -> None:
    # set*Variable: setStorageWithExpiry(key, value, expiry) with "6 hours" style
    # expiries; get*Variable: getStorageWithExpiry into temp[output].
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "n",
                    enter=[action(f"builtin.get{kind}Variable", name="nickname", output="r")],
                    say="[{{temp.r}}]",
                    receive=[
                        action(
                            f"builtin.set{kind}Variable",
                            name="nickname",
                            value="{{event.text}}",
                            expiry="6 hours",
                        )
                    ],
                    next=[{"node": "n"}],
                )
            )
        }
    )
    assert await engine.process("b", "u1", text="hi") == ["[]"]
    assert await engine.process("b", "u1", text="Bob") == ["[Bob]"]
    assert await engine.memory.kvs.for_bot("b").get(key) == "Bob"
    clock.advance(timedelta(hours=6, seconds=-0.001))
    assert await engine.memory.kvs.for_bot("b").get(key) == "Bob"
    clock.advance(timedelta(seconds=0.001))
    assert await engine.memory.kvs.for_bot("b").get(key) is None


@pytest.mark.parametrize(("kind", "key"), STORAGE)
async def test_a_setter_with_output_also_writes_the_value_into_temp(
    make_engine: MakeEngine, kind: str, key: str
) -> None:
    # set{User,Conversation,Global}Variable take an optional 'output', the variable the
    # value is also written to.
    engine = await make_engine(
        on_every_message(
            action(
                f"builtin.set{kind}Variable", name="nickname", value="{{event.text}}", output="r"
            ),
            say="[{{temp.r}}]",
        )
    )
    assert await engine.process("b", "u1", text="Bob") == ["[Bob]"]
    assert await engine.memory.kvs.for_bot("b").get(key) == "Bob"
    assert (await memories(engine))["temp"] == {"r": "Bob"}
    # botmemory's setters erase on "null" (docs/flows.md, Storage): output goes too
    assert await engine.process("b", "u1", text="null") == ["[]"]
    assert await engine.memory.kvs.for_bot("b").keys() == []
    assert (await memories(engine))["temp"] == {}


async def test_user_variables_are_per_user_and_conversation_variables_per_conversation(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        on_every_message(
            action("builtin.getUserVariable", name="seen", output="user"),
            action("builtin.getConversationVariable", name="seen", output="conv"),
            action("builtin.setUserVariable", name="seen", value="{{event.text}}"),
            action("builtin.setConversationVariable", name="seen", value="{{event.text}}"),
            say="{{temp.user}}/{{temp.conv}}",
        )
    )
    assert await engine.process("b", "u1", text="a") == ["/"]
    assert await engine.process("b", "u1", text="b") == ["a/a"]
    assert await engine.process("b", "u1", text="c", thread_id="t2") == ["b/"]
    assert await engine.process("b", "u2", text="d") == ["/"]


async def test_global_variables_are_shared_by_the_users_of_one_bot(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        on_every_message(
            action("builtin.getGlobalVariable", name="last", output="r"),
            action("builtin.setGlobalVariable", name="last", value="{{event.userId}}"),
            say="[{{temp.r}}]",
        )
    )
    assert await engine.process("b", "u1", text="x") == ["[]"]
    assert await engine.process("b", "u2", text="x") == ["[u1]"]
    assert await engine.memory.kvs.for_bot("other").keys() == []


async def test_reset_global_variable_deletes_that_variable_only(make_engine: MakeEngine) -> None:
    # Botpress's resetGlobalVariable deletes every key starting with
    # storage/global/<name>, in every bot: 'cart' takes 'cart2' with it. botmemory
    # deletes storage/global/<name> of this bot (docs/flows.md, Storage).
    engine = await make_engine(on_every_message(action("builtin.resetGlobalVariable", name="cart")))
    kvs = engine.memory.kvs.for_bot("b")
    for key in ("storage/global/cart", "storage/global/cart2", "storage/global/cart/items"):
        await kvs.set(key, 1)
    await engine.process("b", "u1", text="x")
    assert await kvs.keys() == ["storage/global/cart/items", "storage/global/cart2"]


async def test_number_of_conversations_starts_at_one(make_engine: MakeEngine) -> None:
    # Botpress's incrementNumberOfConversations stores 0 on its first call (its
    # 'undefined -> 0' branch) and getNumberOfConversations gives undefined before it.
    # botmemory counts the first conversation as 1 and reads 0 before any
    # (docs/flows.md, "Session and counters").
    engine = await make_engine(
        on_every_message(
            action("builtin.getNumberOfConversations", output="before"),
            action("builtin.incrementNumberOfConversations", output="after"),
            say="{{temp.before}} -> {{temp.after}}",
        )
    )
    assert await engine.process("b", "u1", text="x") == ["0 -> 1"]
    assert await engine.process("b", "u1", text="x") == ["1 -> 2"]
    assert await engine.process("b", "u2", text="x") == ["0 -> 1"]
    kvs = engine.memory.kvs.for_bot("b")
    assert await kvs.get("storage/users/u1/numberOfConversations") == 2
