"""End to end over real HTTP: uvicorn, the lifespan (janitor loop), and a conversation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx

from botmemory import ManualClock
from tests.conftest import START
from tests.server.conftest import ADMIN, CONFIG, bearer, write_data_dir
from tests.server.live import LiveServer


def test_a_conversation_over_http(tmp_path: Path) -> None:
    clock = ManualClock(START)
    data = write_data_dir(tmp_path / "data", CONFIG)
    with (
        LiveServer(data, clock, run_janitor=True) as server,
        httpx.Client(base_url=server.url, headers=bearer(ADMIN), timeout=10) as http,
    ):
        assert http.get("/healthz").json()["status"] == "ok"
        assert http.get("/api/v1/janitor").json()["running"] is True
        url = "/api/v1/bots/welcome/converse/u1"
        assert http.post(url, json={"type": "text", "text": "hi"}).json() == {
            "responses": [{"type": "text", "text": "Hello! I'm the welcome bot. What's your name?"}]
        }
        state = http.post(f"{url}?include=state", json={"text": "Ada"}).json()["state"]
        assert state["user"] == {"name": "Ada"}
        view = http.get("/api/v1/bots/welcome/users/u1/memory").json()
        assert view["now"] == START
        assert view["scopes"]["session"]["lastMessages"]["expiresAt"] == START + 1800
        clock.advance(timedelta(seconds=3600))
        http.post("/api/v1/janitor/run")
        assert http.get("/api/v1/bots/welcome/users/u1/memory").json()["session"]["alive"] is False
        too_big = http.post(
            url, content=b"x" * 10_000, headers={"Content-Type": "application/json"}
        )
        assert too_big.status_code == 413
        assert http.get("/").headers["content-security-policy"].startswith("default-src 'self'")
        assert "botmemory_turns_total" in http.get("/metrics").text
    # the memory was on SQLite in the data folder, and the lifespan stopped the janitor
    assert (data / "memory.db").exists()
    assert server.engine is not None
    assert not server.engine.memory.janitor.running


def test_a_user_id_with_a_slash_over_real_http(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data", CONFIG)
    with (
        LiveServer(data, ManualClock(START)) as server,
        httpx.Client(base_url=server.url, headers=bearer(ADMIN), timeout=10) as http,
    ):
        converse = http.post("/api/v1/bots/welcome/converse/a%2Fb?x=1", json={"text": "hi"})
        assert converse.status_code == 200, converse.text
        view = http.get("/api/v1/bots/welcome/users/a%2Fb/memory?channel=api")
        assert view.status_code == 200, view.text
        assert view.json()["userId"] == "a/b"
        assert http.delete("/api/v1/bots/welcome/users/a%2Fb").status_code == 200
