"""Several worker processes: ``botmemory serve --workers 2``, and
``botmemory.server.asgi:app`` under a real uvicorn with two workers.

The servers are started as operators would (``uvicorn ... --workers 2`` with the data
folder in ``BOTMEMORY_DATA_DIR`` and ``PROMETHEUS_MULTIPROC_DIR`` set, or ``serve
--workers 2``), so that ``/metrics`` answers for both workers. Waiting for real
processes to start and stop is the only waiting here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import ADMIN, CONFIG, bearer, write_data_dir
from tests.server.live import Served, free_port, running, serving
from tests.server.test_admin_routes import samples

STARTED_WITHIN = 60.0


def uvicorn_command(port: int, workers: int = 2) -> list[str]:
    command = [sys.executable, "-m", "uvicorn", "botmemory.server.asgi:app"]
    return [*command, "--port", str(port), "--workers", str(workers), "--log-level", "warning"]


@pytest.fixture(params=["uvicorn", "serve"])
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    data = write_data_dir(tmp_path / "data", CONFIG)
    if request.param == "serve":
        with serving(data, "--workers", "2") as found:
            yield found
        return
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    env = {"BOTMEMORY_DATA_DIR": str(data), "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    port = free_port()
    with running(uvicorn_command(port), port, env) as found:
        yield found


def test_two_workers_serve_one_data_folder_and_their_metrics_add_up(served: Served) -> None:
    url, process = served.url, served.process
    with httpx.Client(base_url=url, headers=bearer(ADMIN), timeout=10) as http:
        for i in range(20):
            with httpx.Client(base_url=url, headers=bearer(ADMIN), timeout=10) as fresh:
                # a new connection each time: the kernel spreads them over both workers
                answer = fresh.post("/api/v1/bots/echo/converse/u1", json={"text": f"m{i}"})
                assert answer.json()["responses"] == [{"type": "text", "text": f"echo: m{i}"}]
        assert http.get("/readyz").json() == {"status": "ok", "message": None}
        found = samples(http.get("/metrics").text)
        # every turn, whichever worker ran it and answers the scrape (the kernel spreads
        # the connections; tests/server/test_metrics_processes.py makes both count)
        assert found["botmemory_turns_total"] == 20
        history = http.get("/api/v1/bots/echo/users/u1/memory").json()
        assert len(history["scopes"]["session"]["lastMessages"]["value"]) == 5
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_a_missing_data_folder_fails_the_start_with_the_reason(tmp_path: Path) -> None:
    env = {**os.environ, "BOTMEMORY_DATA_DIR": ""}
    process = subprocess.Popen(
        uvicorn_command(free_port(), workers=1), env=env, stderr=subprocess.PIPE, text=True
    )
    _, errors = process.communicate(timeout=STARTED_WITHIN)
    assert process.returncode != 0
    assert "set BOTMEMORY_DATA_DIR to the data folder to serve" in errors


def test_serve_refuses_workers_with_reload(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data", CONFIG)
    command = [sys.executable, "-m", "botmemory", "serve", str(data), "--workers", "2"]
    done = subprocess.run([*command, "--reload"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "use it without --workers" in done.stderr
