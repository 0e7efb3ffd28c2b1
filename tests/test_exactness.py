"""Exact under concurrency, with real OS processes on one shared database.

SQLite (one file shared by every process), PostgreSQL and Redis. Workers are fresh
interpreters ("spawn", or ``python -m tests.exactness_worker``) running the code of
``tests/exactness_worker.py``; the test checks what the database holds afterwards.
Each test prints what it observed (retries, kills): run with ``-s`` to see it.

``BOTMEMORY_EXACTNESS_TASKS`` sets the asyncio tasks per process of the counting
tests: by default 64, the issue's 4 processes × 64 tasks × 5 turns.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import select
import signal
import subprocess
import sys
import time
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import Any

import pytest

from botmemory import DuplicateMessageError, Memory
from botmemory.dialog import DialogEngine
from botmemory.turns import TurnState
from tests import exactness_worker as worker
from tests.dialog.conftest import flow, node, write_bot

SPAWN: SpawnContext = multiprocessing.get_context("spawn")
DEADLINE = 120.0
"""Seconds a test waits for its workers before it gives up on them."""
ROOT = Path(__file__).resolve().parent.parent
"""The project folder: ``python -m tests.exactness_worker`` runs from there."""

PROCESSES, TURNS = 4, 5
TASKS = int(os.environ.get("BOTMEMORY_EXACTNESS_TASKS", "64"))
"""Asyncio tasks per process, each running ``TURNS`` turns one after the other."""
KILLS = 24


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("postgres_pgbouncer", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis_cluster", marks=pytest.mark.redis),
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


async def created(url: str) -> str:
    """Create the database's schema once, before the workers open it together."""
    async with await Memory.open(url):
        pass
    return url


async def peek_scopes(url: str, user: str, thread: str | None = None) -> dict[str, Any]:
    """``{scope: {name: value}}`` as a turn of ``user`` in ``thread`` would see them."""
    async with await Memory.open(url) as mem:
        scopes = (await mem.peek("b", user, "api", thread)).scopes
    return {
        scope: {name: entry.value for name, entry in variables.items()}
        for scope, variables in scopes.items()
    }


def summed(stats: list[dict[str, int]], name: str) -> int:
    return sum(s[name] for s in stats)


async def run_counting(url: str, mode: str, target: str, tasks: int) -> list[dict[str, int]]:
    """4 processes × ``tasks`` tasks × 5 turns counting in ``target``; each one's stats."""
    await created(url)
    started = time.perf_counter()
    args = (url, worker.DEFAULTS, mode, target, (tasks, TURNS))
    stats = await asyncio.to_thread(run_workers, worker.count_in_turns, args, PROCESSES)
    turns = PROCESSES * tasks * TURNS
    print(
        f"\n[{mode} {backend_of(url)} {target}] {PROCESSES}x{tasks}x{TURNS} turns in "
        f"{time.perf_counter() - started:.1f}s: retries {summed(stats, 'retries')} "
        f"({summed(stats, 'retries') / turns:.2f} per turn), by process "
        f"{[s['retries'] for s in stats]}"
    )
    assert summed(stats, "turns") == turns
    assert summed(stats, "retries") == summed(stats, "conflicts")
    return stats


# -- 1. read-modify-write is exact ----------------------------------------------------------------
@pytest.mark.parametrize(
    "target",
    [
        pytest.param("bot", id="bot"),  # every task a user of its own
        pytest.param("user", id="user"),  # one user from two sessions
        pytest.param("session", id="session"),  # one session
    ],
)
async def test_read_modify_write_from_four_processes_loses_no_update(
    shared_url: str, target: str
) -> None:
    """Every turn adds one to ``n`` by reading it, and increments bot ``turns``.

    ``turns`` shows that the increment of a turn that ran several times counts once.
    """
    await run_counting(shared_url, "rmw", target, TASKS)
    total = PROCESSES * TASKS * TURNS
    scopes = await peek_scopes(shared_url, *worker.where(target, 0, 0))
    assert scopes[target]["n"] == total
    assert scopes["bot"]["turns"] == total


# -- 2. incr never conflicts ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "target",
    [
        pytest.param("user-many", id="a-session-per-task"),
        pytest.param("user", id="two-sessions"),  # the layout
    ],
)
async def test_increments_from_four_processes_never_conflict(shared_url: str, target: str) -> None:
    """Every turn increments a bot and a user variable: one user, the bot's only one.

    With two sessions each one is used by all four processes at once.
    """
    stats = await run_counting(shared_url, "incr", target, TASKS)
    total = PROCESSES * TASKS * TURNS
    scopes = await peek_scopes(shared_url, *worker.where(target, 0, 0))
    assert (scopes["bot"]["n"], scopes["user"]["n"]) == (total, total)
    if "pgbouncer=true" in shared_url and target == "user":
        return  # no session lock there: turns of one session in 4 processes conflict, then rerun
    assert [s["conflicts"] for s in stats] == [0] * PROCESSES


