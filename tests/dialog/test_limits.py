"""What a user sends cannot stop the engine or brick a user: budgets and size limits."""

from __future__ import annotations

import logging
import time

import pytest

from botmemory import InvalidValueError, MessageTooLargeError
from botmemory.dialog import DEFAULT_ERROR_REPLY, DialogEngine
from botmemory.values import dumps
from tests.dialog.conftest import MakeEngine, flow, node

NESTED = (
    "{{#event.payload}}{{#event.payload}}{{#event.payload}}x"
    "{{/event.payload}}{{/event.payload}}{{/event.payload}}"
)


def echo_flow(say: str) -> dict[str, object]:
    return {"main.flow.json": flow(node("n", say=say, receive=[], next=[{"node": "n"}]))}


async def test_nested_sections_over_a_large_list_fail_fast_with_the_error_reply(
    make_engine: MakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    engine = await make_engine(echo_flow(NESTED))
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="botmemory.dialog"):
        replies = await engine.process("b", "u1", payload=list(range(10_000)))
    assert time.monotonic() - started < 0.5
    assert replies == [DEFAULT_ERROR_REPLY]
    line = next(r.getMessage() for r in caplog.records if r.name == "botmemory.dialog")
    assert "bot=b flow=main.flow.json node=n" in line
    assert "over its budget" in line
    assert await engine.process("b", "u1", payload=[1, 2]) == ["x" * 8]


async def test_a_condition_cannot_build_an_unbounded_value(make_engine: MakeEngine) -> None:
    doubling = " + ".join(["event.text"] * 60)
    engine = await make_engine(
        {
            "main.flow.json": flow(
                node("n", receive=[], next=[{"condition": f"len({doubling}) > 0", "node": "ok"}]),
                node("ok", say="ok"),
            )
        }
    )
    assert await engine.process("b", "u1", text="start") == []
    assert await engine.process("b", "u1", text="y" * 60_000) == [DEFAULT_ERROR_REPLY]
    assert await engine.process("b", "u1", text="y") == ["ok"]


async def test_a_message_over_the_limit_is_refused_and_stored_nowhere(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(
        echo_flow("got {{event.text}}"), config={"limits": {"maxMessageBytes": 1000}}
    )
    with pytest.raises(MessageTooLargeError, match=r"1001 bytes.*limits\.maxMessageBytes"):
        await engine.process("b", "u1", text="x" * 1001)
    with pytest.raises(MessageTooLargeError):
        await engine.process("b", "u1", text="é" * 501)  # 1002 bytes of UTF-8
    with pytest.raises(MessageTooLargeError):
        await engine.process("b", "u1", text="x", payload={"p": "x" * 1000})
    async with engine.memory.turn("b", "u1") as state:
        assert state.is_new_session
        assert "lastMessages" not in state.session
    assert await engine.process("b", "u1", text="x" * 1000) == ["got " + "x" * 1000]


async def test_a_text_no_utf8_can_carry_is_refused_and_stored_nowhere(
    make_engine: MakeEngine,
) -> None:
    engine = await make_engine(echo_flow("got {{event.text}}"))
    for lone in ("Bob \ud83d", "\udcff"):  # the second: an undecodable byte, as read by Python
        with pytest.raises(InvalidValueError, match=r"surrogate pair.*nothing was stored"):
            await engine.process("b", "u1", text=lone)
    async with engine.memory.turn("b", "u1") as state:
        assert state.is_new_session
    assert await engine.process("b", "u1", text="Bob \U0001f600") == ["got Bob \U0001f600"]


async def test_the_default_message_limit_is_64_kib(make_engine: MakeEngine) -> None:
    engine = await make_engine(echo_flow("ok"))
    assert await engine.process("b", "u1", text="x" * 65_536) == ["ok"]
    with pytest.raises(MessageTooLargeError):
        await engine.process("b", "u1", text="x" * 65_537)


async def test_large_valid_messages_never_make_later_turns_fail(make_engine: MakeEngine) -> None:
    engine = await make_engine(
        echo_flow("ok"),
        config={"limits": {"maxValueBytes": 10_000, "maxMessageBytes": 8_000}},
        bot_configs={"b": {"session": {"lastMessages": 5}}},
    )
    for text in ["a" * 8_000, "\x00" * 1_300, "é" * 4_000, "😀" * 2_000, "b" * 8_000, "c"] * 2:
        assert await engine.process("b", "u1", text=text) == ["ok"]
    async with engine.memory.turn("b", "u1") as state:
        history = state.session["lastMessages"]
    assert isinstance(history, list)
    assert len(history) == 5
    assert len(dumps(history).encode()) <= 10_000
    assert history[-1]["text"] == "c"  # type: ignore[index]
    assert str(history[-2]["text"]).startswith("bbbb")  # type: ignore[index]
    assert str(history[-2]["text"]).endswith("…")  # type: ignore[index]


@pytest.mark.parametrize(("keep", "kept"), [(41, 41), (42, 42), (43, 42), (100, 42), (5_000, 42)])
async def test_a_history_too_long_for_the_value_limit_keeps_fewer_messages(
    make_engine: MakeEngine, keep: int, kept: int
) -> None:
    """4 KiB holds 42 entries of 32 bytes of text: more are not kept, and turns go on."""
    engine = await make_engine(
        echo_flow("ok"),
        config={"limits": {"maxValueBytes": 4_096}},
        bot_configs={"b": {"session": {"lastMessages": keep}}},
    )
    for n in range(50):  # more than the 42 that fit
        assert await engine.process("b", "u1", text=f"m{n}") == ["ok"]
    async with engine.memory.turn("b", "u1") as state:
        history = state.session["lastMessages"]
    assert isinstance(history, list)
    assert len(history) == kept
    assert len(dumps(history).encode()) <= 4_096
    assert history[-1]["text"] == "m49"  # type: ignore[index]


async def test_a_short_message_is_kept_whole_in_the_history(engine_b: DialogEngine) -> None:
    await engine_b.process("b", "u1", text="hello")
    async with engine_b.memory.turn("b", "u1") as state:
        assert state.session["lastMessages"][0]["text"] == "hello"  # type: ignore[index]


@pytest.fixture
async def engine_b(make_engine: MakeEngine) -> DialogEngine:
    return await make_engine(echo_flow("ok"))
