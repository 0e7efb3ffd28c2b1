"""The push channel over real HTTP: a dialog timeout's replies arrive with no user message."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from botmemory import ManualClock
from botmemory.server import events as server_events
from tests.conftest import START
from tests.server.conftest import ADMIN, CONFIG, ECHO_TOKEN, WELCOME_TOKEN, bearer, write_data_dir
from tests.server.live import LiveServer


def events(lines: Iterator[str]) -> Iterator[tuple[str, object]]:
    """The (name, data) of each event of a ``text/event-stream``, comments skipped."""
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))


def test_a_timeout_reply_and_the_session_end_are_pushed(tmp_path: Path) -> None:
    clock = ManualClock(START)
    data = write_data_dir(tmp_path / "data", CONFIG)
    with LiveServer(data, clock) as server, httpx.Client(base_url=server.url) as client:
        path = "/api/v1/bots/welcome/users/ada/events?channel=web"
        with client.stream("GET", path, headers=bearer(WELCOME_TOKEN)) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(lines) == ": connected"
            said = client.post(
                "/api/v1/bots/welcome/converse/ada",
                json={"text": "hi", "channel": "web"},
                headers=bearer(WELCOME_TOKEN),
            )
            assert said.status_code == 200
            clock.advance(timedelta(minutes=5, seconds=1))
            assert client.post("/api/v1/janitor/run", headers=bearer(ADMIN)).status_code == 200
            received = events(lines)
            assert next(received) == (
                "replies",
                {
                    "reason": "timeout",
                    "responses": [
                        "You went quiet. I'll start over when you write again.",
                        "Bye! Conversations between us: 1. All my conversations: 1.",
                    ],
                },
            )
            clock.advance(timedelta(minutes=30))
            assert client.post("/api/v1/janitor/run", headers=bearer(ADMIN)).status_code == 200
            assert next(received) == ("sessionEnded", {"reason": "timeout"})


def test_the_push_channel_asks_what_the_converse_route_asks(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data", CONFIG)
    with (
        LiveServer(data, ManualClock(START)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        path = "/api/v1/bots/welcome/users/ada/events"
        assert client.get(path).status_code == 401
        assert client.get(path, headers=bearer(ECHO_TOKEN)).status_code == 403
        with client.stream("GET", "/api/v1/bots/echo/users/ada/events") as public:
            assert public.status_code == 200  # echo's converse route is public


def test_an_unknown_bot_is_404_and_an_invalid_id_400_before_any_stream(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data", CONFIG)
    with (
        LiveServer(data, ManualClock(START)) as server,
        httpx.Client(base_url=server.url, headers=bearer(ADMIN), timeout=5) as client,
    ):
        answer = client.get("/api/v1/bots/nobot/users/ada/events")
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"] == "not_found"
        for path in (
            "/api/v1/bots/welcome/users/a%01b/events",
            "/api/v1/bots/welcome/users/ada/events?channel=%01",
            "/api/v1/bots/welcome/users/ada/events?threadId=a%0Ab",
            f"/api/v1/bots/welcome/users/{'u' * 256}/events",
        ):
            answer = client.get(path)
            assert answer.status_code == 400, (path, answer.text)
            assert answer.json()["error"] == "bad_request"
        with client.stream("GET", "/api/v1/bots/welcome/users/ada/events") as stream:
            assert stream.status_code == 200  # a valid one still streams


def test_streams_are_bounded_per_conversation_and_per_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone who may talk to a public bot may listen: without bounds, anyone could hold
    every connection the server can open."""
    monkeypatch.setattr(server_events, "MAX_CONVERSATION_STREAMS", 2)
    monkeypatch.setattr(server_events, "MAX_STREAMS", 3)
    data = write_data_dir(tmp_path / "data", CONFIG)
    with (
        LiveServer(data, ManualClock(START)) as server,
        httpx.Client(base_url=server.url) as client,
        contextlib.ExitStack() as held,
    ):

        def listen(user: str) -> httpx.Response:
            return held.enter_context(
                client.stream("GET", f"/api/v1/bots/echo/users/{user}/events")
            )

        assert [listen("ada").status_code for _ in range(2)] == [200, 200]  # 2 of ada's
        third = listen("ada")
        assert third.status_code == 503
        third.read()
        assert "2 event streams" in third.json()["message"]
        assert third.headers["Retry-After"] == "30"
        assert listen("bob").status_code == 200  # 3 in all
        full = listen("cy")
        assert full.status_code == 503
        full.read()
        assert "3 event streams" in full.json()["message"]
