"""The four memories as a turn sees them, on every backend."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from botmemory import (
    ConflictError,
    InvalidIdError,
    InvalidValueError,
    ManualClock,
    Memory,
    MessageTooLargeError,
    ValueTooLargeError,
)
from tests.conftest import DAY, OpenMemory


def text(t: str) -> dict[str, str]:
    return {"type": "text", "text": t}


async def test_user_memory_survives_sessions(mem: Memory, clock: ManualClock) -> None:
    async with mem.turn("b", "u1") as state:
        state.user["name"] = "Ada"
    clock.advance(timedelta(seconds=365 * DAY))
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session
        assert state.user["name"] == "Ada"


async def test_user_memory_is_not_shared_between_bots_or_channels(mem: Memory) -> None:
    async with mem.turn("b1", "u1") as state:
        state.user["name"] = "Ada"
    async with mem.turn("b2", "u1") as state:
        assert "name" not in state.user
    async with mem.turn("b1", "u1", channel="web") as state:
        assert "name" not in state.user
    async with mem.turn("b1", "u1", thread_id="t1") as state:
        assert state.user["name"] == "Ada"


async def test_session_memory_lives_until_inactivity_timeout(
    mem: Memory, clock: ManualClock
) -> None:
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session
        state.session["topic"] = "billing"
    clock.advance(timedelta(seconds=29 * 60))
    async with mem.turn("b", "u1") as state:
        assert not state.is_new_session
        assert state.session["topic"] == "billing"
    clock.advance(timedelta(seconds=29 * 60))  # inactivity counts from the last turn
    async with mem.turn("b", "u1") as state:
        assert state.session["topic"] == "billing"
    clock.advance(timedelta(seconds=30 * 60))
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session
        assert "topic" not in state.session


async def test_timed_out_session_is_not_resurrected_by_a_later_write(
    mem: Memory, clock: ManualClock
) -> None:
    async with mem.turn("b", "u1") as state:
        state.session["a"] = 1
        state.session["b"] = 2
    clock.advance(timedelta(seconds=31 * 60))
    async with mem.turn("b", "u1") as state:
        state.session["c"] = 3
    async with mem.turn("b", "u1") as state:
        assert {k: v for k, v in state.session.items() if k != "lastMessages"} == {"c": 3}


async def test_bot_session_timeout_wins_over_global(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory(
        {"dialog": {"sessionTimeoutInterval": "1h"}}, {"short": {"sessionIntervalTimeout": "2m"}}
    )
    for bot in ("short", "long"):
        async with mem.turn(bot, "u1") as state:
            state.session["x"] = 1
    clock.advance(timedelta(seconds=3 * 60))
    async with mem.turn("short", "u1") as state:
        assert state.is_new_session
        assert "x" not in state.session
    async with mem.turn("long", "u1") as state:
        assert not state.is_new_session
        assert state.session["x"] == 1


async def test_last_messages_keeps_the_last_n_oldest_first(mem: Memory, clock: ManualClock) -> None:
    for i in range(7):
        clock.advance(timedelta(seconds=1))
        async with mem.turn("b", "u1", message=text(f"m{i}")) as state:
            pass
    history = state.session["lastMessages"]
    assert isinstance(history, list)
    assert [m["text"] for m in history] == ["m2", "m3", "m4", "m5", "m6"]  # type: ignore[index]
    assert history[-1] == {"type": "text", "text": "m6", "timestamp": "2023-11-14T22:13:27.000Z"}


async def test_last_messages_count_is_configurable(open_memory: OpenMemory) -> None:
    mem = await open_memory(
        {"session": {"lastMessages": 2}}, {"none": {"session": {"lastMessages": 0}}}
    )
    for i in range(3):
        async with mem.turn("b", "u1", message={"type": "quick_reply", "payload": i}) as state:
            pass
    assert [m["type"] for m in state.session["lastMessages"]] == ["quick_reply"] * 2  # type: ignore[index,union-attr]
    async with mem.turn("none", "u1", message=text("hi")) as state:
        assert "lastMessages" not in state.session


async def test_temp_lives_until_end_of_flow(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        state.temp["step"] = 1
    async with mem.turn("b", "u1") as state:
        assert state.temp["step"] == 1
        state.end_flow()
        assert dict(state.temp) == {}
    async with mem.turn("b", "u1") as state:
        assert "step" not in state.temp


async def test_temp_set_after_end_flow_belongs_to_the_next_flow(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        state.temp["old"] = 1
    async with mem.turn("b", "u1") as state:
        state.end_flow()
        state.temp["new"] = 2
    async with mem.turn("b", "u1") as state:
        assert dict(state.temp) == {"new": 2}


async def test_temp_expires_after_dialog_timeout(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory({"dialog": {"timeoutInterval": "5m"}})
    async with mem.turn("b", "u1") as state:
        state.temp["step"] = 1
        state.session["keep"] = True
    clock.advance(timedelta(seconds=4 * 60))
    async with mem.turn("b", "u1") as state:
        assert state.temp["step"] == 1
    clock.advance(timedelta(seconds=5 * 60 + 1))
    async with mem.turn("b", "u1") as state:
        assert "step" not in state.temp
        assert state.session["keep"] is True
        state.temp["other"] = 1
    async with mem.turn("b", "u1") as state:
        assert dict(state.temp) == {"other": 1}


async def test_bot_memory_is_shared_by_every_user_of_the_bot(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        state.bot["motd"] = "hello"
    async with mem.turn("b", "u2", channel="web") as state:
        assert state.bot["motd"] == "hello"
        state.bot["motd"] = "bye"
    async with mem.turn("b", "u1") as state:
        assert state.bot["motd"] == "bye"
    async with mem.turn("other", "u1") as state:
        assert "motd" not in state.bot


async def test_a_turn_that_raises_persists_nothing(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        state.user["kept"] = 1
    with pytest.raises(RuntimeError):
        async with mem.turn("b", "u1", message=text("boom")) as state:
            state.user["kept"] = 2
            state.user["new"] = 1
            state.session["s"] = 1
            state.temp["t"] = 1
            state.bot["b"] = 1
            raise RuntimeError("boom")
    async with mem.turn("b", "u1") as state:
        assert dict(state.user) == {"kept": 1}
        assert "s" not in state.session
        assert "t" not in state.temp
        assert "b" not in state.bot
        assert "lastMessages" not in state.session


async def test_a_message_over_the_limit_is_refused_and_nothing_is_written(
    open_memory: OpenMemory,
) -> None:
    mem = await open_memory({"limits": {"maxMessageBytes": 100}})
    too_large = [
        text("x" * 101),
        text("é" * 51),  # 102 bytes of UTF-8
        {"type": "quick_reply", "text": "x" * 50, "payload": "x" * 49},  # 50 + 51 as JSON
    ]
    for message in too_large:
        with pytest.raises(MessageTooLargeError, match=r"bytes.*limits\.maxMessageBytes"):
            async with mem.turn("b", "u1", message=message) as state:
                state.user["written"] = True
        with pytest.raises(MessageTooLargeError):
            await mem.run_turn(lambda state: asyncio.sleep(0), "b", "u1", message=message)
    async with mem.turn("b", "u1", message=text("x" * 100)) as state:  # at the limit: kept
        assert "written" not in state.user
        assert state.is_new_session
        assert [m["text"] for m in state.session["lastMessages"]] == ["x" * 100]  # type: ignore[index,union-attr]


async def test_deleted_variables_are_deleted(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        state.user["a"] = 1
        state.bot["b"] = 2
    async with mem.turn("b", "u1") as state:
        del state.user["a"]
        state.bot.pop("b")
    async with mem.turn("b", "u1") as state:
        assert "a" not in state.user
        assert "b" not in state.bot


async def test_nested_changes_in_place_are_persisted(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        state.user["profile"] = {"name": "Ada", "tags": []}
    async with mem.turn("b", "u1") as state:
        state.user["profile"]["tags"].append("vip")  # type: ignore[index,union-attr]
    async with mem.turn("b", "u1") as state:
        assert state.user["profile"] == {"name": "Ada", "tags": ["vip"]}


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -1.5, "", "é", [], {}, {"a": [1, None, {"b": None}]}, [[[]]]],
)
async def test_json_values_round_trip(mem: Memory, value: object) -> None:
    async with mem.turn("b", "u1") as state:
        state.user["v"] = value  # type: ignore[assignment]
    async with mem.turn("b", "u1") as state:
        assert state.user["v"] == value
        assert type(state.user["v"]) is type(value)


@pytest.mark.parametrize(
    "value", [object(), {1: "int key"}, (1, 2), {1, 2}, float("nan"), float("inf"), b"bytes"]
)
async def test_non_json_values_are_refused_at_assignment(mem: Memory, value: object) -> None:
    async with mem.turn("b", "u1") as state:
        with pytest.raises(InvalidValueError, match=r"user\.bad"):
            state.user["bad"] = value  # type: ignore[assignment]


async def test_non_json_nested_in_place_fails_the_turn_and_persists_nothing(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        state.session["list"] = []
    with pytest.raises(InvalidValueError, match=r"session\.list\[0\]"):
        async with mem.turn("b", "u1") as state:
            state.user["ok"] = 1
            state.session["list"].append(object())  # type: ignore[union-attr]
    async with mem.turn("b", "u1") as state:
        assert "ok" not in state.user


async def test_values_larger_than_the_limit_are_refused(open_memory: OpenMemory) -> None:
    mem = await open_memory({"limits": {"maxValueBytes": 100}})
    async with mem.turn("b", "u1") as state:
        state.bot["ok"] = "x" * 90
        with pytest.raises(ValueTooLargeError, match=r"bot\.big.*100 bytes"):
            state.bot["big"] = "x" * 200


@pytest.mark.parametrize(
    ("bot_id", "user_id", "channel", "thread_id"),
    [
        ("bad bot", "u", "api", None),
        ("", "u", "api", None),
        ("b" * 65, "u", "api", None),
        ("b", "", "api", None),
        ("b", "u" * 256, "api", None),
        ("b", "u\n", "api", None),
        ("b", "u", "", None),
        ("b", "u", "api", ""),
        ("b", 5, "api", None),
    ],
)
async def test_invalid_ids_are_refused(
    mem: Memory, bot_id: str, user_id: str, channel: str, thread_id: str | None
) -> None:
    with pytest.raises(InvalidIdError):
        async with mem.turn(bot_id, user_id, channel, thread_id):
            pass


async def test_ids_with_separators_never_collide(mem: Memory) -> None:
    async with mem.turn("b", "x::y") as state:
        state.session["who"] = "user x::y"
        state.user["who"] = "user x::y"
    async with mem.turn("b", "x", thread_id="y") as state:
        assert state.session_id == "b::api::x::y"
        assert "who" not in state.session
        assert "who" not in state.user
    async with mem.turn("b", "y", channel="api::x") as state:
        assert "who" not in state.session


async def test_session_id_format(mem: Memory) -> None:
    async with mem.turn("b", "u1", channel="web") as state:
        assert state.session_id == "b::web::u1"
    async with mem.turn("b", "u1", channel="web", thread_id="t") as state:
        assert state.session_id == "b::web::u1::t"


async def test_message_must_be_an_object_with_a_type(mem: Memory) -> None:
    with pytest.raises(InvalidValueError, match="type"):
        async with mem.turn("b", "u1", message={"text": "no type"}):
            pass


async def test_turns_of_one_session_run_one_after_the_other(mem: Memory) -> None:
    order: list[str] = []

    async def turn(name: str) -> None:
        async with mem.turn("b", "u1") as state:
            order.append(f"{name} start")
            count = state.session.get("count", 0)
            await asyncio.sleep(0)  # let the other turn try to interleave
            state.session["count"] = count + 1  # type: ignore[operator]
            order.append(f"{name} end")

    await asyncio.gather(*(turn(str(i)) for i in range(5)))
    async with mem.turn("b", "u1") as state:
        assert state.session["count"] == 5
    assert all(order[i].split()[0] == order[i + 1].split()[0] for i in range(0, 10, 2))


async def test_concurrent_turns_of_different_sessions_keep_both_changes(mem: Memory) -> None:
    started = asyncio.Event()

    async def first() -> None:
        async with mem.turn("b", "u1", thread_id="t1") as state:
            state.user["a"] = 1
            state.bot["x"] = 1
            started.set()
            await asyncio.sleep(0)

    async def second() -> None:
        await started.wait()
        async with mem.turn("b", "u1", thread_id="t2") as state:
            state.user["b"] = 2
            state.bot["y"] = 2

    await asyncio.gather(first(), second())
    async with mem.turn("b", "u1") as state:
        assert dict(state.user) == {"a": 1, "b": 2}
        assert dict(state.bot) == {"x": 1, "y": 2}


async def test_a_turn_writes_only_what_it_changed(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        state.bot["counter"] = 0
        state.bot["other"] = "x"
    async with mem.turn("b", "u1", thread_id="t1") as slow:
        async with mem.turn("b", "u2") as fast:
            fast.bot["counter"] = 5
        slow.bot["other"] = "y"  # a blind write: the slow turn never read counter
    async with mem.turn("b", "u1") as state:
        assert state.bot["counter"] == 5
        assert state.bot["other"] == "y"


async def test_a_turn_that_read_a_changed_variable_conflicts_and_writes_nothing(
    mem: Memory,
) -> None:
    async with mem.turn("b", "u1") as state:
        state.bot["counter"] = 0
    with pytest.raises(ConflictError):
        async with mem.turn("b", "u1", thread_id="t1") as slow:
            async with mem.turn("b", "u2") as fast:
                fast.bot["counter"] = 5
            slow.bot["counter"] = slow.bot["counter"] + 1  # read before the other turn
            slow.user["name"] = "lost"
    async with mem.turn("b", "u1") as state:
        assert state.bot["counter"] == 5
        assert "name" not in state.user


async def test_end_flow_then_the_same_value_is_kept(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        state.temp["step"] = 1
    async with mem.turn("b", "u1") as state:
        state.end_flow()
        state.temp["step"] = 1  # the next flow starts at step 1 too
    async with mem.turn("b", "u1") as state:
        assert dict(state.temp) == {"step": 1}


async def test_text_that_is_not_valid_unicode_is_refused(mem: Memory) -> None:
    with pytest.raises(InvalidIdError):
        async with mem.turn("b", "u\ud800"):
            pass
    async with mem.turn("b", "u1") as state:
        with pytest.raises(InvalidValueError, match=r"user\.name"):
            state.user["name"] = "x\ud800"
        with pytest.raises(InvalidIdError):
            state.user["\ud800"] = 1


async def test_a_late_turn_can_still_see_the_temp_memory_that_timed_out(
    mem: Memory, clock: ManualClock
) -> None:
    async with mem.turn("b", "u1") as state:
        state.temp["step"] = 2
    clock.advance(timedelta(seconds=6 * 60))  # the dialog timed out; no janitor ran
    async with mem.turn("b", "u1") as state:
        assert dict(state.temp) == {}
        assert state.expired_temp == {"step": "2"}
        state.resume_expired_temp()
        assert dict(state.temp) == {"step": 2}
        state.end_flow()
        state.temp["next"] = 1
    async with mem.turn("b", "u1") as state:
        assert dict(state.temp) == {"next": 1}
        assert state.expired_temp == {}
    clock.advance(timedelta(seconds=6 * 60))
    async with mem.turn("b", "u1") as state:  # resumed but left as it was: not kept either
        state.resume_expired_temp()
    async with mem.turn("b", "u1") as state:
        assert dict(state.temp) == {}
        assert state.expired_temp == {}


async def test_a_value_nested_too_deep_or_cyclic_is_invalid_and_writes_nothing(
    mem: Memory,
) -> None:
    deep: object = "x"
    for _ in range(1000):
        deep = [deep]
    cyclic: list[object] = []
    cyclic.append(cyclic)
    for bad in (deep, cyclic):
        with pytest.raises(InvalidValueError, match="nested deeper"):
            async with mem.turn("b", "u1", message=text("hi")) as state:
                state.user["ok"] = 1
                state.user["bad"] = bad  # type: ignore[assignment]
        with pytest.raises(InvalidValueError, match="nested deeper"):
            await mem.kvs.for_bot("b").set("k", bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidValueError, match="nested deeper"):
            async with mem.turn("b", "u1", message={"type": "text", "payload": bad}):  # type: ignore[dict-item]
                pass
    async with mem.turn("b", "u1") as state:
        assert dict(state.user) == {}
        assert "lastMessages" not in state.session
    assert await mem.kvs.for_bot("b").keys() == []
