"""The key-value store routes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from botmemory import ManualClock
from tests.conftest import START
from tests.server.conftest import ECHO_TOKEN, bearer

KVS = "/api/v1/bots/welcome/kvs"


async def test_put_get_list_delete(client: httpx.AsyncClient, clock: ManualClock) -> None:
    put = await client.put(f"{KVS}/storage/global/motd", json={"value": {"text": "hi"}})
    assert put.status_code == 200, put.text
    assert put.json() == {
        "key": "storage/global/motd",
        "value": {"text": "hi"},
        "expiresAt": None,
        "expiresAtIso": None,
    }
    assert (await client.get(f"{KVS}/storage/global/motd")).json()["value"] == {"text": "hi"}
    await client.put(f"{KVS}/other", json={"value": None})
    assert (await client.get(KVS)).json() == {"keys": ["other", "storage/global/motd"]}
    assert (await client.get(KVS, params={"prefix": "storage/"})).json() == {
        "keys": ["storage/global/motd"]
    }
    assert (await client.get(f"{KVS}/other")).json()["value"] is None
    deleted = await client.delete(f"{KVS}/other")
    assert deleted.json() == {"key": "other", "deleted": True}
    assert (await client.get(f"{KVS}/other")).status_code == 404
    assert (await client.delete(f"{KVS}/other")).status_code == 404


async def test_expiry(client: httpx.AsyncClient, clock: ManualClock) -> None:
    put = await client.put(f"{KVS}/k", json={"value": 1, "expiry": "1h"})
    assert put.json()["expiresAt"] == START + 3600
    assert put.json()["expiresAtIso"] == "2023-11-14T23:13:20.000Z"
    clock.advance(timedelta(seconds=3600 - 0.001))
    assert (await client.get(f"{KVS}/k")).status_code == 200
    clock.advance(timedelta(seconds=0.001))
    assert (await client.get(f"{KVS}/k")).status_code == 404


async def test_a_bare_number_expiry_is_400_asking_for_a_unit(client: httpx.AsyncClient) -> None:
    for expiry in (1500, 5.5, "5"):
        response = await client.put(f"{KVS}/m", json={"value": 1, "expiry": expiry})
        assert response.status_code == 400, response.text
        assert "has no unit: add one" in response.json()["message"]
    assert (await client.get(f"{KVS}/m")).status_code == 404


async def test_a_key_that_expires_before_it_is_read_back_is_not_a_500(
    client: httpx.AsyncClient, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def ticking(self: ManualClock) -> float:  # every reading of the clock moves it 1 ms
        self.now += 0.001
        return self.now

    monkeypatch.setattr(ManualClock, "__call__", ticking)
    responses = await asyncio.gather(
        *(client.put(f"{KVS}/k{i}", json={"value": i, "expiry": "1ms"}) for i in range(20))
    )
    for i, response in enumerate(responses):
        assert response.status_code == 200, response.text
        assert response.json()["value"] == i
        assert response.json()["expiresAt"] is not None


async def test_bad_expiry_and_keys_are_400(client: httpx.AsyncClient) -> None:
    for expiry in ("1 fortnight", "0s", -5, True, [1]):
        response = await client.put(f"{KVS}/k", json={"value": 1, "expiry": expiry})
        assert response.status_code == 400, (expiry, response.text)
        assert response.json()["message"]
    assert (await client.get(f"{KVS}/a%01b")).status_code == 400


async def test_another_bots_token_is_403(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get(f"{KVS}/k", headers=bearer(ECHO_TOKEN))
    assert response.status_code == 403


async def test_bots_have_separate_stores(client: httpx.AsyncClient) -> None:
    await client.put(f"{KVS}/k", json={"value": "welcome's"})
    assert (await client.get("/api/v1/bots/echo/kvs/k")).status_code == 404


async def test_an_unknown_field_is_400_naming_it_and_nothing_is_stored(
    client: httpx.AsyncClient,
) -> None:
    """A misspelt ``expiry`` must not store a value that never expires."""
    response = await client.put(f"{KVS}/sess", json={"value": "secret", "expires": "1h"})
    assert response.status_code == 400, response.text
    assert "expires" in response.text
    assert (await client.get(f"{KVS}/sess")).status_code == 404
