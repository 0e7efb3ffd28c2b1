"""What a user sends over HTTP cannot stop the server or brick a user."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from botmemory import ManualClock
from tests.conftest import START
from tests.server.conftest import ADMIN, CONFIG, bearer, write_data_dir
from tests.server.live import LiveServer

NESTED = (
    "{{#event.payload}}{{#event.payload}}{{#event.payload}}x"
    "{{/event.payload}}{{/event.payload}}{{/event.payload}}"
)
BOMB_FLOW = {"startNode": "n", "nodes": [{"name": "n", "onEnter": [{"say": NESTED}], "next": []}]}


def test_a_message_over_max_message_bytes_is_413_over_http(tmp_path: Path) -> None:
    config = {**CONFIG, "limits": {"maxMessageBytes": 1000}}
    data = write_data_dir(tmp_path / "data", config)
    with (
        LiveServer(data, ManualClock(START)) as server,
        httpx.Client(base_url=server.url, headers=bearer(ADMIN), timeout=10) as http,
    ):
        url = "/api/v1/bots/echo/converse/u1"
        response = http.post(url, json={"text": "x" * 1001})
        assert response.status_code == 413
        assert "limits.maxMessageBytes" in response.json()["message"]
        assert http.post(url, json={"text": "x" * 1000}).status_code == 200
        view = http.get("/api/v1/bots/echo/users/u1/memory").json()
        messages = view["scopes"]["session"]["lastMessages"]["value"]
        assert [len(m["text"]) for m in messages] == [1000]


def test_a_template_bomb_fails_fast_and_the_server_keeps_answering(tmp_path: Path) -> None:
    config = {**CONFIG, "server": {"maxBodyBytes": 200_000}}
    data = write_data_dir(tmp_path / "data", config)
    (data / "bots" / "bomb" / "flows").mkdir(parents=True)
    (data / "bots" / "bomb" / "flows" / "main.flow.json").write_text(json.dumps(BOMB_FLOW))
    payload = [1] * 20_000  # 40 KB, under limits.maxMessageBytes
    with (
        LiveServer(data, ManualClock(START)) as server,
        httpx.Client(base_url=server.url, headers=bearer(ADMIN), timeout=30) as http,
        ThreadPoolExecutor(8) as pool,
    ):
        started = time.monotonic()
        bombs = [
            pool.submit(
                http.post,
                f"/api/v1/bots/bomb/converse/u{i}",
                json={"type": "payload", "payload": payload},
            )
            for i in range(4)
        ]
        health = [pool.submit(http.get, "/healthz") for _ in range(4)]
        assert all(h.result().status_code == 200 for h in health)
        for bomb in bombs:
            response = bomb.result()
            assert response.status_code == 200, response.text
            assert response.json()["responses"][0]["text"].startswith("Sorry")
        assert time.monotonic() - started < 3
