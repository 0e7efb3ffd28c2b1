"""A stopping ``botmemory serve`` drains: what it started finishes, new requests get 503.

A real server process; the echo bot gets a hook that holds a message named ``slow``
until the test lets it go (a marker file), so a request is in progress for sure when
SIGTERM arrives. Waiting on real processes and files is the only waiting here.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import ADMIN, CONFIG, bearer, write_data_dir
from tests.server.live import serving

WITHIN = 60.0
SLOW_HOOK = """
import asyncio
import os
from pathlib import Path


async def hook(event, state, kvs):
    if event is not None and event.text == "slow":
        folder = Path(os.environ["BOTMEMORY_DRAIN_TEST"])
        (folder / "started").write_text("1")
        for _ in range(1200):
            if (folder / "go").exists():
                return
            await asyncio.sleep(0.05)
"""


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WITHIN
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {WITHIN}s"
        time.sleep(0.05)  # a real process working


@pytest.mark.parametrize("grace", ["30s", "1s"])
def test_sigterm_finishes_requests_in_progress_and_refuses_new_ones(
    tmp_path: Path, grace: str
) -> None:
    data = write_data_dir(tmp_path / "data", CONFIG)
    hooks = data / "bots" / "echo" / "hooks" / "before_incoming"
    hooks.mkdir(parents=True)
    (hooks / "slow.py").write_text(SLOW_HOOK)
    env = {"BOTMEMORY_DRAIN_TEST": str(tmp_path)}
    with serving(data, "--grace", grace, env=env) as served:
        url, server = served.url, served.process
        answers: list[httpx.Response | Exception] = []

        def slow() -> None:
            try:
                answers.append(
                    httpx.post(f"{url}/api/v1/bots/echo/converse/u1", json={"text": "slow"},
                               timeout=WITHIN)
                )  # fmt: skip
            except httpx.HTTPError as exc:
                answers.append(exc)

        sender = threading.Thread(target=slow)
        sender.start()
        try:
            wait_for((tmp_path / "started").exists, "the slow request's start")
            server.send_signal(signal.SIGTERM)
            with httpx.Client(base_url=url, headers=bearer(ADMIN), timeout=10) as http:
                wait_for(lambda: http.get("/readyz").status_code == 503, "the drain")
                refused = http.post("/api/v1/bots/echo/converse/u2", json={"text": "hi"})
                assert refused.status_code == 503
                assert refused.headers["Retry-After"] == "5"
                assert http.get("/healthz").status_code == 200  # alive until it exits
            if grace == "30s":
                (tmp_path / "go").write_text("1")
                sender.join(WITHIN)
                answer = answers[0]
                assert isinstance(answer, httpx.Response)
                assert answer.status_code == 200
                assert answer.json()["responses"] == [{"type": "text", "text": "echo: slow"}]
            else:  # the grace ends first: the request in progress is cut off, then it stops
                sender.join(WITHIN)
            assert server.wait(timeout=WITHIN) == 0
        finally:
            (tmp_path / "go").write_text("1")
