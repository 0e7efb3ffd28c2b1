"""Several real OS processes on one shared database (PostgreSQL or Redis).

Each worker is a fresh interpreter (the "spawn" start method) that opens its own
``Memory`` with the default configuration, waits at a barrier so that all start
together, does its work and reports back on a queue; the test checks the database.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import traceback
from collections.abc import Awaitable, Callable
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any

import pytest

from botmemory import Identity, ManualClock, Memory

SPAWN: SpawnContext = multiprocessing.get_context("spawn")
DEADLINE = 90.0
"""Seconds a test waits for its workers before it gives up on them."""


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("postgres_pgbouncer", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis_cluster", marks=pytest.mark.redis),
    ]
)
def shared_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database that several processes can share."""
    return str(request.getfixturevalue(f"{request.param}_url"))


# -- workers: run in the child processes ---------------------------------------------------
Work = Callable[[Memory, int], Awaitable[object]]


def _worker(url: str, work: Work, number: int, start: Any, results: Any) -> None:
    """Open a memory, wait for the others, run ``work`` and put its result on ``results``."""

    async def main() -> object:
        async with await Memory.open(url) as mem:
            await asyncio.to_thread(start.wait, DEADLINE)
            return await work(mem, number)

    try:
        results.put((number, asyncio.run(main()), None))
    except BaseException:
        results.put((number, None, traceback.format_exc()))
        raise


async def increment_and_remember(mem: Memory, number: int) -> int:
    """200 turns of user u1 in a session of the worker's own, each counting in the KVS."""
    for turn in range(200):
        async with mem.turn("b", "u1", thread_id=f"worker-{number}") as state:
            await mem.kvs.for_bot("b").incr("turns")
            state.user[f"w{number}-t{turn}"] = turn
    return 200


async def add_one_in_the_session(mem: Memory, number: int) -> int:
    """50 read-modify-write turns of one session that every worker shares."""
    for _ in range(50):
        async with mem.turn("b", "u1") as state:
            count = state.session.get("count", 0)
            assert isinstance(count, int)
            state.session["count"] = count + 1
    return 50


async def run_janitor(mem: Memory, number: int) -> dict[str, Any]:
    return (await mem.janitor.run_once()).as_dict()


def run_workers(url: str, work: Work, count: int) -> list[object]:
    """Run ``work`` in ``count`` processes started together; return their results."""
    start, results = SPAWN.Barrier(count), SPAWN.Queue()
    processes = [
        SPAWN.Process(target=_worker, args=(url, work, n, start, results), daemon=True)
        for n in range(count)
    ]
    for process in processes:
        process.start()
    try:
        reports = [results.get(timeout=DEADLINE) for _ in processes]
    finally:
        stop(processes)
    errors = [error for _, _, error in reports if error]
    assert not errors, "\n".join(errors)
    assert [p.exitcode for p in processes] == [0] * count
    return [result for _, result, _ in sorted(reports, key=lambda r: r[0])]


def stop(processes: list[SpawnProcess]) -> None:
    for process in processes:
        process.join(timeout=DEADLINE)
        if process.is_alive():
            process.kill()
            process.join()


# -- tests -----------------------------------------------------------------------------------
async def test_four_processes_count_every_turn_and_lose_no_variable(shared_url: str) -> None:
    results = await asyncio.to_thread(run_workers, shared_url, increment_and_remember, 4)
    assert results == [200] * 4
    async with await Memory.open(shared_url) as mem:
        assert await mem.kvs.for_bot("b").get("turns") == 800
        async with mem.turn("b", "u1") as state:
            expected = {f"w{n}-t{t}": t for n in range(4) for t in range(200)}
            assert dict(state.user) == expected


async def test_turns_of_one_session_are_serialized_across_processes(shared_url: str) -> None:
    if "pgbouncer=true" in shared_url:
        pytest.skip("behind PgBouncer turns of one session conflict and run again instead")
    await asyncio.to_thread(run_workers, shared_url, add_one_in_the_session, 3)
    async with await Memory.open(shared_url) as mem, mem.turn("b", "u1") as state:
        assert state.session["count"] == 150


async def expired_data(url: str, sessions: int, kvs_keys: int) -> None:
    """Store sessions with temp memory and KVS keys that expired an hour ago, for real."""
    clock = ManualClock(time.time() - 2 * 3600)
    async with await Memory.open(url, clock=clock) as mem:
        for i in range(sessions):
            async with mem.turn("b", f"u{i}") as state:
                state.session["s"] = i
                state.temp["t"] = i
        kvs = mem.kvs.for_bot("b")
        for first in range(0, kvs_keys, 100):
            batch = range(first, min(first + 100, kvs_keys))
            await asyncio.gather(*(kvs.set(f"k{i}", i, expiry="1h") for i in batch))


async def test_three_janitors_remove_every_row_once(shared_url: str) -> None:
    await expired_data(shared_url, sessions=1000, kvs_keys=8000)  # 1000 temp + 1000 sessions
    reports = await asyncio.to_thread(run_workers, shared_url, run_janitor, 3)
    counts = [(r["temp"], r["sessions"], r["kvs"]) for r in reports]  # type: ignore[index]
    assert sum(map(sum, counts)) == 10_000, counts
    assert tuple(map(sum, zip(*counts, strict=True))) == (1000, 1000, 8000), counts
    async with await Memory.open(shared_url) as mem:
        assert await mem.storage.expired_sessions(time.time(), 10) == []
        assert await mem.storage.delete_expired_kvs(time.time(), 10) == 0


def _janitor_killed_after_two_batches(url: str, stopped: Any) -> None:
    """Delete sessions in batches of 100; hang before the third, for the parent to kill."""

    async def main() -> None:
        async with await Memory.open(url) as mem:
            batches = 0

            async def before_delete(sessions: list[Any]) -> None:
                nonlocal batches
                batches += 1
                if batches == 3:
                    stopped.set()
                    await asyncio.Event().wait()  # until killed

            mem.janitor.batch_size = 100
            mem.janitor.on_session_end = before_delete
            await mem.janitor.run_once()

    asyncio.run(main())


def with_short_leases(url: str) -> str:
    """PostgreSQL frees the locks of a dead process at once; Redis when its lease lapses."""
    return f"{url}&lease_timeout=2s" if url.startswith("redis") else url


async def test_a_killed_janitor_leaves_nothing_half_done(shared_url: str) -> None:
    await expired_data(shared_url, sessions=500, kvs_keys=0)
    stopped = SPAWN.Event()
    process = SPAWN.Process(
        target=_janitor_killed_after_two_batches,
        args=(with_short_leases(shared_url), stopped),
        daemon=True,
    )
    process.start()
    try:
        assert await asyncio.to_thread(stopped.wait, DEADLINE), "the janitor did not start"
    finally:
        process.kill()
        process.join()
    async with await Memory.open(shared_url) as mem:
        now = time.time()
        left = await mem.storage.expired_sessions(now, 1000)
        assert len(left) == 300  # two batches of 100 went, whole
        for i in range(500):  # every session is there with its variables, or gone with them
            records = await mem.storage.load_user("b", Identity.of("b", f"u{i}").user_key)
            assert len(records.sessions) == len(records.session_vars) in (0, 1), records
            assert records.temp_vars == []  # emptied before sessions were deleted
        removed = 0
        for _ in range(200):  # until the killed janitor's lock is freed
            removed += (await mem.janitor.run_once()).sessions
            if removed == 300:
                break
            await asyncio.sleep(0.05)
        assert removed == 300
        assert await mem.storage.expired_sessions(now, 1000) == []
