"""The key-value store, on every backend."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from botmemory import InvalidDurationError, InvalidIdError, InvalidValueError, ManualClock, Memory
from tests.conftest import DAY


async def test_set_get_delete(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    assert await kvs.get("k") is None
    assert await kvs.get("k", default="d") == "d"
    await kvs.set("k", {"a": [1, 2]})
    assert await kvs.get("k") == {"a": [1, 2]}
    assert await kvs.delete("k") is True
    assert await kvs.delete("k") is False
    assert await kvs.get("k") is None


@pytest.mark.parametrize("value", [0, "", False, None, [], {}])
async def test_exists_is_true_for_falsy_values(mem: Memory, value: object) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("k", value)  # type: ignore[arg-type]
    assert await kvs.exists("k")
    assert await kvs.get("k", default="absent") == value
    assert not await kvs.exists("other")


async def test_bots_and_global_have_separate_key_spaces(mem: Memory) -> None:
    await mem.kvs.for_bot("b1").set("k", 1)
    await mem.kvs.for_global().set("k", "g")
    assert await mem.kvs.for_bot("b2").get("k") is None
    assert await mem.kvs.for_bot("b1").get("k") == 1
    assert await mem.kvs.for_global().get("k") == "g"
    assert await mem.kvs.for_bot("b2").keys() == []
    assert await mem.kvs.for_bot("b2").delete_prefix("k") == 0
    assert await mem.kvs.for_bot("b1").get("k") == 1


async def test_expiry(mem: Memory, clock: ManualClock) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("k", "v", expiry="5m")
    await kvs.set("t", "v", expiry=timedelta(hours=1))
    await kvs.set("n", "v", expiry="never")
    clock.advance(timedelta(seconds=299.999))
    assert await kvs.get("k") == "v"
    clock.advance(timedelta(seconds=0.001))
    assert await kvs.get("k") is None
    assert not await kvs.exists("k")
    assert await kvs.keys() == ["n", "t"]
    clock.advance(timedelta(seconds=DAY))
    assert await kvs.keys() == ["n"]


@pytest.mark.parametrize(
    ("expiry", "seconds"),
    [("1h", 3600.0), ("30d", 30 * DAY), ("500ms", 0.5), (timedelta(minutes=2), 120.0)],
)
async def test_a_key_lives_exactly_as_long_as_its_expiry(
    mem: Memory, clock: ManualClock, expiry: str | timedelta, seconds: float
) -> None:
    kvs = mem.kvs.for_bot("b")
    stored = await kvs.set("k", "v", expiry=expiry)
    assert stored.expires_at == pytest.approx(clock.now + seconds)
    clock.advance(timedelta(seconds=seconds - 0.001))
    assert await kvs.get("k") == "v"
    clock.advance(timedelta(seconds=0.001))
    assert await kvs.get("k") is None


@pytest.mark.parametrize("expiry", [5, 5.0, "5", "3600", 0])
async def test_a_bare_number_is_not_an_expiry(mem: Memory, expiry: object) -> None:
    kvs = mem.kvs.for_bot("b")
    with pytest.raises(InvalidDurationError, match="has no unit: add one"):
        await kvs.set("k", "v", expiry=expiry)  # type: ignore[arg-type]
    with pytest.raises(InvalidDurationError, match="has no unit"):
        await kvs.incr("n", expiry=expiry)  # type: ignore[arg-type]
    assert await kvs.keys() == []


async def test_set_without_expiry_clears_an_earlier_one(mem: Memory, clock: ManualClock) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("k", 1, expiry="1m")
    await kvs.set("k", 2)
    clock.advance(timedelta(seconds=DAY))
    assert await kvs.get("k") == 2


@pytest.mark.parametrize(
    "expiry",
    ["1 fortnight", "", "60x", "-5m", 0, "0s", "0.5ms", "0.0000001s", timedelta(0), -1, True, [1]],
)
async def test_invalid_expiry_is_an_error_not_an_instant_expiry(
    mem: Memory, expiry: object
) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("k", "kept")
    with pytest.raises(InvalidDurationError):
        await kvs.set("k", "new", expiry=expiry)  # type: ignore[arg-type]
    assert await kvs.get("k") == "kept"


async def test_the_shortest_expiry_1ms_is_there_until_it_ends(
    mem: Memory, clock: ManualClock
) -> None:
    kvs = mem.kvs.for_bot("b")
    entry = await kvs.set("k", "v", expiry="1ms")
    assert entry.expires_at == pytest.approx(clock() + 0.001)
    clock.advance(timedelta(microseconds=999))
    assert await kvs.get("k") == "v"
    clock.advance(timedelta(microseconds=1))
    assert await kvs.get("k") is None


async def test_path_reads_and_writes_inside_the_value(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("k", 1, path="a.b[0].c")
    assert await kvs.get("k") == {"a": {"b": [{"c": 1}]}}
    await kvs.set("k", 2, path="a.b[1]")
    await kvs.set("k", "x", path="a.d")
    assert await kvs.get("k", path="a.b[1]") == 2
    assert await kvs.get("k", path="a.b[0].c") == 1
    assert await kvs.get("k", path="a.missing", default="d") == "d"
    assert await kvs.get("k", path="a.b[9]", default="d") == "d"
    assert await kvs.get("k") == {"a": {"b": [{"c": 1}, 2], "d": "x"}}


async def test_path_through_a_scalar_is_an_error(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("k", {"a": 1})
    with pytest.raises(InvalidValueError):
        await kvs.set("k", 2, path="a.b")
    with pytest.raises(InvalidValueError):
        await kvs.set("k", 2, path="bad..path")
    assert await kvs.get("k") == {"a": 1}


async def test_concurrent_path_writes_are_atomic(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    await asyncio.gather(*(kvs.set("k", i, path=f"f{i}") for i in range(20)))
    assert await kvs.get("k") == {f"f{i}": i for i in range(20)}


async def test_keys_and_delete_prefix_take_the_prefix_literally(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    for key in ("a_1", "ab1", "a%2", "aX", "a*", "a", "b_1", "a_\U0010ffff", "a_"):
        await kvs.set(key, 1)
    assert await kvs.keys("a_") == ["a_", "a_1", "a_\U0010ffff"]
    assert await kvs.keys("a%") == ["a%2"]
    assert await kvs.keys("a*") == ["a*"]
    assert await kvs.delete_prefix("a_") == 3
    assert await kvs.keys("a") == ["a", "a%2", "a*", "aX", "ab1"]
    assert await kvs.keys() == ["a", "a%2", "a*", "aX", "ab1", "b_1"]


async def test_delete_prefix_needs_a_prefix(mem: Memory) -> None:
    with pytest.raises(InvalidValueError):
        await mem.kvs.for_bot("b").delete_prefix("")


async def test_incr_is_atomic(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    results = await asyncio.gather(*(kvs.incr("count") for _ in range(50)))
    assert sorted(results) == list(range(1, 51))
    assert await kvs.get("count") == 50
    assert await kvs.incr("count", by=-10) == 40
    assert await kvs.incr("float", by=0.5) == 0.5


async def test_incr_expiry(mem: Memory, clock: ManualClock) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.incr("window", expiry="1m")
    clock.advance(timedelta(seconds=30))
    await kvs.incr("window")  # keeps the expiry it had
    clock.advance(timedelta(seconds=29.999))
    assert await kvs.get("window") == 2
    clock.advance(timedelta(seconds=0.001))
    assert await kvs.get("window") is None
    assert await kvs.incr("window") == 1


async def test_incr_of_a_non_number_is_an_error(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("k", "text")
    with pytest.raises(InvalidValueError, match="not a number"):
        await kvs.incr("k")
    with pytest.raises(InvalidValueError):
        await kvs.incr("k", by="1")  # type: ignore[arg-type]
    assert await kvs.get("k") == "text"


async def test_invalid_keys_and_values(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    with pytest.raises(InvalidIdError):
        await kvs.set("", 1)
    with pytest.raises(InvalidIdError):
        await kvs.get("a\x00b")
    with pytest.raises(InvalidValueError):
        await kvs.set("k", object())  # type: ignore[arg-type]
    with pytest.raises(InvalidIdError):
        mem.kvs.for_bot("not a bot")


async def test_expired_keys_are_removed_by_the_janitor(mem: Memory, clock: ManualClock) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("gone", 1, expiry="1s")
    await kvs.set("kept", 1)
    await mem.kvs.for_global().set("gone", 1, expiry="1s")
    clock.advance(timedelta(seconds=0.999))
    assert (await mem.janitor.run_once()).kvs == 0
    clock.advance(timedelta(seconds=0.001))
    report = await mem.janitor.run_once()
    assert report.kvs == 2
    assert await kvs.keys() == ["kept"]
