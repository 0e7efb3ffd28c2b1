"""``kvs.add``: additions to a number that never read it, on every backend.

Inside a turn an addition to a key the turn has not read is a delta, added to whatever
the store holds at commit: turns that count in one key never conflict and lose no
addition. Concurrency is made here by nesting turns of different sessions (the outer
turn starts, the inner one commits, then the outer one commits); real processes are
in ``test_exactness.py``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from botmemory import ConflictError, InvalidDurationError, InvalidValueError, ManualClock, Memory


async def test_add_outside_a_turn_creates_then_adds(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.add("n")
    assert await kvs.get("n") == 1
    await kvs.add("n", 2.5)
    assert await kvs.get("n") == 3.5
    await kvs.add("n", -3.5)
    assert await kvs.get("n") == 0.0


async def test_add_to_a_non_number_outside_a_turn_is_an_error_and_changes_nothing(
    mem: Memory,
) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("k", "many")
    with pytest.raises(InvalidValueError, match="not a number"):
        await kvs.add("k")
    assert await kvs.get("k") == "many"


@pytest.mark.parametrize("by", [True, "1", None, float("nan"), float("inf"), [1]])
async def test_add_needs_a_finite_number(mem: Memory, by: object) -> None:
    with pytest.raises(InvalidValueError):
        await mem.kvs.for_bot("b").add("k", by)  # type: ignore[arg-type]
    async with mem.turn("b", "u1") as state:
        with pytest.raises(InvalidValueError):
            await state.kvs.add("k", by)  # type: ignore[arg-type]
    assert not await mem.kvs.for_bot("b").exists("k")


async def test_add_with_a_bare_number_as_expiry_is_an_error(mem: Memory) -> None:
    with pytest.raises(InvalidDurationError):
        await mem.kvs.for_bot("b").add("k", 1, expiry=60)  # type: ignore[arg-type]


async def test_turns_adding_to_one_key_never_conflict(mem: Memory) -> None:
    async with mem.turn("b", "u1") as outer:
        await outer.kvs.add("stats/messages")
        async with mem.turn("b", "u2") as inner:
            await inner.kvs.add("stats/messages", 10)
    assert await mem.kvs.for_bot("b").get("stats/messages") == 11


async def test_incr_in_the_same_place_conflicts(mem: Memory) -> None:
    """The difference with ``incr``, whose result the turn saw and the commit checks."""
    with pytest.raises(ConflictError):
        async with mem.turn("b", "u1") as outer:
            assert await outer.kvs.incr("stats/messages") == 1
            async with mem.turn("b", "u2") as inner:
                await inner.kvs.add("stats/messages", 10)
    assert await mem.kvs.for_bot("b").get("stats/messages") == 10


async def test_additions_of_one_turn_add_up(mem: Memory, clock: ManualClock) -> None:
    async with mem.turn("b", "u1") as state:
        await state.kvs.add("n", 1, expiry="1h")
        await state.kvs.add("n", 2)  # keeps the expiry the first one set
        await state.kvs.add("m", 5)
    kvs = mem.kvs.for_bot("b")
    assert (await kvs.get("n"), await kvs.get("m")) == (3, 5)
    clock.advance(timedelta(hours=1) - timedelta(milliseconds=1))
    assert await kvs.get("n") == 3
    clock.advance(timedelta(milliseconds=1))
    assert await kvs.get("n") is None
    assert await kvs.get("m") == 5


async def test_reading_the_key_after_adding_sees_the_sum_and_is_checked(mem: Memory) -> None:
    await mem.kvs.for_bot("b").set("n", 40)
    with pytest.raises(ConflictError):
        async with mem.turn("b", "u1") as outer:
            await outer.kvs.add("n", 2)
            assert await outer.kvs.get("n") == 42  # read: the commit now checks it
            async with mem.turn("b", "u2") as inner:
                await inner.kvs.add("n", 100)
    assert await mem.kvs.for_bot("b").get("n") == 140


async def test_add_after_reading_or_writing_in_the_turn_adds_at_once(mem: Memory) -> None:
    await mem.kvs.for_bot("b").set("read", 1)
    async with mem.turn("b", "u1") as state:
        assert await state.kvs.get("read") == 1
        await state.kvs.add("read", 1)
        assert await state.kvs.get("read") == 2
        await state.kvs.set("written", 10)
        await state.kvs.add("written", 5)
        assert await state.kvs.get("written") == 15
        await state.kvs.set("text", "x")
        with pytest.raises(InvalidValueError, match="not a number"):
            await state.kvs.add("text")
    kvs = mem.kvs.for_bot("b")
    assert (await kvs.get("read"), await kvs.get("written"), await kvs.get("text")) == (2, 15, "x")


async def test_set_after_add_in_a_turn_wins(mem: Memory) -> None:
    await mem.kvs.for_bot("b").set("n", "text")  # set replaces: the delta never meets it
    async with mem.turn("b", "u1") as state:
        await state.kvs.add("n", 2)
        await state.kvs.set("n", 7)
    assert await mem.kvs.for_bot("b").get("n") == 7


async def test_a_listing_sees_the_keys_additions_create(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        await state.kvs.add("counts/a")
        assert await state.kvs.keys("counts/") == ["counts/a"]
        assert await state.kvs.get("counts/a") == 1
    assert await mem.kvs.for_bot("b").keys() == ["counts/a"]


async def test_an_addition_to_a_non_number_fails_the_commit_and_writes_nothing(
    mem: Memory,
) -> None:
    await mem.kvs.for_bot("b").set("n", "many")
    with pytest.raises(InvalidValueError, match="not a number"):
        async with mem.turn("b", "u1") as state:
            state.user["name"] = "Ada"
            await state.kvs.set("other", 1)
            await state.kvs.add("n")
    kvs = mem.kvs.for_bot("b")
    assert (await kvs.get("n"), await kvs.get("other")) == ("many", None)
    async with mem.turn("b", "u1") as state:
        assert "name" not in state.user


async def test_an_addition_keeps_a_live_keys_expiry(mem: Memory, clock: ManualClock) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("n", 1, expiry="10m")
    clock.advance(timedelta(minutes=5))
    async with mem.turn("b", "u1") as state:
        await state.kvs.add("n", 1)
    clock.advance(timedelta(minutes=5) - timedelta(milliseconds=1))
    assert await kvs.get("n") == 2
    clock.advance(timedelta(milliseconds=1))
    assert await kvs.get("n") is None


async def test_an_addition_with_an_expiry_sets_it(mem: Memory, clock: ManualClock) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("n", 1)  # no expiry
    async with mem.turn("b", "u1") as state:
        await state.kvs.add("n", 1, expiry="30s")
    clock.advance(timedelta(seconds=30) - timedelta(milliseconds=1))
    assert await kvs.get("n") == 2
    clock.advance(timedelta(milliseconds=1))
    assert await kvs.get("n") is None
    assert await kvs.keys() == []


async def test_an_addition_to_an_expired_key_starts_from_zero_without_its_expiry(
    mem: Memory, clock: ManualClock
) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("n", 100, expiry="1m")
    clock.advance(timedelta(minutes=1))  # expired, maybe not removed yet
    async with mem.turn("b", "u1") as state:
        await state.kvs.add("n", 1)
    assert await kvs.get("n") == 1
    clock.advance(timedelta(days=365))
    assert await kvs.get("n") == 1  # the expired key's expiry went with it


async def test_integers_add_exactly_and_floats_as_python_adds_them(mem: Memory) -> None:
    big = 2**53 + 1  # not a float: a backend adding in doubles would round it
    await mem.kvs.for_bot("b").set("big", big)
    async with mem.turn("b", "u1") as state:
        await state.kvs.add("big", 2)
        await state.kvs.add("float", 0.1)
    async with mem.turn("b", "u2") as state:
        await state.kvs.add("float", 0.2)
    kvs = mem.kvs.for_bot("b")
    assert await kvs.get("big") == big + 2
    assert await kvs.get("float") == 0.1 + 0.2


async def test_global_and_bot_additions_stay_apart(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        await state.kvs.add("n", 1)
    await mem.kvs.for_global().add("n", 5)
    await mem.kvs.for_bot("other").add("n", 7)
    assert await mem.kvs.for_bot("b").get("n") == 1
    assert await mem.kvs.for_global().get("n") == 5
    assert await mem.kvs.for_bot("other").get("n") == 7


@pytest.mark.parametrize(
    ("stored", "by"),
    [(1.7e308, 1.7e308), (2**64 - 1, 1), (-(2**63), -1)],
    ids=["float-overflow", "int-over-64-bits", "int-under-64-bits"],
)
async def test_a_sum_out_of_range_fails_the_commit_and_writes_nothing(
    mem: Memory, stored: float, by: float
) -> None:
    """Stored, ``inf`` could never be read back, nor a 65-bit integer as one."""
    kvs = mem.kvs.for_bot("b")
    await kvs.set("n", stored)
    with pytest.raises(InvalidValueError, match="out of range"):
        async with mem.turn("b", "u1") as state:
            await state.kvs.set("other", 1)
            await state.kvs.add("n", by)
    assert (await kvs.get("n"), await kvs.get("other")) == (stored, None)
    with pytest.raises(InvalidValueError):
        await kvs.add("n", by)  # outside a turn, at once
    assert await kvs.get("n") == stored


async def test_a_sum_at_the_edge_of_the_range_is_stored(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("n", 2**64 - 2)
    async with mem.turn("b", "u1") as state:
        await state.kvs.add("n", 1)
    assert await kvs.get("n") == 2**64 - 1


async def test_deleting_or_listing_after_an_addition_needs_no_number(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("t/a", "text")
    await kvs.set("t/b", "text")
    async with mem.turn("b", "u1") as state:
        await state.kvs.add("t/a")
        await state.kvs.add("t/b")
        await state.kvs.add("t/new")
        assert await state.kvs.delete("t/a") is True
        assert await state.kvs.keys("t/") == ["t/b", "t/new"]
        assert await state.kvs.delete_prefix("t/") == 2
    assert await kvs.keys() == []


async def test_additions_of_one_turn_add_one_after_the_other(mem: Memory) -> None:
    await mem.kvs.for_bot("b").set("f", 0.1)
    async with mem.turn("b", "u1") as state:
        await state.kvs.add("f", 0.2)
        await state.kvs.add("f", 0.3)
    assert await mem.kvs.for_bot("b").get("f") == (0.1 + 0.2) + 0.3  # not 0.1 + (0.2 + 0.3)


async def test_a_failed_read_after_an_addition_keeps_the_addition(mem: Memory) -> None:
    await mem.kvs.for_bot("b").set("n", "text")
    async with mem.turn("b", "u1") as state:
        await state.kvs.add("n", 1)
        with pytest.raises(InvalidValueError):
            await state.kvs.get("n")
        await state.kvs.set("n", 5)  # the turn goes on, and a set still wins
    assert await mem.kvs.for_bot("b").get("n") == 5
