"""botmemory's LangGraph store, on every backend: what it adds to LangGraph's contract.

Exact expiry (both sides of every boundary, from the injected clock), retention
policies, erasure with counts, the janitor as sweeper, and clear errors.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from langgraph.store.base import GetOp, PutOp, SearchOp

from botmemory import ManualClock, Memory
from botmemory.errors import (
    ConfigError,
    InvalidDurationError,
    InvalidIdError,
    InvalidValueError,
    WrongLoopError,
)
from botmemory.integrations.langgraph import BotMemoryStore
from tests.conftest import DAY, START

MINUTE = 60.0
JUST = timedelta(milliseconds=1)


def advance(clock: ManualClock, seconds: float) -> None:
    clock.advance(timedelta(seconds=seconds))


async def keys(store: BotMemoryStore, prefix: tuple[str, ...] = ()) -> list[str]:
    return [item.key for item in await store.asearch(prefix, limit=100, refresh_ttl=False)]


async def test_put_get_update_delete(mem: Memory, clock: ManualClock) -> None:
    store = BotMemoryStore(mem)
    await store.aput(("users", "u1"), "name", {"first": "Ada"})
    advance(clock, 5)
    await store.aput(("users", "u1"), "name", {"first": "Grace"})
    item = await store.aget(("users", "u1"), "name")
    assert item is not None
    assert (item.namespace, item.key, item.value) == (("users", "u1"), "name", {"first": "Grace"})
    assert item.created_at.timestamp() == START
    assert item.updated_at.timestamp() == START + 5
    await store.adelete(("users", "u1"), "name")
    assert await store.aget(("users", "u1"), "name") is None
    assert await store.alist_namespaces() == []


async def test_an_item_expires_exactly_at_its_ttl_without_a_sweep(
    mem: Memory, clock: ManualClock
) -> None:
    store = BotMemoryStore(mem)
    await store.aput(("t",), "k", {"v": 1}, ttl=1)  # LangGraph's unit: minutes
    advance(clock, MINUTE - 0.001)
    assert await store.aget(("t",), "k", refresh_ttl=False) is not None
    assert await keys(store) == ["k"]
    clock.advance(JUST)
    assert await store.aget(("t",), "k", refresh_ttl=False) is None
    assert await keys(store) == []
    assert await store.alist_namespaces() == []
    assert await store.asweep_ttl() == 1


async def test_the_shortest_ttl_1ms_is_there_until_it_ends(mem: Memory, clock: ManualClock) -> None:
    store = BotMemoryStore(mem)
    await store.aput(("t",), "k", {"v": 1}, ttl=1 / 60_000)  # 1 ms, in minutes
    advance(clock, 0.000999)
    assert await store.aget(("t",), "k", refresh_ttl=False) is not None
    advance(clock, 0.000001)
    assert await store.aget(("t",), "k", refresh_ttl=False) is None


async def test_reading_refreshes_the_ttl_unless_told_not_to(
    mem: Memory, clock: ManualClock
) -> None:
    store = BotMemoryStore(mem, ttl={"default_ttl": 10})
    await store.aput(("t",), "got", {"v": 1})
    await store.aput(("t",), "searched", {"v": 2})
    await store.aput(("t",), "untouched", {"v": 3})
    advance(clock, 6 * MINUTE)
    assert await store.aget(("t",), "got") is not None
    assert [i.key for i in await store.asearch(("t",), filter={"v": 2})] == ["searched"]
    advance(clock, 4 * MINUTE)
    assert await keys(store) == ["got", "searched"]
    advance(clock, 6 * MINUTE - 0.001)
    assert await keys(store) == ["got", "searched"]
    clock.advance(JUST)
    assert await keys(store) == []


async def test_refresh_on_read_false_makes_reads_leave_the_ttl(
    mem: Memory, clock: ManualClock
) -> None:
    store = BotMemoryStore(mem, ttl={"default_ttl": 10, "refresh_on_read": False})
    await store.aput(("t",), "k", {"v": 1})
    advance(clock, 9 * MINUTE)
    assert await store.aget(("t",), "k") is not None
    advance(clock, MINUTE)
    assert await store.aget(("t",), "k") is None
    await store.aput(("t",), "k", {"v": 1})
    advance(clock, 9 * MINUTE)
    assert await store.aget(("t",), "k", refresh_ttl=True) is not None
    advance(clock, 9 * MINUTE)
    assert await store.aget(("t",), "k") is not None


async def test_default_ttl_applies_unless_the_put_gives_one(
    mem: Memory, clock: ManualClock
) -> None:
    store = BotMemoryStore(mem, ttl={"default_ttl": 5, "refresh_on_read": False})
    await store.aput(("t",), "default", {"v": 1})
    await store.aput(("t",), "short", {"v": 1}, ttl=1)
    await store.aput(("t",), "forever", {"v": 1}, ttl=None)
    advance(clock, MINUTE)
    assert await keys(store) == ["default", "forever"]
    advance(clock, 4 * MINUTE)
    assert await keys(store) == ["forever"]
    advance(clock, 1000 * DAY)
    assert await keys(store) == ["forever"]


async def test_retention_policies_by_namespace_and_key(mem: Memory, clock: ManualClock) -> None:
    store = BotMemoryStore(
        mem,
        ttl={"default_ttl": 60, "refresh_on_read": False},
        retention={"users/*/name": "30d", "users/*/mood": "1d", "users/**": "never"},
    )
    for key in ("name", "mood", "notes"):
        await store.aput(("users", "u1"), key, {"v": key})
    await store.aput(("other",), "name", {"v": 1})
    advance(clock, 60 * MINUTE)
    assert await keys(store) == ["mood", "name", "notes"]  # default_ttl: ("other",) only
    advance(clock, DAY - 60 * MINUTE - 0.001)
    assert await keys(store) == ["mood", "name", "notes"]
    clock.advance(JUST)
    assert await keys(store) == ["name", "notes"]
    advance(clock, 29 * DAY - 0.001)
    assert await keys(store) == ["name", "notes"]
    clock.advance(JUST)
    assert await keys(store) == ["notes"]


async def test_a_put_ttl_shortens_a_policy_but_never_extends_it(
    mem: Memory, clock: ManualClock
) -> None:
    store = BotMemoryStore(mem, retention={"users/*/mood": "1d"})
    await store.aput(("users", "u1"), "mood", {"v": "short"}, ttl=10)
    await store.aput(("users", "u2"), "mood", {"v": "long"}, ttl=2 * 24 * 60)
    advance(clock, 10 * MINUTE)
    assert await store.aget(("users", "u1"), "mood", refresh_ttl=False) is None
    advance(clock, DAY - 10 * MINUTE - 0.001)
    assert await store.aget(("users", "u2"), "mood", refresh_ttl=False) is not None
    clock.advance(JUST)
    assert await store.aget(("users", "u2"), "mood", refresh_ttl=False) is None


@pytest.mark.parametrize("written_with", ["a longer policy", "no ttl and no policy"])
async def test_a_refreshing_read_applies_the_policy_in_force(
    mem: Memory, clock: ManualClock, written_with: str
) -> None:
    """A policy is the most an item lives after a write or a refreshing read: a store
    with a stricter one (or one added since) caps the item from its read."""
    writer = BotMemoryStore(
        mem, retention={"users/*/mood": "30d"} if "longer" in written_with else None
    )
    reader = BotMemoryStore(mem, retention={"users/*/mood": "1d"})
    await writer.aput(("users", "u1"), "mood", {"v": "ok"})
    advance(clock, 10 * MINUTE)
    assert await reader.aget(("users", "u1"), "mood") is not None  # refreshes, under 1d
    advance(clock, DAY - 0.001)
    assert await reader.aget(("users", "u1"), "mood", refresh_ttl=False) is not None
    clock.advance(JUST)
    assert await reader.aget(("users", "u1"), "mood", refresh_ttl=False) is None


async def test_forget_erases_everything_under_a_namespace_and_counts_it(
    mem: Memory, clock: ManualClock
) -> None:
    store = BotMemoryStore(mem)
    await store.aput(("users", "u1"), "name", {"v": 1})
    await store.aput(("users", "u1", "notes"), "a", {"v": 2})
    await store.aput(("users", "u1", "notes"), "gone", {"v": 3}, ttl=1)
    await store.aput(("users", "u10"), "name", {"v": 4})
    await store.aput(("users", "u1/x"), "name", {"v": 5})
    advance(clock, MINUTE)
    report = await store.aforget(("users", "u1"))
    assert (report.namespace, report.items, report.namespaces) == (("users", "u1"), 3, 2)
    assert await store.alist_namespaces() == [("users", "u1/x"), ("users", "u10")]
    assert await store.asweep_ttl() == 0  # the expired item went with the rest
    assert (await store.aforget(("users", "u1"))).items == 0


async def test_labels_and_keys_with_separators_never_collide(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await store.aput(("a/b",), "k", {"v": 1})
    await store.aput(("a", "b"), "k", {"v": 2})
    await store.aput(("a",), "b//k", {"v": 3})
    await store.aput(("a%2Fb",), "k", {"v": 4})
    await store.aput(("ü", "\n"), "é k", {"v": 5})
    assert await store.alist_namespaces() == [("a",), ("a", "b"), ("a%2Fb",), ("a/b",), ("ü", "\n")]
    assert [i.value["v"] for i in await store.asearch(("a",))] == [3, 2]
    assert (await store.aget(("ü", "\n"), "é k")).value == {"v": 5}  # type: ignore[union-attr]


async def test_stores_with_other_bot_ids_do_not_see_each_other(mem: Memory) -> None:
    first, second = BotMemoryStore(mem), BotMemoryStore(mem, bot_id="other")
    await first.aput(("ns",), "k", {"v": 1})
    assert await second.aget(("ns",), "k") is None
    assert await second.alist_namespaces() == []


async def test_a_batch_reads_before_it_writes_and_the_last_put_wins(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    results = await store.abatch(
        [
            PutOp(("ns",), "k", {"v": 1}),
            GetOp(("ns",), "k"),
            PutOp(("ns",), "k", {"v": 2}),
            SearchOp(("ns",)),
        ]
    )
    assert results == [None, None, None, []]
    assert (await store.aget(("ns",), "k")).value == {"v": 2}  # type: ignore[union-attr]


async def test_the_blocking_api_works_from_a_thread_not_on_the_loop(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await asyncio.to_thread(store.put, ("ns",), "k", {"v": 1})
    item = await asyncio.to_thread(store.get, ("ns",), "k")
    assert item is not None
    assert item.value == {"v": 1}
    with pytest.raises(WrongLoopError, match="await its async version"):
        store.get(("ns",), "k")


async def first_run(mem: Memory, runs: int) -> None:
    """Wait for the janitor's loop to finish a run: a stop in the middle of a run on Redis
    can be lost (Lease.stop in storage/redis/lease.py suppresses the janitor's own
    cancellation while it releases the lease), and the stop then waits forever."""
    while mem.janitor.totals.runs < runs:  # noqa: ASYNC110 - the janitor sets no event
        await asyncio.sleep(0.01)  # a real background task, not an expiry


async def test_the_janitor_is_the_sweeper(mem: Memory) -> None:
    store = BotMemoryStore(mem, ttl={"sweep_interval_minutes": 5})
    future = await asyncio.to_thread(store.start_ttl_sweeper)
    assert mem.janitor.running
    await first_run(mem, 1)
    assert mem.janitor.interval == 5 * MINUTE
    assert await asyncio.to_thread(store.stop_ttl_sweeper)
    assert not mem.janitor.running
    assert future.done()
    await store.astart_ttl_sweeper(1)
    assert (mem.janitor.running, mem.janitor.interval) == (True, MINUTE)
    await first_run(mem, 2)
    assert await store.astop_ttl_sweeper()
    assert not mem.janitor.running
    with pytest.raises(InvalidDurationError, match="too short for an interval"):
        await store.astart_ttl_sweeper(0.05 / 60)  # 50 ms: as janitorInterval, 100 ms at least
    await store.astart_ttl_sweeper(0.1 / 60)
    assert mem.janitor.interval == pytest.approx(0.1)
    assert await store.astop_ttl_sweeper(timeout=10)  # as AsyncSqliteStore's takes it
    assert not mem.janitor.running


async def test_sweep_ttl_runs_the_janitor_and_counts_the_items(
    mem: Memory, clock: ManualClock
) -> None:
    store = BotMemoryStore(mem)
    await store.aput(("ns",), "k", {"v": 1}, ttl=1)
    await store.aput(("ns",), "kept", {"v": 1})
    advance(clock, MINUTE)
    assert await asyncio.to_thread(store.sweep_ttl) == 1
    assert await store.asweep_ttl() == 0


async def test_bad_input_is_a_clear_error(mem: Memory) -> None:
    with pytest.raises(ConfigError, match="semantic"):
        BotMemoryStore(mem, index={"dims": 3, "embed": "fake"})
    with pytest.raises(InvalidDurationError, match="no unit"):
        BotMemoryStore(mem, retention={"users/*/mood": 30})  # type: ignore[dict-item]
    with pytest.raises(InvalidValueError, match="joined by '/'"):
        BotMemoryStore(mem, retention={"users//mood": "1d"})
    with pytest.raises(InvalidDurationError, match="minutes"):
        BotMemoryStore(mem, ttl={"default_ttl": -1})
    with pytest.raises(InvalidIdError):
        BotMemoryStore(mem, bot_id="not a bot id")
    store = BotMemoryStore(mem)
    for ttl in (0, 1e-12, 0.9 / 60_000):  # minutes: zero, and less than 1 ms
        with pytest.raises(InvalidDurationError, match="more than zero, and at least 1ms"):
            await store.aput(("ns",), "k", {"v": 1}, ttl=ttl)
    with pytest.raises(InvalidDurationError, match="would expire at once"):
        BotMemoryStore(mem, retention={"users/*/mood": "0.5ms"})
    with pytest.raises(InvalidValueError, match="JSON"):
        await store.aput(("ns",), "k", {"v": {1, 2}})
    with pytest.raises(InvalidValueError, match="mixes operators and fields"):
        await store.asearch(("ns",), filter={"v": {"$eq": "5", "y": 1}})
    for huge in (1e13, 1e300):  # minutes: a timedelta overflows past 10**12
        with pytest.raises(InvalidDurationError, match="longer than 1000 years"):
            await store.aput(("ns",), "k", {"v": 1}, ttl=huge)
        with pytest.raises(InvalidDurationError, match="longer than 1000 years"):
            BotMemoryStore(mem, ttl={"default_ttl": huge})
    with pytest.raises(InvalidValueError, match=r"\$regex"):
        await store.asearch(("ns",), filter={"v": {"$regex": "a"}})
    with pytest.raises(InvalidValueError, match="needs a namespace"):
        await store.aforget(())
    assert await store.alist_namespaces() == []


def test_a_store_over_a_memory_is_made_inside_async_code() -> None:
    memory = Memory.__new__(Memory)
    with pytest.raises(WrongLoopError, match="SyncMemory"):
        BotMemoryStore(memory)
