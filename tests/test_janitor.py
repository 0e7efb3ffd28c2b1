"""The janitor, on every backend."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

import pytest

from botmemory import ManualClock, Memory
from botmemory.durations import parse_duration
from botmemory.janitor import SessionHook
from botmemory.storage.base import SessionRecord, Storage
from tests.conftest import DAY, OpenMemory


async def fill(mem: Memory, users: int, kvs_keys: int) -> None:
    for i in range(users):
        async with mem.turn("b", f"u{i}") as state:
            state.user["mood"] = "ok"
            state.user["name"] = f"n{i}"
            state.session["s"] = i
            state.temp["t"] = i
    kvs = mem.kvs.for_bot("b")
    for i in range(kvs_keys):
        await kvs.set(f"k{i}", i, expiry="1h")


@pytest.mark.parametrize(
    ("count", "batch"), [(1, 250), (249, 250), (250, 250), (251, 250), (600, 100)]
)
async def test_one_run_removes_everything_expired_in_batches(
    open_memory: OpenMemory, clock: ManualClock, count: int, batch: int
) -> None:
    mem = await open_memory({"dataRetention": {"policies": {"mood": "1h"}}})
    mem.janitor.batch_size = batch
    await fill(mem, count, count)
    clock.advance(timedelta(seconds=DAY))
    report = await mem.janitor.run_once()
    assert (report.user_variables, report.sessions, report.temp, report.kvs) == (
        count,
        count,
        count,  # the idle temp memories, emptied before their sessions go
        count,
    )
    again = await mem.janitor.run_once()
    assert again.total == 0
    async with mem.turn("b", "u0") as state:
        assert dict(state.user) == {"name": "n0"}


async def test_idle_temp_is_emptied_while_the_session_lives(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory({"dialog": {"timeoutInterval": "5m", "sessionTimeoutInterval": "1h"}})
    await fill(mem, 3, 0)
    clock.advance(timedelta(seconds=6 * 60))
    report = await mem.janitor.run_once()
    assert (report.temp, report.sessions) == (3, 0)
    async with mem.turn("b", "u0") as state:
        assert not state.is_new_session
        assert state.session["s"] == 0
        assert dict(state.temp) == {}


async def test_janitor_keeps_what_has_not_expired(mem: Memory, clock: ManualClock) -> None:
    await fill(mem, 5, 5)
    clock.advance(timedelta(seconds=60))
    assert (await mem.janitor.run_once()).total == 0
    async with mem.turn("b", "u1") as state:
        assert state.temp["t"] == 1


async def test_janitor_runs_never_overlap(mem: Memory, clock: ManualClock) -> None:
    await fill(mem, 10, 10)
    clock.advance(timedelta(seconds=DAY))
    reports = await asyncio.gather(*(mem.janitor.run_once() for _ in range(3)))
    assert sum(r.sessions for r in reports) == 10
    assert sum(r.kvs for r in reports) == 10


async def test_overlapping_janitor_steps_count_each_temp_memory_once(
    mem: Memory, clock: ManualClock
) -> None:
    await fill(mem, 5, 0)
    clock.advance(timedelta(seconds=DAY))
    due = await mem.storage.expired_temps(clock(), 100)  # two runs that read the same batch
    async with mem.turn("b", "u1", resume=True) as state:  # as the dialog-timeout hook does
        state.end_flow()  # a turn emptied this one since: it still counts, once
    counts = await asyncio.gather(*(mem.storage.clear_temps(due) for _ in range(2)))
    assert sum(counts) == 5
    assert await mem.storage.clear_temps(due) == 0  # a late third one counts nothing either
    async with mem.turn("b", "u0") as state:
        assert dict(state.temp) == {}


async def test_janitor_logs_a_one_line_summary(
    mem: Memory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    await fill(mem, 2, 1)
    clock.advance(timedelta(seconds=DAY))
    with caplog.at_level(logging.INFO, logger="botmemory.janitor"):
        await mem.janitor.run_once()
    assert any(
        "janitor removed 0 user variables" in r.message and "2 sessions" in r.message
        for r in caplog.records
    )


async def test_the_loop_runs_on_its_own_and_survives_errors(
    open_memory: OpenMemory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    mem = await open_memory({"dataRetention": {"janitorInterval": "100ms"}})
    storage: Storage = mem.storage
    calls = 0
    real = storage.delete_expired_kvs

    async def flaky(now: float, limit: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk on fire")
        return await real(now, limit)

    storage.delete_expired_kvs = flaky  # type: ignore[method-assign]
    await mem.kvs.for_bot("b").set("k", 1, expiry="1s")
    clock.advance(timedelta(seconds=2))
    with caplog.at_level(logging.INFO, logger="botmemory.janitor"):
        await mem.janitor.start()
        assert mem.janitor.running
        for _ in range(200):  # the real loop waits 100 ms between runs
            if len(mem.janitor.history) >= 2:
                break
            await asyncio.sleep(0.01)
        await mem.janitor.stop()
    assert not mem.janitor.running
    assert any("disk on fire" in (r.exc_text or "") for r in caplog.records)
    failed, succeeded = list(mem.janitor.history)[:2]
    assert failed.error == "disk on fire"
    assert succeeded.error is None
    assert succeeded.kvs == 1
    assert mem.janitor.last_report is not None


async def test_hooks_see_timed_out_sessions_before_they_are_removed(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory({"dialog": {"timeoutInterval": "5m", "sessionTimeoutInterval": "10m"}})
    await fill(mem, 2, 0)
    seen: list[tuple[str, object, object]] = []

    async def on_dialog_timeout(sessions: list[SessionRecord]) -> None:
        for s in sessions:
            channel, user_id, thread_id = json.loads(s.key)
            async with mem.turn(s.bot_id, user_id, channel, thread_id, resume=True) as state:
                assert state.temp_expired
                assert not state.session_expired
                seen.append(("timeout", state.temp["t"], state.session["s"]))
                state.user["timed_out"] = True
                state.end_flow()

    async def on_session_end(sessions: list[SessionRecord]) -> None:
        for s in sessions:
            _, user_id, _ = json.loads(s.key)
            async with mem.turn(s.bot_id, user_id, resume=True) as state:
                assert state.session_expired
                seen.append(("end", None, state.session["s"]))

    mem.janitor.on_dialog_timeout = on_dialog_timeout
    mem.janitor.on_session_end = on_session_end
    clock.advance(timedelta(seconds=6 * 60))
    report = await mem.janitor.run_once()
    assert (report.temp, report.sessions) == (2, 0)
    assert sorted(seen) == [("timeout", 0, 0), ("timeout", 1, 1)]
    clock.advance(timedelta(seconds=5 * 60))  # the resumed turns did not keep the sessions alive
    report = await mem.janitor.run_once()
    assert (report.temp, report.sessions) == (0, 2)
    assert sorted(seen)[:2] == [("end", None, 0), ("end", None, 1)]
    async with mem.turn("b", "u0") as state:
        assert state.is_new_session
        assert state.user["timed_out"] is True


async def test_temp_never_outlives_its_session(open_memory: OpenMemory, clock: ManualClock) -> None:
    mem = await open_memory({"dialog": {"timeoutInterval": "1h", "sessionTimeoutInterval": "10m"}})
    timeouts: list[str] = []

    async def on_dialog_timeout(sessions: list[SessionRecord]) -> None:
        timeouts.extend(s.key for s in sessions)

    mem.janitor.on_dialog_timeout = on_dialog_timeout
    await fill(mem, 1, 0)
    clock.advance(timedelta(seconds=10 * 60))
    report = await mem.janitor.run_once()
    assert (report.temp, report.sessions, len(timeouts)) == (1, 1, 1)


async def test_a_failing_hook_does_not_keep_expired_data(
    mem: Memory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(sessions: list[SessionRecord]) -> None:
        raise RuntimeError("hook bug")

    mem.janitor.on_dialog_timeout = broken
    await fill(mem, 1, 0)
    clock.advance(timedelta(seconds=DAY))
    report = await mem.janitor.run_once()
    assert (report.temp, report.sessions) == (1, 1)
    assert any("hook bug" in (r.exc_text or "") for r in caplog.records)


async def test_added_hooks_run_in_order_before_the_own_hook_until_removed(
    mem: Memory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def hook(name: str, fail: bool = False) -> SessionHook:
        async def called(sessions: list[SessionRecord]) -> None:
            calls.append(f"{name}:{len(sessions)}")
            if fail:
                raise RuntimeError(f"{name} failed")

        return called

    first = mem.janitor.add_hooks(on_session_end=hook("first", fail=True))
    mem.janitor.add_hooks(on_dialog_timeout=hook("timeout"), on_session_end=hook("second"))
    mem.janitor.on_session_end = hook("own")
    await fill(mem, 1, 0)
    clock.advance(timedelta(seconds=DAY))
    assert (await mem.janitor.run_once()).sessions == 1
    assert calls == ["timeout:1", "first:1", "second:1", "own:1"]  # a failure stops no one
    assert any("first failed" in (r.exc_text or "") for r in caplog.records)
    first.remove()
    first.remove()  # twice: nothing more
    calls.clear()
    await fill(mem, 1, 0)
    clock.advance(timedelta(seconds=DAY))
    await mem.janitor.run_once()
    assert calls == ["timeout:1", "second:1", "own:1"]


async def test_stopping_ends_a_run_after_its_current_batch(mem: Memory, clock: ManualClock) -> None:
    mem.janitor.batch_size = 10
    await fill(mem, 25, 30)
    clock.advance(timedelta(seconds=DAY))
    entered, release = asyncio.Event(), asyncio.Event()
    batches: list[int] = []

    async def on_session_end(sessions: list[SessionRecord]) -> None:
        batches.append(len(sessions))
        entered.set()
        await release.wait()

    mem.janitor.on_session_end = on_session_end
    await mem.janitor.start()
    await entered.wait()  # the loop's first run is inside its first batch of sessions
    stopping = asyncio.create_task(mem.janitor.stop())
    await asyncio.sleep(0)
    assert not stopping.done()  # it waits for the batch
    release.set()
    await stopping
    assert batches == [10]  # the batch it was in finished, hooks and removal; no other
    assert not mem.janitor.running
    assert len(await mem.storage.expired_sessions(clock(), 100)) == 15
    report = mem.janitor.last_report
    assert report is not None
    assert (report.sessions, report.kvs) == (10, 0)
    assert (await mem.janitor.run_once()).sessions == 15  # a later run goes to the end


async def test_a_stop_past_its_grace_cancels_the_run(mem: Memory, clock: ManualClock) -> None:
    await fill(mem, 2, 0)
    clock.advance(timedelta(seconds=DAY))
    entered = asyncio.Event()

    async def stuck(sessions: list[SessionRecord]) -> None:
        entered.set()
        await asyncio.Event().wait()  # never returns

    mem.janitor.on_session_end = stuck
    await mem.janitor.start()
    await entered.wait()
    await mem.janitor.stop(grace=parse_duration("10ms"))
    assert not mem.janitor.running
    assert len(await mem.storage.expired_sessions(clock(), 100)) == 2  # nothing half done


async def test_a_cancelled_stop_still_ends_the_loop(mem: Memory, clock: ManualClock) -> None:
    await fill(mem, 2, 0)
    clock.advance(timedelta(seconds=DAY))
    entered = asyncio.Event()

    async def slow(sessions: list[SessionRecord]) -> None:
        entered.set()
        await asyncio.Event().wait()

    mem.janitor.on_session_end = slow
    await mem.janitor.start()
    await entered.wait()
    stopping = asyncio.create_task(mem.janitor.stop())
    await asyncio.sleep(0)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    loops = [t for t in asyncio.all_tasks() if t.get_name() == "botmemory-janitor"]
    assert loops == []  # no loop left running behind the memory's back
    assert not mem.janitor.running


async def test_sessions_only_runs_leave_retention_for_the_full_run(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory(
        {"dataRetention": {"janitorInterval": "10m", "policies": {"mood": "1h"}}},
        {"fast": {"dialog": {"janitorInterval": "2s"}}},
    )
    assert (mem.janitor.interval, mem.janitor.session_interval) == (600, 2)
    await fill(mem, 1, 1)
    clock.advance(timedelta(seconds=DAY))
    report = await mem.janitor.run_once(sessions_only=True)
    assert (report.temp, report.sessions, report.user_variables, report.kvs) == (1, 1, 0, 0)
    report = await mem.janitor.run_once()
    assert (report.user_variables, report.kvs) == (1, 1)


async def test_a_session_with_a_turn_running_is_left_for_the_next_run(
    mem: Memory, clock: ManualClock
) -> None:
    async with mem.turn("b", "u1") as state:
        state.session["keep"] = 1
    clock.advance(timedelta(seconds=29 * 60))
    loaded, done = asyncio.Event(), asyncio.Event()

    async def turn_at_the_boundary() -> None:
        async with mem.turn("b", "u1") as state:
            assert state.session["keep"] == 1
            loaded.set()
            await done.wait()

    task = asyncio.create_task(turn_at_the_boundary())
    await loaded.wait()
    clock.advance(timedelta(seconds=2 * 60))  # the session timed out while the turn ran
    assert (await mem.janitor.run_once()).sessions == 0
    done.set()
    await task
    async with mem.turn("b", "u1") as state:
        assert not state.is_new_session
        assert state.session["keep"] == 1


async def test_progress_is_told_after_every_batch(mem: Memory, clock: ManualClock) -> None:
    mem.janitor.batch_size = 10
    await fill(mem, 0, 25)
    clock.advance(timedelta(seconds=DAY))
    seen: list[tuple[str, int]] = []
    report = await mem.janitor.run_once(progress=lambda kind, n: seen.append((kind, n)))
    assert report.kvs == 25
    assert [n for kind, n in seen if kind == "kvs"] == [10, 20, 25]


async def test_shortened_timeouts_are_enforced_on_sessions_stored_before(
    backend: str, open_memory: OpenMemory, clock: ManualClock
) -> None:
    if backend == "memory":
        pytest.skip("memory:// keeps nothing once closed")
    first = await open_memory({"dialog": {"sessionTimeoutInterval": "1d", "timeoutInterval": "1h"}})
    async with first.turn("b", "u1") as state:
        state.session["secret"] = "x"
        state.temp["step"] = 1
    await first.close()
    second = await open_memory(
        {"dialog": {"sessionTimeoutInterval": "30m", "timeoutInterval": "5m"}}
    )
    clock.advance(timedelta(seconds=6 * 60))
    report = await second.janitor.run_once()
    assert (report.temp, report.sessions) == (1, 0)
    clock.advance(timedelta(seconds=30 * 60))
    report = await second.janitor.run_once()
    assert report.sessions == 1
    assert (await second.export_user("b", "u1")).sessions == ()


async def test_unchanged_timeouts_leave_stored_timers_alone(
    backend: str, open_memory: OpenMemory, clock: ManualClock
) -> None:
    if backend == "memory":
        pytest.skip("memory:// keeps nothing once closed")
    first = await open_memory()
    async with first.turn("b", "u1") as state:
        state.session["kept"] = 1
    await first.close()
    second = await open_memory()
    clock.advance(timedelta(seconds=29 * 60))
    assert (await second.janitor.run_once()).sessions == 0
    async with second.turn("b", "u1") as state:
        assert state.session["kept"] == 1


async def test_expired_keys_spread_among_live_ones_all_go_in_one_run(
    mem: Memory, clock: ManualClock
) -> None:
    mem.janitor.batch_size = 4
    kvs = mem.kvs.for_bot("b")
    lives = {f"k{i:02}" for i in range(0, 40, 3)} | {"k99"}
    for i in range(40):  # the others expire after 60-100 s, in an order unrelated to the keys
        seconds = 7200 if f"k{i:02}" in lives else 60 + (i * 7) % 5 * 10
        await kvs.set(f"k{i:02}", i, expiry=f"{seconds}s")
    await kvs.set("k99", 99, expiry="101s")  # just after the run's time: it stays
    clock.advance(timedelta(seconds=100))  # the last ones expire right now: they go
    report = await mem.janitor.run_once()
    assert report.kvs == 40 - len(lives) + 1
    assert set(await kvs.keys()) == lives
    clock.advance(timedelta(seconds=7200))
    assert (await mem.janitor.run_once()).kvs == len(lives)


async def test_a_run_while_another_process_runs_the_janitor_says_it_was_skipped(
    open_memory: OpenMemory, backend: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    if backend == "memory":
        pytest.skip("a memory:// store has one process: no other janitor shares it")
    mem = await open_memory()
    other = await open_memory()  # another process on the same database
    await fill(mem, 2, 2)
    clock.advance(timedelta(seconds=DAY))
    async with other.storage.janitor_lock() as held:
        assert held
        with caplog.at_level(logging.INFO, logger="botmemory.janitor"):
            report = await mem.janitor.run_once()
    assert report.skipped
    assert report.total == 0
    assert report.summary() == "janitor run skipped: another process is running the janitor"
    assert "janitor run skipped" in caplog.text
    assert "janitor removed" not in caplog.text
    assert report.as_dict()["skipped"] is True
    assert (mem.janitor.last_report, mem.janitor.totals.runs) == (None, 0)  # not a run
    after = await mem.janitor.run_once()  # the lock is free: the expired rows are still there
    assert not after.skipped
    assert (after.sessions, after.kvs) == (2, 2)
    assert after.summary().startswith("janitor removed 0 user variables")
