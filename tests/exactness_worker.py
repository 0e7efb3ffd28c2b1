"""What the processes of ``test_exactness.py`` run: importable by a fresh interpreter.

Two kinds of entry points:

- targets of "spawn" processes (:func:`count_in_turns`, :func:`answer_once`,
  :func:`open_together`): they wait for the others at a barrier, work, and put
  ``(number, result, error)`` on a queue;
- ``python -m tests.exactness_worker turns-until-killed URL ACK_FILE RUN``: turns one
  after the other until the parent kills the process, each acknowledged (one line
  appended to ``ACK_FILE`` and fsynced) once its commit returned.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from botmemory import DuplicateMessageError, Memory
from botmemory.scopes import ScopeMemory
from botmemory.turns import TurnState

DEADLINE = 120.0
"""Seconds a worker waits for the others at the start barrier."""

DEFAULTS: Mapping[str, Any] = {}
"""The configuration of the counting workers: the defaults, ``concurrency.maxAttempts``
(10) included, hold under the issue's contention (4 processes x 64 tasks)."""

KILLED_USER = "killed"
"""The user of the turns of ``turns-until-killed``."""


def _reporting(number: int, start: Any, results: Any, work: Callable[[], object]) -> None:
    """Run ``work``; put its result or the traceback on ``results``.

    On an error the barrier is broken, so that the other workers stop waiting at once.
    """
    try:
        results.put((number, work(), None))
    except BaseException:
        start.abort()
        results.put((number, None, traceback.format_exc()))
        raise


# -- counting turns, many tasks per process ---------------------------------------------------
def where(target: str, process: int, task: int) -> tuple[str, str | None]:
    """The user and thread of a task's turns, for the variable counted.

    ``bot``: a user of its own per task. ``user``: one user, from two sessions (two
    threads of one channel). ``session``: one session for every task. ``user-many``:
    one user, from a session of its own per task.
    """
    if target == "bot":
        return f"p{process}-t{task}", None
    if target == "user":
        return "u1", f"thread-{task % 2}"
    if target == "session":
        return "u1", None
    if target == "user-many":
        return "u1", f"p{process}-t{task}"
    raise ValueError(target)


def _scope(state: TurnState, target: str) -> ScopeMemory:
    scopes = {"bot": state.bot, "user": state.user, "session": state.session}
    return scopes[target.removesuffix("-many")]


def _body(mode: str, target: str) -> Callable[[TurnState], Awaitable[None]]:
    async def read_modify_write(state: TurnState) -> None:
        scope = _scope(state, target)
        count = scope.get("n", 0)
        assert isinstance(count, int)
        scope["n"] = count + 1
        state.bot.incr("turns")  # applied once per turn, however often the body ran

    async def increment(state: TurnState) -> None:
        state.bot.incr("n")
        state.user.incr("n")

    async def add_in_store(state: TurnState) -> None:
        await state.kvs.add("n")

    return {"rmw": read_modify_write, "incr": increment, "kvs-add": add_in_store}[mode]


async def _count(
    url: str,
    config: Mapping[str, Any] | None,
    mode: str,
    target: str,
    sizes: Any,
    number: int,
    start: Any,
) -> dict[str, int]:
    tasks, turns = sizes
    body = _body(mode, target)

    async def task(mem: Memory, index: int) -> None:
        user, thread = where(target, number, index)
        for _ in range(turns):
            await mem.run_turn(body, "b", user, "api", thread)

    async with await Memory.open(url, config) as mem:
        # every process has the database open before any turn: on SQLite a process that
        # was alone on it takes up to 50 ms to see the others (docs/backends.md)
        await asyncio.to_thread(start.wait, DEADLINE)
        await asyncio.gather(*(task(mem, i) for i in range(tasks)))
        stats = mem.stats
        return {
            "turns": stats.turns,
            "retries": stats.retries,
            "conflicts": stats.conflicts,
            "turn_errors": stats.turn_errors,
        }


def count_in_turns(
    url: str,
    config: Mapping[str, Any] | None,
    mode: str,
    target: str,
    sizes: tuple[int, int],
    number: int,
    start: Any,
    results: Any,
) -> None:
    """Open, wait for the others, run ``sizes = (tasks, turns)`` counting turns, put the stats."""

    def work() -> object:
        return asyncio.run(_count(url, config, mode, target, sizes, number, start))

    _reporting(number, start, results, work)


# -- opening new databases together ------------------------------------------------------------
async def _count_in_bot(state: TurnState) -> None:
    state.bot.incr("n")


def open_together(urls: list[str], number: int, start: Any, results: Any) -> None:
    """Open each of ``urls`` (new databases) at once with the others; count one turn."""

    async def open_and_count(url: str) -> None:
        async with await Memory.open(url) as mem:
            await mem.run_turn(_count_in_bot, "b", f"u{number}")

    def work() -> object:
        for url in urls:
            start.wait(DEADLINE)
            asyncio.run(open_and_count(url))
        return len(urls)

    _reporting(number, start, results, work)


# -- one message id from two processes ---------------------------------------------------------
def answer_once(url: str, number: int, start: Any, results: Any) -> None:
    """Send message ``m1`` of session (b, u1) once; put ``(outcome, replies)``."""

    async def body(state: TurnState) -> list[object]:
        count = state.session.get("n", 0)
        assert isinstance(count, int)
        await asyncio.sleep(0.05)  # both processes are inside their turn at once
        state.session["n"] = count + 1
        state.replies = [f"answered by {number}", count + 1]
        return list(state.replies)

    async def main() -> tuple[str, list[object]]:
        async with await Memory.open(url) as mem:
            await asyncio.to_thread(start.wait, DEADLINE)
            try:
                return "ran", await mem.run_turn(body, "b", "u1", message_id="m1")
            except DuplicateMessageError as exc:
                return "duplicate", exc.replies

    _reporting(number, start, results, lambda: asyncio.run(main()))


# -- turns until killed ------------------------------------------------------------------------
async def _turns_until_killed(url: str, ack_file: str, run: int) -> None:
    """Turns of user ``killed`` in sessions of this run; each acknowledged once committed.

    Turn ``i`` is the one that finds ``user["n"] == i - 1``: it sets ``n = i``, writes
    KVS key ``turn/i`` and adds one to KVS ``count``. Two tasks, two sessions of the
    user, so turns of one process also conflict and run again. The process opens the
    memory, prints ``ready`` and starts on a ``go`` line from stdin.
    """
    ack = os.open(ack_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    async def body(state: TurnState) -> int:
        count = state.user.get("n", 0)
        assert isinstance(count, int)
        number = count + 1
        state.user["n"] = number
        await state.kvs.set(f"turn/{number}", number)
        await state.kvs.incr("count")
        return number

    async def loop(mem: Memory, thread: str) -> None:
        while True:
            number = await mem.run_turn(body, "b", KILLED_USER, "api", thread)
            os.write(ack, f"{number}\n".encode())
            os.fsync(ack)

    async with await Memory.open(url, DEFAULTS) as mem:
        print("ready", flush=True)
        if await asyncio.to_thread(sys.stdin.readline) != "go\n":
            return
        await asyncio.gather(loop(mem, f"run{run}-a"), loop(mem, f"run{run}-b"))


def main(argv: list[str]) -> None:
    command, *args = argv
    if command != "turns-until-killed":
        raise SystemExit(f"unknown command {command!r}")
    url, ack_file, run = args
    asyncio.run(_turns_until_killed(url, ack_file, int(run)))


if __name__ == "__main__":
    main(sys.argv[1:])
