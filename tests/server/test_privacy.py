"""What a request without the right token must not learn, and ids that must not merge.

A public bot lets anyone talk to it, not read its users' memory; an unknown bot id is
no bot's, so it is never public; a bot's token sees the reload problems of its own files
only; a token is never quoted in a problem; two different paths are never one user.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from botmemory.config import load_data_dir
from botmemory.dialog import DialogEngine
from botmemory.errors import ConfigError
from botmemory.server import create_app
from botmemory.server.reload import CONFIG_KEY, Reloader
from tests.conftest import OpenMemory
from tests.server.conftest import (
    ADMIN,
    BOT_CONFIGS,
    CONFIG,
    ECHO_TOKEN,
    WELCOME_TOKEN,
    bearer,
    write_data_dir,
)

PUBLIC_BY_DEFAULT: dict[str, Any] = {**CONFIG, "converse": {"public": True}}


@pytest.mark.parametrize("query", ["?include=state", "?include=state,"])  # thin, declared
async def test_the_memories_of_a_public_bot_need_a_token_of_that_bot(
    anonymous: httpx.AsyncClient, query: str
) -> None:
    url = f"/api/v1/bots/echo/converse/u1{query}"
    talk = await anonymous.post("/api/v1/bots/echo/converse/u1", json={"text": "hi"})
    assert talk.status_code == 200, talk.text  # talking needs none
    refused = await anonymous.post(url, json={"text": "hi"})
    assert refused.status_code == 401, refused.text
    assert "state" not in refused.json()
    other = await anonymous.post(url, json={"text": "hi"}, headers=bearer(WELCOME_TOKEN))
    assert other.status_code == 403, other.text
    own = await anonymous.post(url, json={"text": "hi"}, headers=bearer(ECHO_TOKEN))
    assert own.status_code == 200, own.text
    assert "user" in own.json()["state"]


@pytest.fixture
async def public_app(open_memory: OpenMemory, tmp_path: Path) -> AsyncIterator[FastAPI]:
    """Bots public by default (global ``converse.public``), except the welcome bot."""
    data = write_data_dir(tmp_path / "data", PUBLIC_BY_DEFAULT)
    bot_configs = {**BOT_CONFIGS, "welcome": {"converse": {"public": False}}}
    engine = DialogEngine.open(await open_memory(PUBLIC_BY_DEFAULT, bot_configs), data)
    yield create_app(engine, run_janitor=False)
    await engine.close()


async def test_an_unknown_bot_is_not_public_when_bots_are_by_default(public_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=public_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        known = await http.post("/api/v1/bots/echo/converse/u1", json={"text": "hi"})
        assert known.status_code == 200, known.text
        for request in (
            http.build_request("POST", "/api/v1/bots/nope/converse/u1", json={"text": "hi"}),
            http.build_request("GET", "/api/v1/bots/nope/users/u1/events"),
        ):
            anonymous = await http.send(request)
            assert anonymous.status_code == 401, anonymous.text
            assert "welcome" not in anonymous.text  # the private bot's name
            request.headers.update(bearer(ECHO_TOKEN))
            assert (await http.send(request)).status_code == 403
        admin = await http.post(
            "/api/v1/bots/nope/converse/u1", json={"text": "hi"}, headers=bearer(ADMIN)
        )
        assert admin.status_code == 404, admin.text


async def test_a_bot_token_sees_the_reload_problems_of_its_own_files_only(
    app: FastAPI, anonymous: httpx.AsyncClient, tmp_path: Path
) -> None:
    global_problem = "global/botmemory.config.json, line 3: auth.adminTokens: a problem"
    echo_problem = "bots/echo/bot.config.json, line 2: dialog.maxSteps: a problem"
    welcome_problem = "bots/welcome/flows/main.flow.json, line 4: a problem"
    state = app.state.botmemory
    state.reloader = Reloader(state, tmp_path)
    state.reloader.problems = {
        CONFIG_KEY: [global_problem, echo_problem],
        "welcome": [welcome_problem],
    }

    async def problems(token: str | None) -> list[str]:
        headers = bearer(token) if token else {}
        found: list[str] = (await anonymous.get("/api/v1/bots", headers=headers)).json()["problems"]
        return found

    assert await problems(ADMIN) == [global_problem, echo_problem, welcome_problem]
    assert await problems(WELCOME_TOKEN) == [welcome_problem]
    assert await problems(ECHO_TOKEN) == [echo_problem]
    assert await problems(None) == []


@pytest.mark.parametrize(
    "tokens",
    [
        {"adminTokens": "NEW-ADMIN-SECRET-token-9876543210"},  # a string, not a list
        {"adminTokens": ["Sh0rtAdm1n"]},  # too short
        {"botTokens": {"welcome": "BOT-SECRET-token-0123456789"}},
    ],
)
def test_a_configuration_problem_never_quotes_a_token(
    tmp_path: Path, tokens: dict[str, Any]
) -> None:
    data = write_data_dir(tmp_path / "data", {"auth": tokens})
    with pytest.raises(ConfigError) as caught:
        load_data_dir(data)
    secrets = _strings(tokens)
    for problem in caught.value.problems:
        assert "auth." in problem
        for value in secrets:
            assert value not in problem, problem
        assert "not shown" in problem


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


async def test_a_body_without_a_content_type_gets_one_answer_from_either_path(
    client: httpx.AsyncClient,
) -> None:
    answers = []
    for query in ("", "?include="):  # the thin path, the declared route
        response = await client.post(
            f"/api/v1/bots/welcome/converse/u1{query}", content=b'{"text": "hi"}'
        )
        assert "content-type" not in response.request.headers
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1]
    status, body = answers[0]
    assert status == 400
    assert "Content-Type: application/json" in body["message"]
    sent = await client.post("/api/v1/bots/welcome/converse/u1", json={"text": "hi"})
    assert sent.status_code == 200, sent.text


async def test_a_trailing_slash_is_not_found_rather_than_redirected(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/api/v1/bots/welcome/users/a%2Fb/memory/", "/api/v1/bots/welcome/users/a/"):
        response = await client.get(path)
        assert response.status_code == 404, response.text
        assert "location" not in response.headers
        assert response.json()["error"] == "not_found"
    found = await client.get("/api/v1/bots/welcome/users/a%2Fb/memory")
    assert found.status_code == 200, found.text


@pytest.mark.parametrize("bad", ["%FFzz", "%FEzz", "a%C3", "%C3%28"])
async def test_a_path_that_is_not_utf8_is_refused_rather_than_read_as_another_id(
    client: httpx.AsyncClient, bad: str
) -> None:
    response = await client.post(f"/api/v1/bots/welcome/converse/{bad}", json={"text": "hi"})
    assert response.status_code == 400, response.text
    assert "UTF-8" in response.json()["message"]
    export = await client.get(f"/api/v1/bots/welcome/users/{bad}/export")
    assert export.status_code == 400, export.text
    fine = await client.post("/api/v1/bots/welcome/converse/%C3%A9", json={"text": "hi"})
    assert fine.status_code == 200, fine.text