async def test_kvs_additions_from_four_processes_never_conflict(shared_url: str) -> None:
    """Every turn adds one to the bot's key ``n`` (``kvs.add``), each task in a session of
    its own: a delta at commit, so no turn conflicts and no addition is lost."""
    stats = await run_counting(shared_url, "kvs-add", "user-many", TASKS)
    async with await Memory.open(shared_url) as mem:
        assert await mem.kvs.for_bot("b").get("n") == PROCESSES * TASKS * TURNS
    assert [s["conflicts"] for s in stats] == [0] * PROCESSES


# -- 3. SIGKILL during turns that write the KVS -----------------------------------------------
COMMAND = (sys.executable, "-m", "tests.exactness_worker", "turns-until-killed")


class Worker:
    """``python -m tests.exactness_worker turns-until-killed``, started ahead of its turn."""

    def __init__(self, url: str, ack_file: Path, run: int, logs: Path) -> None:
        self.stderr = logs / f"run{run}.err"
        with self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [*COMMAND, url, str(ack_file), str(run)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
            )

    def go(self) -> None:
        """Wait until the memory is open, then let the turns begin."""
        stdout, stdin = self.process.stdout, self.process.stdin
        assert stdout is not None
        assert stdin is not None
        ready, _, _ = select.select([stdout], [], [], DEADLINE)
        assert ready, f"the worker did not open the memory: {self.stderr.read_text()}"
        line = stdout.readline()
        assert line == b"ready\n", (line, self.stderr.read_text())
        stdin.write(b"go\n")
        stdin.flush()

    def running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> int:
        """SIGKILL the process; return its exit status."""
        if self.running():
            self.process.send_signal(signal.SIGKILL)
        return self.process.wait(timeout=DEADLINE)


def kill_repeatedly(url: str, ack_file: Path, logs: Path) -> int:
    """Run workers one after the other, each SIGKILLed 20–200 ms into its turns.

    The next worker is started while the current one runs, so that its interpreter
    start does not count. Return how many were killed while running.
    """
    rng = random.Random()
    waiting = [Worker(url, ack_file, run, logs) for run in range(2)]
    killed = 0
    deadline = time.monotonic() + DEADLINE
    try:
        for run in range(KILLS):
            assert time.monotonic() < deadline, "the kills took too long"
            current = waiting.pop(0)
            current.go()
            waiting.append(Worker(url, ack_file, run + 2, logs))
            time.sleep(rng.uniform(0.02, 0.2))  # a random moment of the real process's turns
            assert current.running(), current.stderr.read_text()  # it must not stop by itself
            assert current.kill() == -signal.SIGKILL
            killed += 1
    finally:
        for left in waiting:
            left.kill()
    return killed


async def test_sigkill_during_turns_leaves_no_partial_turn(shared_url: str, tmp_path: Path) -> None:
    """Each turn ``i`` sets user ``n = i`` (read-modify-write), KVS ``turn/i`` and adds
    one to KVS ``count``: all of it lands, or none of it."""
    await created(shared_url)
    ack_file = tmp_path / "acknowledged"
    ack_file.touch()
    started = time.perf_counter()
    killed = await asyncio.to_thread(kill_repeatedly, shared_url, ack_file, tmp_path)
    acknowledged = [int(line) for line in ack_file.read_text().split()]
    committed = (await peek_scopes(shared_url, worker.KILLED_USER))["user"].get("n", 0)
    async with await Memory.open(shared_url) as mem:
        kvs = mem.kvs.for_bot("b")
        count = await kvs.get("count", default=0)
        values = {key: await kvs.get(key) for key in await kvs.keys("turn/")}
    print(
        f"\n[kill {backend_of(shared_url)}] {killed} kills in "
        f"{time.perf_counter() - started:.1f}s: {len(acknowledged)} turns acknowledged, "
        f"{committed} committed"
    )
    assert killed >= 20
    assert acknowledged, "no turn was acknowledged between the kills"
    assert len(set(acknowledged)) == len(acknowledged)  # no turn number given twice
    # every acknowledged turn is there; the others only those a kill cut short
    assert set(acknowledged) <= set(range(1, committed + 1))
    assert committed - len(acknowledged) <= killed
    # memories and KVS agree: each committed turn wrote all of its parts
    assert count == committed
    assert values == {f"turn/{i}": i for i in range(1, committed + 1)}


