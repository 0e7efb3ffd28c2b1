"""Exact under concurrency, with real OS processes on one shared database.

SQLite (one file shared by every process), PostgreSQL and Redis. Workers are fresh
interpreters ("spawn", or ``python -m tests.exactness_worker``) running the code of
``tests/exactness_worker.py``; the test checks what the database holds afterwards.
Each test prints what it observed (retries, kills): run with ``-s`` to see it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import Any

import pytest

from botmemory import ConflictError, DuplicateMessageError, Memory
from botmemory.dialog import DialogEngine
from botmemory.turns import TurnState
from tests import exactness_worker as worker
from tests.dialog.conftest import flow, node, write_bot

SPAWN: SpawnContext = multiprocessing.get_context("spawn")
DEADLINE = 120.0
"""Seconds a test waits for its workers before it gives up on them."""
ROOT = Path(__file__).resolve().parent.parent
"""The project folder: ``python -m tests.exactness_worker`` runs from there."""

PROCESSES, TASKS, TURNS = 4, 64, 5
TOTAL = PROCESSES * TASKS * TURNS  # 1280


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database that several processes can share."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shared.db"
    return str(request.getfixturevalue(f"{request.param}_url"))


def backend_of(url: str) -> str:
    return url.split(":", 1)[0]


# -- running workers ---------------------------------------------------------------------------
def run_workers(target: Any, args: tuple[Any, ...], count: int) -> list[Any]:
    """Run ``target(*args, number, start, results)`` in ``count`` processes started together.

    Return their results, in the order of their numbers.
    """
    start, results = SPAWN.Barrier(count), SPAWN.Queue()
    processes = [
        SPAWN.Process(target=target, args=(*args, n, start, results), daemon=True)
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


def count_in_processes(
    url: str, mode: str, target: str, config: Any = None
) -> list[dict[str, int]]:
    """4 processes × 64 tasks × 5 turns counting in ``target``; the stats of each process."""
    args = (url, config, mode, target)
    return run_workers(worker.count_in_turns, (*args, (TASKS, TURNS)), PROCESSES)


async def counted(url: str, target: str) -> Any:
    """The counter ``n`` of ``target`` as a turn of the first task would see it."""
    user, thread = worker.where(target, 0, 0)
    async with await Memory.open(url) as mem:
        scopes = (await mem.peek("b", user, "api", thread))["scopes"]
    scope = scopes[target.removesuffix("-many")]  # type: ignore[index]
    return scope["n"]["value"]


def summed(stats: list[dict[str, int]], name: str) -> int:
    return sum(s[name] for s in stats)


# -- 1. read-modify-write is exact ----------------------------------------------------------------
@pytest.mark.parametrize("target", ["bot", "user", "session"])
async def test_read_modify_write_from_four_processes_loses_no_update(
    shared_url: str, target: str
) -> None:
    started = time.perf_counter()
    stats = await asyncio.to_thread(count_in_processes, shared_url, "rmw", target)
    print(
        f"\n[rmw {backend_of(shared_url)} {target}] {TOTAL} turns in "
        f"{time.perf_counter() - started:.1f}s, retries {summed(stats, 'retries')} "
        f"(per process {[s['retries'] for s in stats]})"
    )
    assert summed(stats, "turns") == TOTAL
    assert summed(stats, "retries") == summed(stats, "conflicts")
    assert await counted(shared_url, target) == TOTAL


# -- 2. incr never conflicts ----------------------------------------------------------------------
@pytest.mark.parametrize("target", ["bot", "user", "user-many"])
async def test_increments_from_four_processes_never_conflict(shared_url: str, target: str) -> None:
    started = time.perf_counter()
    stats = await asyncio.to_thread(count_in_processes, shared_url, "incr", target)
    print(
        f"\n[incr {backend_of(shared_url)} {target}] {TOTAL} turns in "
        f"{time.perf_counter() - started:.1f}s, conflicts {[s['conflicts'] for s in stats]}"
    )
    assert summed(stats, "turns") == TOTAL
    assert await counted(shared_url, target) == TOTAL
    assert [s["conflicts"] for s in stats] == [0] * PROCESSES
    assert [s["retries"] for s in stats] == [0] * PROCESSES
