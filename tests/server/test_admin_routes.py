"""Bots, the janitor, /healthz and /metrics."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from botmemory import BackendUnavailableError, ManualClock
from botmemory.dialog import DialogEngine
from tests.conftest import OpenMemory
from tests.server.conftest import (
    BOT_CONFIGS,
    CONFIG,
    ECHO_TOKEN,
    WELCOME_TOKEN,
    bearer,
    converse,
)


async def test_the_bots_a_caller_may_use(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    admin = (await client.get("/api/v1/bots")).json()
    assert admin["access"] == "admin"
    assert [b["id"] for b in admin["bots"]] == ["echo", "welcome"]
    assert admin["bots"][0] == {"id": "echo", "hasFlows": True, "conversePublic": True}
    own = (await anonymous.get("/api/v1/bots", headers=bearer(WELCOME_TOKEN))).json()
    assert (own["access"], [b["id"] for b in own["bots"]]) == ("bot", ["welcome"])
    public = (await anonymous.get("/api/v1/bots")).json()
    assert (public["access"], [b["id"] for b in public["bots"]]) == ("public", ["echo"])


async def test_a_wrong_token_lists_no_bots_but_says_it_is_wrong(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.get("/api/v1/bots", headers=bearer("not-a-token-of-this-server"))
    assert response.status_code == 401
    assert response.json()["message"].startswith("this token is not valid")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert (await anonymous.get("/api/v1/bots")).status_code == 200  # no token: public bots


async def test_a_bots_settings(client: httpx.AsyncClient) -> None:
    bot = (await client.get("/api/v1/bots/welcome")).json()
    assert bot["settings"]["dataRetention"]["policies"] == {"email": "60d", "mood": "1d"}
    assert bot["settings"]["dialog"]["sessionTimeoutInterval"] == "30m"


async def test_the_janitor_runs_on_demand_and_keeps_its_history(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    for text in ("hi", "Ada", "great"):
        await converse(client, text)
    clock.advance(
        timedelta(seconds=2 * 86400)
    )  # the mood (1d), the dialog (5m) and the session (30m) are over
    run = await client.post("/api/v1/janitor/run")
    assert run.status_code == 200, run.text
    counts = run.json()
    assert (counts["userVariables"], counts["sessions"], counts["temp"]) == (1, 1, 1)
    assert counts["total"] == 3
    assert counts["error"] is None
    assert counts["startedAtIso"] == "2023-11-16T22:13:20.000Z"
    status = (await client.get("/api/v1/janitor")).json()
    assert status["running"] is False
    assert status["interval"] == 600
    assert [r["total"] for r in status["runs"]] == [3]
    await client.post("/api/v1/janitor/run")
    assert [r["total"] for r in (await client.get("/api/v1/janitor")).json()["runs"]] == [0, 3]


async def test_the_janitor_needs_an_admin_token(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.post("/api/v1/janitor/run")).status_code == 401
    response = await anonymous.get("/api/v1/janitor", headers=bearer(WELCOME_TOKEN))
    assert response.status_code == 403
    assert "admin token" in response.json()["message"]


async def test_healthz(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "message": None}


async def test_readyz_when_the_backend_is_down_and_healthz_still_alive(
    anonymous: httpx.AsyncClient, engine: DialogEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(name: str) -> str | None:
        raise BackendUnavailableError("connection refused by db.internal:5432")

    monkeypatch.setattr(engine.memory.storage, "get_meta", down)
    response = await anonymous.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "db.internal" not in response.text
    assert (await anonymous.get("/healthz")).status_code == 200  # no restart would cure it


async def test_metrics(client: httpx.AsyncClient, clock: ManualClock) -> None:
    for text in ("hi", "Ada", "great"):
        await converse(client, text)
    clock.advance(timedelta(seconds=2 * 86400))
    await client.post("/api/v1/janitor/run")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(response.text)
    # three messages, then the janitor's dialog timeout and session end: five turns
    assert found["botmemory_turns_total"] == 5
    assert found["botmemory_turn_duration_seconds_count"] == 5
    assert found['botmemory_turn_duration_seconds_bucket{le="+Inf"}'] == 5
    assert found["botmemory_lock_wait_seconds_count"] == 5
    assert found["botmemory_backend_errors_total"] == 0
    assert found['botmemory_janitor_runs_total{result="ok"}'] == 1
    assert found['botmemory_janitor_runs_total{result="error"}'] == 0
    assert found['botmemory_janitor_removed_total{kind="user_variables"}'] == 1
    assert found['botmemory_janitor_removed_total{kind="sessions"}'] == 1
    assert found["botmemory_janitor_last_run_timestamp_seconds"] == 1700172800
    # a second scrape does not count the same run twice
    again = samples((await client.get("/metrics")).text)
    assert again['botmemory_janitor_runs_total{result="ok"}'] == 1


def samples(text: str) -> dict[str, float]:
    """Every sample of a Prometheus text exposition, by name and labels as written."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return found


async def test_metrics_need_an_admin_token(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/metrics")).status_code == 401
    assert (await anonymous.get("/metrics", headers=bearer(ECHO_TOKEN))).status_code == 403


async def test_a_wrong_token_is_told_apart_from_no_token(anonymous: httpx.AsyncClient) -> None:
    missing = (await anonymous.post("/api/v1/janitor/run")).json()["message"]
    assert "needs a token" in missing
    response = await anonymous.post("/api/v1/janitor/run", headers=bearer("x" * 32))
    assert response.status_code == 401
    assert "not valid" in response.json()["message"]


async def test_a_janitor_run_skipped_for_another_process_says_so(
    client: httpx.AsyncClient, open_memory: OpenMemory, backend: str, clock: ManualClock
) -> None:
    if backend == "memory":
        pytest.skip("a memory:// store has one process: no other janitor shares it")
    for text in ("hi", "Ada", "great"):
        await converse(client, text)
    clock.advance(timedelta(seconds=2 * 86400))  # the mood, the dialog and the session are over
    other = await open_memory(CONFIG, BOT_CONFIGS)  # another process on the same database
    async with other.storage.janitor_lock() as held:
        assert held
        run = await client.post("/api/v1/janitor/run")
    assert run.status_code == 200, run.text
    body = run.json()
    assert body["skipped"] is True
    assert (body["total"], body["sessions"], body["error"]) == (0, 0, None)
    assert (await client.get("/api/v1/janitor")).json()["runs"] == []  # not a run
    after = (await client.post("/api/v1/janitor/run")).json()
    assert (after["skipped"], after["total"]) == (False, 3)
