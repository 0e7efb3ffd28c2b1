"""Bad input and failures: always a JSON error with a message, never a traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from botmemory import BackendUnavailableError, ErasurePendingError
from botmemory.dialog import DialogEngine
from botmemory.server import create_app
from tests.conftest import OpenMemory
from tests.server.conftest import ADMIN, BOT_CONFIGS, bearer

CONVERSE = "/api/v1/bots/welcome/converse/u1"


def client_of(
    app: FastAPI, host: str = "127.0.0.1", token: str | None = ADMIN
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(host, 50000))
    headers = bearer(token) if token else {}
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3000", headers=headers)


async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(CONVERSE, json={"text": "x" * 5000})
    assert response.status_code == 413
    assert response.json() == {
        "error": "payload_too_large",
        "message": "the request body is larger than 4096 bytes (server.maxBodyBytes)",
        "details": [],
    }


async def test_a_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = await client.post(
        CONVERSE, content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize("query", ["", "?include=state"])
async def test_half_a_surrogate_pair_in_a_text_is_400_and_stores_nothing(
    client: httpx.AsyncClient, query: str
) -> None:
    # JSON may escape half of a surrogate pair alone; no UTF-8 reply or database holds it
    lone = b'{"type": "text", "text": "Bob \\ud83d"}'
    response = await client.post(
        CONVERSE + query, content=lone, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"
    assert "surrogate pair" in response.json()["message"]
    state = await client.get("/api/v1/bots/welcome/users/u1/memory")
    assert state.status_code == 200, state.text
    assert state.json()["scopes"]["session"] == {}  # not even lastMessages
    pair = b'{"type": "text", "text": "Bob \\ud83d\\ude00"}'
    response = await client.post(
        CONVERSE + query, content=pair, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text


async def test_a_streamed_body_under_the_limit_is_read(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text":'
        yield b' "hi"}'

    response = await client.post(
        CONVERSE, content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text


async def test_a_bad_content_length_is_400(app: FastAPI) -> None:
    async with client_of(app) as client:
        request = client.build_request("POST", CONVERSE, content=b'{"text": "hi"}')
        request.headers["Content-Length"] = "12x"
        response = await client.send(request)
    assert response.status_code == 400


async def test_unknown_routes_and_methods_answer_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    method = await client.patch(CONVERSE, json={})
    assert method.status_code == 405
    assert method.json()["error"] == "method_not_allowed"


async def test_an_unexpected_error_is_500_without_a_traceback(
    app: FastAPI, engine: DialogEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(engine, "answer", broken)
    async with client_of(app) as client:
        response = await client.post(CONVERSE, json={"text": "hi"})
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal_error",
        "message": "internal error: see the server's log",
        "details": [],
    }
    assert "secret" not in response.text
    assert "Traceback" not in response.text


async def test_an_unavailable_backend_is_503(
    client: httpx.AsyncClient, engine: DialogEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*args: object) -> object:
        raise BackendUnavailableError("cannot reach db.internal")

    monkeypatch.setattr(engine.memory.storage, "load_turn", down)
    response = await client.get("/api/v1/bots/welcome/users/u1/memory")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"] == "unavailable"
    assert "db.internal" not in response.text


async def test_an_erasure_whose_bytes_remain_is_503_saying_so(
    client: httpx.AsyncClient, engine: DialogEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def pending(*args: object) -> object:
        raise ErasurePendingError("... SQLite database /srv/secret/memory.db ...", {"kvs": 1})

    monkeypatch.setattr(engine.memory.storage, "delete_user", pending)
    response = await client.delete("/api/v1/bots/welcome/users/u1")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "the user is erased" in response.json()["message"]
    assert "send the request again" in response.json()["message"]
    assert "/srv/secret" not in response.text


async def test_validation_errors_list_each_field(client: httpx.AsyncClient) -> None:
    response = await client.post(CONVERSE, json={"text": 1, "channel": 2})
    assert response.status_code == 400
    body = response.json()
    assert body["details"] == [
        "body.text: Input should be a valid string",
        "body.channel: Input should be a valid string",
    ]
    assert body["message"].startswith("invalid request: body.text:")


@pytest.fixture
async def local_app(open_memory: OpenMemory, data_dir: Path) -> AsyncIterator[FastAPI]:
    """An app with no token configured: local mode."""
    memory = await open_memory({}, BOT_CONFIGS)
    engine = DialogEngine.open(memory, data_dir)
    yield create_app(engine, run_janitor=False)
    await engine.close()


async def test_local_mode_answers_this_machine_only(local_app: FastAPI) -> None:
    async with client_of(local_app, "127.0.0.1", token=None) as local:
        assert (await local.get("/api/v1/bots/welcome/users/u1/memory")).status_code == 200
        assert (await local.get("/api/v1/bots")).json()["access"] == "local"
    async with client_of(local_app, "::1", token=None) as local6:
        assert (await local6.post("/api/v1/janitor/run")).status_code == 200
    async with client_of(local_app, "203.0.113.7", token=None) as remote:
        response = await remote.get("/api/v1/bots/welcome/users/u1/memory")
        assert response.status_code == 403
        assert "only answers requests from its own machine" in response.json()["message"]
        assert (await remote.post(CONVERSE, json={"text": "hi"})).status_code == 403
        assert (await remote.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:3000", "localhost", "LOCALHOST:8080", "[::1]", "[::1]:3000"]
)
async def test_local_mode_answers_loopback_host_names(local_app: FastAPI, host: str) -> None:
    async with client_of(local_app, "127.0.0.1", token=None) as local:
        response = await local.get("/api/v1/bots", headers={"Host": host})
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:3000", "127.0.0.1.evil.example", "localhost:x", ""]
)
async def test_local_mode_refuses_other_host_names(local_app: FastAPI, host: str) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: it is refused."""
    async with client_of(local_app, "127.0.0.1", token=None) as local:
        for method, path in [
            ("GET", "/api/v1/bots/welcome/users/u1/memory"),
            ("DELETE", "/api/v1/bots/welcome/users/u1"),
            ("GET", "/"),
        ]:
            response = await local.request(method, path, headers={"Host": host})
            assert response.status_code == 421, (host, path, response.text)
            assert response.json()["error"] == "misdirected_request"
            assert "local mode" in response.json()["message"]


