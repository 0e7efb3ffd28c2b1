"""The converse route: a user's message in, the bot's replies out."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from botmemory import BackendUnavailableError
from botmemory.dialog import DialogEngine
from botmemory.server.converse_fast import _message
from tests.server.conftest import ECHO_TOKEN, WELCOME_TOKEN, bearer, converse


async def test_a_conversation_with_the_example_bot(client: httpx.AsyncClient) -> None:
    assert await converse(client, "hi") == ["Hello! I'm the welcome bot. What's your name?"]
    assert await converse(client, "Ada") == ["How are you feeling today, Ada?"]
    assert await converse(client, "great") == [
        "What's your email address? I'll keep it for 60 days."
    ]


async def test_include_state_returns_the_four_memories_after_the_turn(
    client: httpx.AsyncClient,
) -> None:
    await converse(client, "hi")
    response = await client.post(
        "/api/v1/bots/welcome/converse/u1?include=state", json={"type": "text", "text": "Ada"}
    )
    assert response.status_code == 200
    state = response.json()["state"]
    assert state["user"] == {"name": "Ada"}
    assert [m["text"] for m in state["session"]["lastMessages"]] == ["hi", "Ada"]
    assert "__dialog" in state["temp"]
    assert state["bot"] == {"conversations": 1}


async def test_include_state_is_the_turn_s_own_without_loading_again(
    client: httpx.AsyncClient, engine: DialogEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = engine.memory.storage
    load_turn, locked_turn = storage.load_turn, storage.locked_turn
    commit_turn = storage.commit_turn
    loads: list[object] = []
    locking: list[bool] = []
    changed: list[bool] = []

    async def counted_load(keys: Any) -> Any:
        if not locking:  # else counted as part of the locked load
            loads.append(keys)
        return await load_turn(keys)

    @contextlib.asynccontextmanager
    async def counted_locked_turn(keys: Any) -> AsyncIterator[Any]:
        loads.append(keys)
        async with contextlib.AsyncExitStack() as stack:
            locking.append(True)
            try:
                snapshot = await stack.enter_async_context(locked_turn(keys))
            finally:
                locking.pop()
            yield snapshot

    async def commit_then_change(write: Any) -> None:
        await commit_turn(write)
        if not changed:  # another user's edit changes bot memory right after this turn
            changed.append(True)
            async with engine.memory.edit("welcome", "someone-else") as other:
                other.bot["conversations"] = 99

    await converse(client, "hi")
    monkeypatch.setattr(storage, "load_turn", counted_load)
    monkeypatch.setattr(storage, "locked_turn", counted_locked_turn)
    monkeypatch.setattr(storage, "commit_turn", commit_then_change)
    response = await client.post(
        "/api/v1/bots/welcome/converse/u1?include=state", json={"type": "text", "text": "Ada"}
    )
    state = response.json()["state"]
    assert state["user"] == {"name": "Ada"}  # what the turn wrote is there
    assert [m["text"] for m in state["session"]["lastMessages"]] == ["hi", "Ada"]
    assert state["temp"]["__dialog"]["node"] == "askMood"
    assert state["bot"] == {"conversations": 1}  # the change made after it is not
    assert len(loads) == 2  # this turn's load and the other user's edit: no second load
    stored = (await client.get("/api/v1/bots/welcome/users/u1/memory")).json()["scopes"]
    assert stored["bot"]["conversations"]["value"] == 99


async def test_include_state_of_a_repeated_message_is_what_is_stored(
    client: httpx.AsyncClient,
) -> None:
    url = "/api/v1/bots/welcome/converse/u1?include=state"
    first = await client.post(url, json={"text": "hi", "id": "m-1"})
    again = await client.post(url, json={"text": "hi", "id": "m-1"})
    assert again.json()["responses"] == first.json()["responses"]
    assert again.json()["state"] == first.json()["state"]


async def test_without_include_there_is_no_state(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/bots/welcome/converse/u1", json={"text": "hi"})
    assert response.status_code == 200
    assert set(response.json()) == {"responses"}
    assert response.json()["responses"][0]["type"] == "text"


async def test_an_unknown_include_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/bots/welcome/converse/u1?include=nlu", json={"type": "text", "text": "hi"}
    )
    assert response.status_code == 400
    assert "include=nlu" in response.json()["message"]


async def test_channels_and_threads_have_their_own_sessions(client: httpx.AsyncClient) -> None:
    await converse(client, "hi", channel="web")
    await converse(client, "Ada", channel="web")
    view = (await client.get("/api/v1/bots/welcome/users/u1/memory?channel=web")).json()
    assert view["scopes"]["user"]["name"]["value"] == "Ada"
    other = (await client.get("/api/v1/bots/welcome/users/u1/memory")).json()
    assert other["scopes"]["user"] == {}
    await converse(client, "hi", channel="web", threadId="t1")
    thread = await client.get("/api/v1/bots/welcome/users/u1/memory?channel=web&threadId=t1")
    assert thread.json()["sessionId"] == "welcome::web::u1::t1"


async def test_a_payload_message(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/bots/echo/converse/u1", json={"type": "quick_reply", "payload": {"id": 1}}
    )
    assert response.status_code == 200, response.text


async def test_a_public_bot_answers_without_a_token(anonymous: httpx.AsyncClient) -> None:
    assert await converse(anonymous, "ping", bot="echo") == ["echo: ping"]


async def test_a_private_bot_needs_a_token(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post("/api/v1/bots/welcome/converse/u1", json={"text": "hi"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthorized"


async def test_a_bot_token_opens_its_own_bot_only(anonymous: httpx.AsyncClient) -> None:
    own = await anonymous.post(
        "/api/v1/bots/welcome/converse/u1", json={"text": "hi"}, headers=bearer(WELCOME_TOKEN)
    )
    assert own.status_code == 200
    other = await anonymous.post(
        "/api/v1/bots/welcome/converse/u1", json={"text": "hi"}, headers=bearer(ECHO_TOKEN)
    )
    assert other.status_code == 403
    assert other.json() == {
        "error": "forbidden",
        "message": "this token is not allowed to use bot 'welcome'",
        "details": [],
    }


async def test_a_wrong_token_is_refused(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(
        "/api/v1/bots/welcome/converse/u1", json={"text": "hi"}, headers=bearer("x" * 30)
    )
    assert response.status_code == 401
    assert "x" * 30 not in response.text


async def test_an_unknown_bot_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/bots/nobot/converse/u1", json={"text": "hi"})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert "nobot" in response.json()["message"]


async def test_bad_messages_are_400_with_a_message(client: httpx.AsyncClient) -> None:
    url = "/api/v1/bots/welcome/converse/u1"
    cases = [
        {"type": "text"},  # no text
        {"type": "text", "text": 42},  # wrong type
        {"type": "payload"},  # neither text nor payload
        {"text": "hi", "channel": ""},  # empty channel
        {"text": "hi", "channel": "a\x00b"},  # control character
        [1, 2],  # not an object
    ]
    for body in cases:
        response = await client.post(url, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"] == "bad_request"
        assert response.json()["message"]


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/bots/welcome/converse/u1",
        content=b'{"text": "hi"',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["details"] == [
        "body: not valid JSON: Expecting ',' delimiter at character 13"
    ]


async def test_invalid_ids_are_400(client: httpx.AsyncClient) -> None:
    long_user = "u" * 256
    for url in (
        "/api/v1/bots/bad.bot/converse/u1",
        f"/api/v1/bots/welcome/converse/{long_user}",
        "/api/v1/bots/welcome/converse/a%01b",
    ):
        response = await client.post(url, json={"text": "hi"})
        assert response.status_code == 400, (url, response.text)
        assert response.json()["message"]


async def test_a_body_that_is_not_sent_as_json_says_how_to_send_it(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/bots/welcome/converse/u1",
        content=b'{"text": "hi"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert "Content-Type: application/json" in response.json()["message"]


async def test_a_storage_outage_is_a_503_not_an_apology(
    client: httpx.AsyncClient, engine: DialogEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*args: object) -> None:
        raise BackendUnavailableError("the storage at memory:// cannot be reached")

    @contextlib.asynccontextmanager
    async def down_locked(*args: object) -> AsyncIterator[None]:
        await down()
        yield

    monkeypatch.setattr(engine.memory.storage, "load_turn", down)
    monkeypatch.setattr(engine.memory.storage, "locked_turn", down_locked)
    response = await client.post("/api/v1/bots/welcome/converse/u1", json={"text": "hi"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"] == "unavailable"


async def test_the_message_type_reaches_the_event_and_the_history(
    client: httpx.AsyncClient,
) -> None:
    url = "/api/v1/bots/echo/converse/u1?include=state"
    for body in (
        {"type": "quick_reply", "text": "yes", "payload": {"id": 1}},
        {"type": "postback", "payload": "BUY"},
        {"type": "payload", "payload": [1]},
        {"text": "hi"},
    ):
        response = await client.post(url, json=body)
        assert response.status_code == 200, response.text
    history = response.json()["state"]["session"]["lastMessages"]
    assert [m["type"] for m in history] == ["quick_reply", "postback", "payload", "text"]


async def test_unknown_fields_and_types_are_400_naming_them(client: httpx.AsyncClient) -> None:
    url = "/api/v1/bots/echo/converse/u1"
    unknown_field = await client.post(url, json={"text": "hi", "txet": "typo"})
    assert unknown_field.status_code == 400
    assert "txet" in unknown_field.json()["message"]
    unknown_type = await client.post(url, json={"type": "quickreply", "text": "hi"})
    assert unknown_type.status_code == 400
    assert "body.type" in unknown_type.json()["message"]
    assert "quick_reply" in unknown_type.json()["message"]


MESSAGES_OF_BOTH_PATHS = [
    {"text": "hi", "id": "m-1"},
    {"type": "text", "text": "Ada", "channel": "api"},
    {"text": "hi", "id": "m-1"},  # a repeated id: answered from the first run
    {"type": "quick_reply", "text": "great", "payload": {"mood": "great"}},
    {"type": "postback", "payload": [1, 2.5, None, "é"]},
    {"text": "in a thread", "threadId": "t1"},
]

CONTENT_TYPES = (("thin", "application/json"), ("declared", "application/vnd.a+json"))


async def test_the_thin_path_and_the_declared_route_answer_alike(
    client: httpx.AsyncClient,
) -> None:
    """An ordinary request takes the thin path; a '+json' content type, the declared route."""
    answers: dict[str, list[object]] = {"thin": [], "declared": []}
    for body in MESSAGES_OF_BOTH_PATHS:
        for user, content_type in CONTENT_TYPES:
            response = await client.post(
                f"/api/v1/bots/welcome/converse/{user}?include=state",
                content=json.dumps(body),
                headers={"Content-Type": content_type},
            )
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/json"
            answer = response.json()
            del answer["state"]["bot"]  # bot memory is shared: both users count in it
            answers[user].append(answer)
    assert answers["thin"] == answers["declared"]


async def test_a_payload_integer_beyond_64_bits_is_refused_on_both_paths(
    client: httpx.AsyncClient,
) -> None:
    """Refused, never read as a float that changes the number (a faster parser would)."""
    for user, content_type in CONTENT_TYPES:
        for number, status in (
            (2**64, 400),
            (-(2**63) - 1, 400),
            (10**29, 400),
            (2**64 - 1, 200),  # the largest that fit: unsigned and signed 64 bits
            (-(2**63), 200),
        ):
            response = await client.post(
                f"/api/v1/bots/welcome/converse/{user}",
                content=f'{{"type": "payload", "payload": {{"v": {number}}}}}',
                headers={"Content-Type": content_type},
            )
            assert response.status_code == status, (user, number, response.text)
            if status == 400:
                assert "64 bits" in response.json()["message"]


def test_the_thin_path_reads_a_payload_s_integers_exactly() -> None:
    message = _message(b'{"type": "payload", "payload": [18446744073709551615, 1e300]}')
    assert message is not None
    assert message.payload == [2**64 - 1, 1e300]
    assert type(message.payload[0]) is int
