"""``/metrics`` of a server of several processes counts every process's turns.

Real processes, as a server with several workers runs them: each one serves the same
data folder with ``PROMETHEUS_MULTIPROC_DIR`` set (prometheus_client's multi-process
mode) and talks to its own app; the scrape is answered by one of them, or by a process
that ran no turn at all.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from multiprocessing.context import SpawnContext
from pathlib import Path

import httpx
import pytest

from botmemory.dialog import DialogEngine
from botmemory.server import create_app
from tests.server.conftest import ADMIN, CONFIG, bearer, write_data_dir
from tests.server.test_admin_routes import samples

SPAWN: SpawnContext = multiprocessing.get_context("spawn")


async def _serve(data_dir: Path, messages: int) -> str:
    """Send ``messages`` to the echo bot through an app on ``data_dir``; return a scrape."""
    engine = await DialogEngine.from_data_dir(data_dir)
    try:
        app = create_app(engine, run_janitor=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for i in range(messages):
                body = {"type": "text", "text": f"hi {i}"}
                response = await client.post("/api/v1/bots/echo/converse/u1", json=body)
                response.raise_for_status()
            return (await client.get("/metrics", headers=bearer(ADMIN))).text
    finally:
        await engine.close()


def _worker(data_dir: Path, messages: int, results: multiprocessing.Queue[str]) -> None:
    results.put(asyncio.run(_serve(data_dir, messages)))


def run_in_process(data_dir: Path, messages: int) -> str:
    results: multiprocessing.Queue[str] = SPAWN.Queue()
    process = SPAWN.Process(target=_worker, args=(data_dir, messages, results))
    process.start()
    text = results.get(timeout=120)
    process.join(timeout=60)
    assert process.exitcode == 0
    return text


def test_every_process_turns_are_counted_whoever_answers_the_scrape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = write_data_dir(tmp_path / "data", CONFIG)
    folder = tmp_path / "metrics"
    folder.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))  # the children inherit it
    first = samples(run_in_process(data_dir, 3))
    assert first["botmemory_turns_total"] == 3  # this process alone so far
    second = samples(run_in_process(data_dir, 4))
    assert second["botmemory_turns_total"] == 7
    assert second["botmemory_turn_duration_seconds_count"] == 7
    assert second['botmemory_janitor_runs_total{result="ok"}'] == 0
    idle = samples(run_in_process(data_dir, 0))
    assert idle["botmemory_turns_total"] == 7
