"""The synchronous facade, for scripts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from botmemory import ManualClock, SessionView, SyncMemory, VariableView
from botmemory.turns import TurnState
from tests.conftest import DAY, START


def test_sync_memory_does_what_memory_does(tmp_path: Path, clock: ManualClock) -> None:
    config = {"dataRetention": {"policies": {"mood": "1d"}}}
    with SyncMemory.open(f"sqlite:///{tmp_path}/m.db", config=config, clock=clock) as mem:
        with mem.turn("b", "u1", message={"type": "text", "text": "hi"}) as state:
            state.user["mood"] = "ok"
            state.user["name"] = "Ada"
        with pytest.raises(RuntimeError), mem.turn("b", "u1") as state:
            state.user["name"] = "lost"
            raise RuntimeError
        kvs = mem.kvs("b")
        kvs.set("k", 1, expiry="1h")
        assert kvs.incr("k") == 2
        assert kvs.keys() == ["k"]
        assert mem.kvs().get("k") is None
        clock.advance(timedelta(seconds=DAY))
        report = mem.run_janitor()
        assert (report.user_variables, report.kvs) == (1, 1)
        assert mem.export_user("b", "u1").user["name"].value == "Ada"
        assert mem.forget_user("b", "u1").user_variables == 1


def test_sync_memory_peeks_edits_and_ends_sessions(tmp_path: Path, clock: ManualClock) -> None:
    with SyncMemory.open(f"sqlite:///{tmp_path}/m.db", clock=clock) as mem:
        with mem.turn("b", "u1") as state:
            state.session["topic"] = "tea"
        clock.advance(timedelta(seconds=60))
        view = mem.peek("b", "u1")
        assert view.session == SessionView(alive=True, expires_at=START + 30 * 60)
        assert view.scopes["session"]["topic"] == VariableView("tea", START + 30 * 60)
        with mem.edit("b", "u1") as state:
            state.session["topic"] = "coffee"
            state.user["name"] = "Ada"
        with pytest.raises(RuntimeError), mem.edit("b", "u1") as state:
            state.user["name"] = "lost"
            raise RuntimeError
        view = mem.peek("b", "u1")
        assert view.scopes["session"]["topic"].value == "coffee"
        assert view.scopes["user"]["name"].value == "Ada"
        assert view.session.expires_at == START + 30 * 60  # the edit kept nothing alive
        assert mem.end_session("b", "u1") is True
        assert mem.end_session("b", "u1") is False
        view = mem.peek("b", "u1")
        assert (view.session.alive, dict(view.scopes["session"])) == (False, {})
        assert view.scopes["user"]["name"].value == "Ada"


def test_a_sync_turn_s_key_value_store_blocks_and_commits_with_the_turn(tmp_path: Path) -> None:
    with SyncMemory.open(f"sqlite:///{tmp_path}/m.db") as mem:
        with mem.turn("b", "u1") as state:
            state.kvs.set("greeting", "hi", expiry="1h")
            assert state.kvs.get("greeting") == "hi"
            assert state.kvs.incr("visits") == 1
        assert mem.kvs("b").get("greeting") == "hi"
        with pytest.raises(RuntimeError), mem.turn("b", "u1") as state:
            state.kvs.set("lost", 1)
            raise RuntimeError
        assert mem.kvs("b").keys() == ["greeting", "visits"]  # nothing of the failed turn

        def count(state: TurnState) -> object:
            return state.kvs.incr("visits")

        assert mem.run_turn(count, "b", "u1") == 2
