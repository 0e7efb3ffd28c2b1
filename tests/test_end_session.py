"""``Memory.end_session`` and janitor runs reaching the same session: its hooks run once."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from botmemory import ManualClock, Memory
from botmemory.durations import Seconds
from botmemory.janitor import SessionHook
from botmemory.storage.base import SessionRecord


def counting(calls: list[str], gate: asyncio.Event | None = None) -> SessionHook:
    async def hook(sessions: list[SessionRecord]) -> None:
        for s in sessions:
            calls.append(s.key)
            if gate is not None:
                await gate.wait()  # the hook takes a while: a run may start meanwhile

    return hook


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_janitor_run_during_end_session_does_not_end_it_again(mem: Memory) -> None:
    """The run starts while ``end_session`` is in the session's hook: the session is
    timed out and still stored, so without the janitor's lock the run would call the
    hook a second time."""
    calls: list[str] = []
    gate = asyncio.Event()
    mem.janitor.on_session_end = counting(calls, gate)
    async with mem.turn("b", "u1") as state:
        state.session["topic"] = "billing"
    ending = asyncio.create_task(mem.end_session("b", "u1"))
    while not calls:  # noqa: ASYNC110 - the hook is called by another task
        await asyncio.sleep(0)
    run = asyncio.create_task(mem.janitor.run_once())
    await settle()
    gate.set()
    assert await asyncio.wait_for(ending, 10)
    report = await asyncio.wait_for(run, 10)
    assert len(calls) == 1
    assert report.sessions == 0
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session


async def test_end_session_waits_for_a_janitor_run_of_this_process(
    mem: Memory, clock: ManualClock
) -> None:
    """A run that started at the same instant ends the session itself (it is timed out
    by then); ``end_session`` waits for it rather than ending it a second time."""
    calls: list[str] = []
    gate = asyncio.Event()
    mem.janitor.on_session_end = counting(calls)
    held: list[str] = []
    mem.janitor.on_dialog_timeout = counting(held, gate)  # keeps the run busy
    async with mem.turn("b", "u2") as state:
        state.temp["step"] = 1
    clock.advance(timedelta(minutes=6))  # u2's dialog (5 min) is over
    async with mem.turn("b", "u1") as state:
        state.session["topic"] = "billing"
    run = asyncio.create_task(mem.janitor.run_once())
    while not held:  # noqa: ASYNC110 - the run calls the hook
        await asyncio.sleep(0)
    ending = asyncio.create_task(mem.end_session("b", "u1"))
    while (await mem.peek("b", "u1")).session.alive:  # noqa: ASYNC110 - ended by another task
        await asyncio.sleep(0)
    await settle()
    assert calls == []  # waiting for the run
    gate.set()
    assert await asyncio.wait_for(ending, 10)
    report = await asyncio.wait_for(run, 10)
    assert len(calls) == 1  # once, by the run
    assert report.sessions == 1


@contextlib.asynccontextmanager
async def session_beside_another_run(
    tmp_path: Path, clock: ManualClock
) -> AsyncIterator[tuple[Memory, list[str], int]]:
    """A SQLite memory with a live session u1 (its ends counted), and the janitor's
    lock file taken as another process's run does (``flock``): close the descriptor
    to end that run."""
    path = tmp_path / "m.db"
    async with await Memory.open(f"sqlite:///{path}", clock=clock) as mem:
        calls: list[str] = []
        mem.janitor.on_session_end = counting(calls)
        async with mem.turn("b", "u1") as state:
            state.session["topic"] = "billing"
        fd = os.open(f"{path}.janitor.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield mem, calls, fd


async def test_end_session_leaves_the_session_to_another_process_s_janitor_run(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's run holds the janitor's lock longer than ``END_WAIT``: the
    hooks do not run here; a later run ends the session, once."""
    monkeypatch.setattr("botmemory.janitor.END_WAIT", Seconds(0.2))
    async with session_beside_another_run(tmp_path, clock) as (mem, calls, fd):
        try:
            assert await mem.end_session("b", "u1")
            assert calls == []
        finally:
            os.close(fd)  # that run is over
        report = await mem.janitor.run_once()
        assert (report.sessions, len(calls)) == (1, 1)
        assert not await mem.end_session("b", "u1")


async def test_end_session_ends_it_once_another_process_s_run_lets_go(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with session_beside_another_run(tmp_path, clock) as (mem, calls, fd):
        ending = asyncio.create_task(mem.end_session("b", "u1"))
        await asyncio.sleep(0.2)  # real time: end_session polls a real file lock
        assert calls == []
        os.close(fd)
        assert await asyncio.wait_for(ending, 10)
        assert len(calls) == 1
        assert (await mem.janitor.run_once()).sessions == 0
