"""Looking inside a user's memory and editing it from outside a conversation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from botmemory import InvalidValueError, ManualClock, Memory, VariableView
from botmemory.storage.base import SessionRecord
from tests.conftest import DAY, START, OpenMemory


async def test_peek_shows_every_scope_with_expiries_and_changes_nothing(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory({"dataRetention": {"policies": {"mood": "1d"}}})
    async with mem.turn("b", "u1", message={"type": "text", "text": "hi"}) as state:
        state.user.update(mood="ok", name="Ada")
        state.session["topic"] = "x"
        state.temp["step"] = 1
        state.bot["motd"] = "hello"
    clock.advance(timedelta(seconds=60))
    view = await mem.peek("b", "u1")
    scopes = view.scopes
    assert view.now == START + 60
    assert view.session_id == "b::api::u1"
    assert scopes["user"] == {
        "mood": VariableView("ok", START + DAY),
        "name": VariableView("Ada", None),
    }
    assert scopes["session"]["topic"] == VariableView("x", START + 30 * 60)
    assert scopes["temp"]["step"] == VariableView(1, START + 5 * 60)
    assert scopes["bot"]["motd"] == VariableView("hello", None)
    clock.advance(timedelta(seconds=29 * 60))  # peeking did not keep the session alive
    assert (await mem.peek("b", "u1")).scopes["session"] == {}


async def test_edit_changes_memory_without_keeping_the_session_alive(
    mem: Memory, clock: ManualClock
) -> None:
    async with mem.turn("b", "u1") as state:
        state.session["topic"] = "x"
    clock.advance(timedelta(seconds=20 * 60))
    async with mem.edit("b", "u1") as state:
        state.session["topic"] = "edited"
        state.user["name"] = "Ada"
        state.bot["motd"] = "hi"
    clock.advance(timedelta(seconds=10 * 60))
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session
        assert state.user["name"] == "Ada"
        assert state.bot["motd"] == "hi"


async def test_edit_of_a_user_without_session_creates_none(mem: Memory) -> None:
    async with mem.edit("b", "new") as state:
        state.user["name"] = "Bob"
    data = await mem.export_user("b", "new")
    assert data.sessions == ()
    assert data.user["name"].value == "Bob"
    with pytest.raises(InvalidValueError, match="cannot be edited"):
        async with mem.edit("b", "new") as state:
            state.session["x"] = 1


async def test_stats_count_turns_and_errors(mem: Memory) -> None:
    async with mem.turn("b", "u1"):
        pass
    with pytest.raises(RuntimeError):
        async with mem.turn("b", "u1"):
            raise RuntimeError
    assert (mem.stats.turns, mem.stats.turn_errors, mem.stats.backend_errors) == (1, 1, 0)
    assert mem.stats.turn_seconds.total == 1
    assert mem.stats.lock_wait_seconds.total == 2


async def test_a_failing_stats_sink_never_fails_a_turn(
    mem: Memory, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def lock_waited(self, seconds: float) -> None:
            raise RuntimeError("sink bug")

        def turn_done(self, seconds: float) -> None:
            raise RuntimeError("sink bug")

    mem.stats.sinks.append(Broken())  # type: ignore[arg-type]
    async with mem.turn("b", "u1") as state:
        state.user["kept"] = 1
    async with mem.turn("b", "u1") as state:
        assert state.user["kept"] == 1
    assert mem.stats.turns == 2
    assert "sink bug" in caplog.text


async def test_edit_of_temp_after_the_dialog_timed_out_is_refused(
    mem: Memory, clock: ManualClock
) -> None:
    async with mem.turn("b", "u1") as state:
        state.session["s"] = 1
    clock.advance(timedelta(seconds=10 * 60))  # the dialog (5m) is over, the session (30m) is not
    with pytest.raises(InvalidValueError, match="dialog"):
        async with mem.edit("b", "u1") as state:
            state.temp["step"] = "admin"


async def test_edit_of_temp_within_the_dialog_is_seen_by_the_next_turn(
    mem: Memory, clock: ManualClock
) -> None:
    async with mem.turn("b", "u1") as state:
        state.session["s"] = 1
    clock.advance(timedelta(seconds=60))
    async with mem.edit("b", "u1") as state:
        state.temp["step"] = "admin"
    clock.advance(timedelta(seconds=60))
    async with mem.turn("b", "u1") as state:
        assert dict(state.temp) == {"step": "admin"}


async def test_end_session_runs_the_hook_and_drops_the_session(
    mem: Memory, clock: ManualClock
) -> None:
    ended: list[str] = []

    async def on_session_end(sessions: list[SessionRecord]) -> None:
        for s in sessions:
            async with mem.turn(s.bot_id, "u1", resume=True) as state:
                ended.append(str(state.session["topic"]))

    mem.janitor.on_session_end = on_session_end
    async with mem.turn("b", "u1") as state:
        state.session["topic"] = "billing"
        state.user["name"] = "Ada"
    assert await mem.end_session("b", "u1")
    assert ended == ["billing"]
    assert not await mem.end_session("b", "u1")
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session
        assert state.user["name"] == "Ada"
    clock.advance(timedelta(seconds=31 * 60))
    assert not await mem.end_session("b", "u1")


async def test_kvs_entry_gives_the_expiry(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("k", {"a": 1}, expiry="1h")
    entry = await kvs.entry("k")
    assert entry is not None
    assert (entry.value, entry.expires_at) == ({"a": 1}, START + 3600)
    assert await kvs.entry("missing") is None


async def test_janitor_totals_count_every_run(mem: Memory, clock: ManualClock) -> None:
    await mem.kvs.for_bot("b").set("k", 1, expiry="1s")
    clock.advance(timedelta(seconds=2))
    await mem.janitor.run_once()
    await mem.janitor.run_once()
    assert mem.janitor.totals.runs == 2
    assert mem.janitor.totals.removed["kvs"] == 1


async def test_ping(mem: Memory) -> None:
    await mem.storage.ping()