async def test_local_mode_refuses_cross_origin_writes(local_app: FastAPI) -> None:
    async with client_of(local_app, "127.0.0.1", token=None) as local:
        evil = {"Origin": "http://evil.example"}
        for method, path in [
            ("POST", CONVERSE),
            ("DELETE", "/api/v1/bots/welcome/users/u1"),
            ("PUT", "/api/v1/bots/welcome/kvs/k"),
            ("POST", "/api/v1/janitor/run"),
        ]:
            response = await local.request(method, path, headers=evil, json={"value": 1})
            assert response.status_code == 403, (path, response.text)
            assert "another origin" in response.json()["message"]
        other_port = {"Origin": "http://127.0.0.1:9999"}
        assert (
            await local.post(CONVERSE, json={"text": "hi"}, headers=other_port)
        ).status_code == 403
        null = {"Origin": "null"}
        assert (await local.post(CONVERSE, json={"text": "hi"}, headers=null)).status_code == 403
        # reading is allowed from anywhere on this machine; writing from the server's own page
        assert (await local.get("/api/v1/bots", headers=evil)).status_code == 200
        own = {"Origin": "http://127.0.0.1:3000"}
        assert (await local.post(CONVERSE, json={"text": "hi"}, headers=own)).status_code == 200
        assert (await local.post(CONVERSE, json={"text": "hi"})).status_code == 200  # no Origin


async def test_with_tokens_the_host_is_not_checked(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/bots", headers={"Host": "bots.example"})).status_code == 200