# -- 4. message ids ----------------------------------------------------------------------------
async def test_a_message_id_sent_twice_runs_one_turn(shared_url: str) -> None:
    ran: list[str] = []

    async def body(state: TurnState) -> list[object]:
        ran.append("body")
        count = state.session.get("n", 0)
        assert isinstance(count, int)
        state.session["n"] = count + 1
        state.replies = ["hello", count + 1]
        return list(state.replies)

    async with await Memory.open(shared_url) as mem:
        assert await mem.run_turn(body, "b", "u1", message_id="m1") == ["hello", 1]
        with pytest.raises(DuplicateMessageError) as again:
            await mem.run_turn(body, "b", "u1", message_id="m1")
        assert again.value.replies == ["hello", 1]
        with pytest.raises(DuplicateMessageError) as in_a_with:
            async with mem.turn("b", "u1", message_id="m1") as state:
                ran.append("with")
                state.session["n"] = 100
        assert in_a_with.value.replies == ["hello", 1]
        assert ran == ["body"]
        assert await mem.run_turn(body, "b", "u1", message_id="m2") == ["hello", 2]
    assert (await peek_scopes(shared_url, "u1"))["session"]["n"] == 2


async def test_a_message_id_sent_by_two_processes_at_once_runs_one_turn(shared_url: str) -> None:
    """Both are inside the turn at once; one commits, the other gets its replies."""
    await created(shared_url)
    outcomes = await asyncio.to_thread(run_workers, worker.answer_once, (shared_url,), 2)
    print(f"\n[message id {backend_of(shared_url)}] {outcomes}")
    assert sorted(kind for kind, _ in outcomes) == ["duplicate", "ran"]
    first, second = (replies for _, replies in outcomes)
    assert first == second
    assert first[1] == 1
    assert (await peek_scopes(shared_url, "u1"))["session"]["n"] == 1


async def test_the_dialog_engine_answers_a_message_id_sent_twice_once(
    shared_url: str, tmp_path: Path
) -> None:
    counting = node(
        "count",
        enter=[{"action": "base.incrementVariable", "args": {"type": "user", "name": "n"}}],
        say="turn {{user.n}}",
        next=[{"node": "END"}],
    )
    data = write_bot(tmp_path / "data", {"main.flow.json": flow(counting)})
    async with await Memory.open(shared_url) as mem:
        engine = DialogEngine.open(mem, data)
        try:
            assert await engine.process("b", "u1", text="hi", message_id="m1") == ["turn 1"]
            assert await engine.process("b", "u1", text="hi", message_id="m1") == ["turn 1"]
            assert await engine.process("b", "u1", text="hi", message_id="m2") == ["turn 2"]
            assert await engine.process("b", "u1", text="hi", message_id="m1") == ["turn 1"]
        finally:
            await engine.close()
    assert (await peek_scopes(shared_url, "u1"))["user"]["n"] == 2


# -- 5. two memories on one SQLite file --------------------------------------------------------
async def test_two_memories_on_one_sqlite_file_count_every_turn_of_a_session(
    tmp_path: Path,
) -> None:
    """Two memories on one file in one process order a session's turns as two processes
    do (their file locks are those of their open files): none waits on a conflict, even
    after a third memory on the file was closed (which released every POSIX lock of the
    process, the first's included)."""
    url = f"sqlite:///{tmp_path}/one.db"
    async with await Memory.open(url) as first:
        await (await Memory.open(url)).close()
        async with await Memory.open(url) as second:
            running: list[int] = []
            overlaps = 0

            async def add_one(state: TurnState) -> None:
                nonlocal overlaps
                running.append(1)
                overlaps += len(running) > 1
                count = state.session.get("n", 0)
                assert isinstance(count, int)
                await asyncio.sleep(0)  # the other memory's turn gets a chance to interleave
                state.session["n"] = count + 1
                running.pop()

            async def turns(mem: Memory) -> None:
                for _ in range(200):
                    await mem.run_turn(add_one, "b", "u1")

            await asyncio.wait_for(asyncio.gather(turns(first), turns(second)), DEADLINE)
            assert first.stats.turns == second.stats.turns == 200
            assert (overlaps, first.stats.retries + second.stats.retries) == (0, 0)
    assert (await peek_scopes(url, "u1"))["session"]["n"] == 400


async def test_one_janitor_at_a_time_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/one.db"
    async with await Memory.open(url) as first, await Memory.open(url) as second:
        async with first.storage.janitor_lock() as held:
            assert held
            async with second.storage.janitor_lock() as also:
                assert not also
        async with second.storage.janitor_lock() as held_after:
            assert held_after  # released with the first one's


def test_four_processes_open_a_new_sqlite_database_at_once(tmp_path: Path) -> None:
    """Three new files, each opened by four processes at the same moment."""
    urls = [f"sqlite:///{tmp_path}/new{i}.db" for i in range(3)]
    assert run_workers(worker.open_together, (urls,), PROCESSES) == [3] * PROCESSES

    async def bot_counts() -> list[Any]:
        return [(await peek_scopes(url, "u0"))["bot"]["n"] for url in urls]

    assert asyncio.run(bot_counts()) == [PROCESSES] * 3
