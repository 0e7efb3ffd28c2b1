"""``Memory.end_session`` and janitor runs of the same process: the hooks run once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from botmemory import ManualClock, Memory
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


async def test_a_janitor_run_during_end_session_leaves_the_session_alone(mem: Memory) -> None:
    """The run starts while ``end_session`` is in the session's hook: the session has
    timed out and is still stored, so the run would call the hook a second time."""
    calls: list[str] = []
    gate = asyncio.Event()
    mem.janitor.on_session_end = counting(calls, gate)
    async with mem.turn("b", "u1") as state:
        state.session["topic"] = "billing"
    ending = asyncio.create_task(mem.end_session("b", "u1"))
    while not calls:  # noqa: ASYNC110 - the hook is called by another task
        await asyncio.sleep(0)
    report = await asyncio.wait_for(mem.janitor.run_once(), 10)
    assert report.sessions == 0
    gate.set()
    assert await asyncio.wait_for(ending, 10)
    assert len(calls) == 1
    assert (await mem.janitor.run_once()).sessions == 0
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session


async def test_a_janitor_run_during_end_session_leaves_its_dialog_alone(mem: Memory) -> None:
    """The same for the dialog-timeout hook of a session whose temp memory holds something."""
    dialogs: list[str] = []
    ends: list[str] = []
    gate = asyncio.Event()
    mem.janitor.on_dialog_timeout = counting(dialogs, gate)
    mem.janitor.on_session_end = counting(ends)
    async with mem.turn("b", "u1") as state:
        state.temp["step"] = 2
    ending = asyncio.create_task(mem.end_session("b", "u1"))
    while not dialogs:  # noqa: ASYNC110 - the hook is called by another task
        await asyncio.sleep(0)
    report = await asyncio.wait_for(mem.janitor.run_once(), 10)
    assert (report.temp, report.sessions) == (0, 0)
    gate.set()
    assert await asyncio.wait_for(ending, 10)
    assert (len(dialogs), len(ends)) == (1, 1)


async def test_a_hook_may_end_another_session_or_run_the_janitor(mem: Memory) -> None:
    """Nothing is held while the hooks run: a hook that ends the user's other thread,
    or runs the janitor, neither waits nor deadlocks."""
    calls: list[str] = []

    async def hook(sessions: list[SessionRecord]) -> None:
        for s in sessions:
            calls.append(s.key)
            if "t1" in s.key:
                assert await mem.end_session("b", "u1", thread_id="t2")
                await mem.janitor.run_once()

    mem.janitor.on_session_end = hook
    for thread in ("t1", "t2"):
        async with mem.turn("b", "u1", thread_id=thread) as state:
            state.session["x"] = 1
    assert await asyncio.wait_for(mem.end_session("b", "u1", thread_id="t1"), 10)
    assert len(calls) == 2


async def test_a_session_started_anew_during_the_hooks_stays_and_the_end_is_reported(
    mem: Memory, clock: ManualClock
) -> None:
    """A message arriving while the hooks run starts a new session: it is kept, and
    ``end_session`` still says that a session was alive and is ended."""

    async def message_meanwhile(sessions: list[SessionRecord]) -> None:
        async with mem.turn("b", "u1") as state:
            assert state.is_new_session
            assert "topic" not in state.session
            state.session["topic"] = "new"

    mem.janitor.on_session_end = message_meanwhile
    async with mem.turn("b", "u1") as state:
        state.session["topic"] = "billing"
    clock.advance(timedelta(minutes=1))
    assert await asyncio.wait_for(mem.end_session("b", "u1"), 10) is True
    async with mem.turn("b", "u1") as state:
        assert not state.is_new_session
        assert state.session["topic"] == "new"
    assert await mem.end_session("b", "u2") is False  # none was alive
