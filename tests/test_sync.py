"""The synchronous facade, for scripts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from botmemory import ManualClock, SyncMemory
from tests.conftest import DAY


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
        assert mem.export_user("b", "u1")["user"]["name"]["value"] == "Ada"  # type: ignore[index,call-overload]
        assert mem.forget_user("b", "u1")["user_variables"] == 1
