"""A bot's own actions: @action in actions/*.py, sync or async, persisted with the turn."""

from __future__ import annotations

from botmemory.dialog import DEFAULT_ERROR_REPLY, ActionError, DialogEngine, action
from tests.dialog.conftest import MakeEngine, flow, node

CUSTOM = """
    import asyncio
    from botmemory.dialog import action

    @action("shop.add")
    async def add(event, state, args, kvs):
        await asyncio.sleep(0)
        cart = state.temp.get("cart", [])
        cart.append(args["item"])
        state.temp["cart"] = cart
        await kvs.incr("stats/added")

    @action("shop.checkout")
    def checkout(event, state, args, kvs):
        state.user["orders"] = state.user.get("orders", 0) + 1
        state.user["last"] = {"items": state.temp["cart"], "said": event.text, "n": args["n"]}

    def helper():  # not an action: not decorated
        raise AssertionError
"""


async def test_custom_actions_receive_event_state_args_and_kvs(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node(
                    "add",
                    receive=[{"action": "shop.add", "args": {"item": "{{event.text}}"}}],
                    next=[{"condition": 'event.text == "done"', "node": "pay"}],
                ),
                node(
                    "pay",
                    enter=[{"action": "shop.checkout", "args": {"n": 2}}],
                    say="{{user.orders}} order(s)",
                ),
            )
        },
        actions={"shop.py": CUSTOM},
    )
    await engine.process("b", "u1", text="start")
    await engine.process("b", "u1", text="apple")
    await engine.process("b", "u1", text="pear")
    assert await engine.process("b", "u1", text="done") == ["1 order(s)"]
    async with engine.memory.turn("b", "u1") as state:
        assert state.user["last"] == {"items": ["apple", "pear", "done"], "said": "done", "n": 2}
    assert await engine.memory.kvs.for_bot("b").get("stats/added") == 3


async def test_the_decorator_marks_and_returns_the_function() -> None:
    def f(*args: object) -> None:
        return None

    assert action("x.y")(f) is f


async def test_action_errors_name_the_action(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        {"main.flow.json": flow(node("n", enter=[{"action": "shop.checkout", "args": {"n": 1}}]))},
        actions={"shop.py": CUSTOM},
    )
    bot = engine.bot("b")
    errors: list[BaseException] = []
    real = engine.log_failure

    def capture(what: str, event: object, run: object, exc: BaseException) -> None:
        errors.append(exc)
        real(what, event, run, exc)  # type: ignore[arg-type]

    engine.log_failure = capture  # type: ignore[method-assign]
    await engine.process("b", "u1", text="x")
    assert isinstance(errors[0], ActionError)
    assert "onEnter[0]: action 'shop.checkout' failed: KeyError" in str(errors[0])
    assert (errors[0].bot_id, errors[0].flow, errors[0].node) == ("b", "main.flow.json", "n")
    assert bot.actions["shop.checkout"].source == "bots/b/actions/shop.py"


async def test_an_action_calling_sys_exit_fails_its_turn_only(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        {"main.flow.json": flow(node("n", enter=[{"action": "t.leave", "args": {}}]))},
        actions={
            "t.py": "import sys\n\nfrom botmemory.dialog import action\n\n\n"
            "@action('t.leave')\ndef leave(event, state, args, kvs):\n"
            "    state.user['touched'] = True\n    sys.exit(3)\n"
        },
    )
    assert await engine.process("b", "u1", text="x") == [DEFAULT_ERROR_REPLY]
    async with engine.memory.turn("b", "u1") as state:
        assert "touched" not in state.user


async def test_two_bots_with_same_file_names_keep_their_own_actions(
    make_engine: MakeEngine,
) -> None:
    code = """
        from botmemory.dialog import action

        @action("who")
        def who(event, state, args, kvs):
            state.temp["who"] = "{}"
    """
    one: DialogEngine = await make_engine(
        {"main.flow.json": flow(node("n", enter=[{"action": "who"}], say="{{temp.who}}"))},
        actions={"a.py": code.format("first")},
    )
    two: DialogEngine = await make_engine(
        {"main.flow.json": flow(node("n", enter=[{"action": "who"}], say="{{temp.who}}"))},
        actions={"a.py": code.format("second")},
    )
    assert await one.process("b", "u1", text="x") == ["first"]
    assert await two.process("b", "u1", text="x") == ["second"]
