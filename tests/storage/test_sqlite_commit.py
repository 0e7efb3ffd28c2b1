"""SQLite commits skip the row checks only when nothing in the database changed.

A turn's load notes what the database looked like (``PRAGMA data_version`` for other
connections, ``total_changes`` for its own); a commit that finds the same skips the
session, variable and scope checks, which could only pass. Anything else checks.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from botmemory import ConflictError, ManualClock, Memory
from botmemory.storage.sqlite import SqliteStorage
from botmemory.turns import TurnState

URL = "sqlite:///{}/memory.db"


async def test_a_change_by_another_memory_on_the_file_is_caught(
    tmp_path: Path, clock: ManualClock
) -> None:
    first = await Memory.open(URL.format(tmp_path), clock=clock)
    second = await Memory.open(URL.format(tmp_path), clock=clock)
    try:
        async with first.turn("b", "u1") as state:
            state.bot["n"] = 1
        with pytest.raises(ConflictError):
            async with first.turn("b", "u1") as slow:
                n = slow.bot["n"]
                async with second.turn("b", "u2") as fast:
                    fast.bot["n"] = 10
                slow.bot["n"] = n + 1  # type: ignore[operator]
        async with first.turn("b", "u3") as state:
            assert state.bot["n"] == 10
    finally:
        await first.close()
        await second.close()


async def test_a_change_by_any_other_connection_is_caught(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with await Memory.open(URL.format(tmp_path), clock=clock) as mem:
        async with mem.turn("b", "u1") as state:
            state.bot["n"] = 1
        with pytest.raises(ConflictError):
            async with mem.turn("b", "u1") as slow:
                assert len(slow.bot) == 1
                other = sqlite3.connect(f"{tmp_path}/memory.db", isolation_level=None)
                other.execute(  # a program of the user's adds a variable behind our back
                    "INSERT INTO variables (bot_id, scope, owner, name, value, changed_at, "
                    "version) SELECT bot_id, scope, owner, 'm', '2', changed_at, 7 "
                    "FROM variables WHERE scope = 'bot'"
                )
                other.close()
                slow.bot["count"] = 1


async def test_a_commit_of_this_connection_in_between_is_caught(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with await Memory.open(URL.format(tmp_path), clock=clock) as mem:
        kvs = mem.kvs.for_bot("b")
        with pytest.raises(ConflictError):
            async with mem.turn("b", "u1") as slow:
                assert "n" not in slow.user
                await kvs.set("unrelated", 1)  # this connection changes a row...
                async with mem.turn("b", "u1", thread_id="t") as fast:
                    fast.user["n"] = 1  # ...and then the row the slow turn read
                slow.user["n"] = 2


async def in_one_group_commit(
    mem: Memory, first: Callable[[TurnState], None], second: Callable[[TurnState], None]
) -> list[BaseException | None]:
    """Load two turns of different users, then commit both in one transaction, in order."""
    storage: SqliteStorage = mem.storage  # type: ignore[assignment]
    loaded, go = [asyncio.Event(), asyncio.Event()], asyncio.Event()

    async def turn(n: int, user: str, body: Callable[[TurnState], None]) -> None:
        async with mem.turn("b", user) as state:
            body(state)
            loaded[n].set()
            await go.wait()
            if n == 1:
                await asyncio.sleep(0)  # the first one queues its write first

    gate = threading.Event()
    tasks = [
        asyncio.ensure_future(turn(0, "u1", first)),
        asyncio.ensure_future(turn(1, "u2", second)),
    ]
    await asyncio.gather(*(event.wait() for event in loaded))
    storage._worker.post(gate.wait)  # the worker waits: both writes queue
    go.set()
    while len(storage._queued) < 2:  # noqa: ASYNC110 - filled by the tasks
        await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return [r if isinstance(r, BaseException) else None for r in results]


def add_one(state: TurnState) -> None:
    n = state.bot.get("n", 0)
    state.bot["n"] = n + 1  # type: ignore[operator]


@pytest.mark.parametrize(
    ("first", "second", "first_alone"),
    [
        pytest.param(add_one, add_one, {"n": 1}, id="read-modify-write"),
        pytest.param(
            lambda s: s.bot.update(new=1),
            lambda s: s.bot.update(count=len(s.bot)),
            {"n": 0, "new": 1},
            id="count",
        ),
        pytest.param(
            lambda s: s.bot.pop("n"),
            lambda s: s.bot.update(copy=s.bot.get("n")),
            {},
            id="delete",
        ),
    ],
)
async def test_a_turn_whose_reads_an_earlier_turn_of_its_group_commit_wrote_conflicts(
    tmp_path: Path,
    clock: ManualClock,
    first: Callable[[TurnState], None],
    second: Callable[[TurnState], None],
    first_alone: dict[str, int],
) -> None:
    async with await Memory.open(URL.format(tmp_path), clock=clock) as mem:
        async with mem.turn("b", "seed") as state:
            state.bot["n"] = 0
        results = await in_one_group_commit(mem, first, second)
        assert results[0] is None
        assert isinstance(results[1], ConflictError)
        async with mem.turn("b", "reader") as state:
            assert state.bot.to_dict() == first_alone  # the second one wrote nothing


async def test_turns_of_one_group_commit_that_touch_nothing_of_each_other_both_commit(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with await Memory.open(URL.format(tmp_path), clock=clock) as mem:
        async with mem.turn("b", "seed") as state:
            state.bot["n"] = 0

        def count(state: TurnState) -> None:
            state.user["bots"] = len(state.bot)
            state.bot.incr("n")

        results = await in_one_group_commit(mem, count, count)
        assert results == [None, None]
        async with mem.turn("b", "seed") as state:
            assert state.bot["n"] == 2


def batch_sizes(mem: Memory, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of turns of each group commit of ``mem``'s SQLite storage, from now on."""
    storage = mem.storage
    assert isinstance(storage, SqliteStorage)
    sizes: list[int] = []
    original = storage._apply_turns

    def counting(db: sqlite3.Connection, batch: list[object], *args: object) -> None:
        sizes.append(len(batch))
        original(db, batch, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(storage, "_apply_turns", counting)
    return sizes


async def test_a_group_commit_on_the_event_loop_leaves_what_its_slice_cannot_take(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no time to spare (a slice of 0), each pass of the loop commits one queued
    turn and leaves the others, in order, to the next passes: every turn commits, each
    once, and the loop never runs more than one commit at a time."""
    monkeypatch.setattr("botmemory.storage.sqlite.storage.SLICE", 0.0)
    async with await Memory.open(URL.format(tmp_path), clock=clock) as mem:
        queued = batch_sizes(mem, monkeypatch)

        async def visit(n: int) -> None:
            async with mem.turn("b", f"u{n}") as state:
                state.user["n"] = n
                state.bot.incr("visits")

        await asyncio.wait_for(asyncio.gather(*(visit(n) for n in range(40))), 60)
        assert max(queued) > 1  # turns did queue up together...
        assert len(queued) >= 40  # ...and were committed one pass each
        async with mem.turn("b", "u7") as state:
            assert (state.bot["visits"], state.user["n"]) == (40, 7)


async def test_a_lone_turn_commits_at_once_and_turns_in_flight_together_as_a_group(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn alone in the process commits inside its own commit call (no pass of the
    event loop to wait for); turns in flight together still share a transaction."""
    async with await Memory.open(URL.format(tmp_path), clock=clock) as mem:
        batches = batch_sizes(mem, monkeypatch)
        loop = asyncio.get_running_loop()
        later: list[object] = []
        call_soon = loop.call_soon

        def recording(callback: Callable[..., object], *args: object, **kw: object) -> object:
            later.append(getattr(callback, "__name__", callback))
            return call_soon(callback, *args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(loop, "call_soon", recording)
        async with mem.turn("b", "alone") as state:
            state.user["n"] = 1
            assert mem.storage.sole_turn()
        assert batches == [1]
        assert "_flush" not in later  # committed at once, not on the next pass

        async def visit(n: int) -> None:
            async with mem.turn("b", f"u{n}") as state:
                state.user["n"] = n

        await asyncio.wait_for(asyncio.gather(*(visit(n) for n in range(8))), 60)
        assert "_flush" in later
        assert max(batches) > 1  # in flight together: one transaction for several
        assert sum(batches) == 9
