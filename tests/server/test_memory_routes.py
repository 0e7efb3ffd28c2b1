"""The memory routes: look at a user's four memories, change them, end a session, erase."""

from __future__ import annotations

from datetime import timedelta

import httpx

from botmemory import ManualClock
from botmemory.dialog import DialogEngine
from tests.conftest import DAY, START
from tests.server.conftest import ECHO_TOKEN, WELCOME_TOKEN, bearer, converse

MEMORY = "/api/v1/bots/welcome/users/u1/memory"


async def start_conversation(client: httpx.AsyncClient) -> None:
    for text in ("hi", "Ada", "great"):
        await converse(client, text)


async def test_the_view_has_every_scope_with_its_expiries(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await start_conversation(client)
    clock.advance(timedelta(seconds=60))
    view = (await client.get(MEMORY)).json()
    assert view["now"] == START + 60
    assert view["nowIso"] == "2023-11-14T22:14:20.000Z"
    assert view["session"]["alive"] is True
    assert view["session"]["expiresAt"] == START + 30 * 60
    user = view["scopes"]["user"]
    assert user["name"] == {"value": "Ada", "expiresAt": None, "expiresAtIso": None}
    assert user["mood"]["expiresAt"] == START + DAY
    assert user["mood"]["expiresAtIso"] == "2023-11-15T22:13:20.000Z"
    assert view["scopes"]["session"]["lastMessages"]["expiresAt"] == START + 30 * 60
    assert view["scopes"]["temp"]["__dialog"]["expiresAt"] == START + 5 * 60
    assert view["scopes"]["bot"]["conversations"]["value"] == 1


async def test_the_view_is_the_document_to_json_gives(
    client: httpx.AsyncClient, engine: DialogEngine, clock: ManualClock
) -> None:
    """``MemoryView.to_json()`` (``memory show --json``) is what the HTTP API shows."""
    await start_conversation(client)
    clock.advance(timedelta(seconds=60))
    shown = (await client.get(MEMORY)).json()
    assert shown == (await engine.memory.peek("welcome", "u1")).to_json()


async def test_reading_does_not_keep_the_session_alive(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await start_conversation(client)
    clock.advance(timedelta(seconds=29 * 60))
    await client.get(MEMORY)
    clock.advance(timedelta(seconds=2 * 60))
    view = (await client.get(MEMORY)).json()
    assert view["session"] == {"alive": False, "expiresAt": None, "expiresAtIso": None}
    assert view["scopes"]["session"] == {}
    assert view["scopes"]["temp"] == {}
    assert view["scopes"]["user"]["name"]["value"] == "Ada"


async def test_put_a_user_variable_applies_its_retention_policy(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    clock.advance(timedelta(seconds=10))
    response = await client.put("/api/v1/bots/welcome/memory/user/u1/mood", json={"value": "ok"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "scope": "user",
        "ownerId": "u1",
        "name": "mood",
        "value": "ok",
        "expiresAt": START + 10 + DAY,
        "expiresAtIso": "2023-11-15T22:13:30.000Z",
        "deleted": False,
    }
    view = (await client.get(MEMORY)).json()
    assert view["scopes"]["user"]["mood"]["value"] == "ok"
    assert view["session"]["alive"] is False  # an edit starts no session


async def test_put_session_and_temp_of_a_live_session(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await start_conversation(client)
    clock.advance(timedelta(seconds=2 * 60))
    for scope in ("session", "temp"):
        response = await client.put(
            f"/api/v1/bots/welcome/memory/{scope}/u1/note", json={"value": {"a": [1, 2]}}
        )
        assert response.status_code == 200, response.text
    view = (await client.get(MEMORY)).json()
    assert view["scopes"]["session"]["note"]["value"] == {"a": [1, 2]}
    assert view["session"]["expiresAt"] == START + 30 * 60  # the edit did not prolong it


async def test_put_session_memory_without_a_live_session_is_409(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put("/api/v1/bots/welcome/memory/session/u1/x", json={"value": 1})
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert "has timed out or never started" in response.json()["message"]


async def test_put_temp_memory_of_a_timed_out_dialog_is_409(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await start_conversation(client)
    clock.advance(timedelta(seconds=6 * 60))  # past dialog.timeoutInterval, within the session
    temp = await client.put("/api/v1/bots/welcome/memory/temp/u1/x", json={"value": 1})
    assert temp.status_code == 409
    assert "the dialog of session 'welcome::api::u1' has timed out" in temp.json()["message"]
    session = await client.put("/api/v1/bots/welcome/memory/session/u1/x", json={"value": 1})
    assert session.status_code == 200


async def test_bot_memory_is_owned_by_the_bot(client: httpx.AsyncClient) -> None:
    ok = await client.put("/api/v1/bots/welcome/memory/bot/welcome/motd", json={"value": "hi"})
    assert ok.status_code == 200, ok.text
    view = (await client.get(MEMORY)).json()
    assert view["scopes"]["bot"]["motd"]["value"] == "hi"
    wrong = await client.put("/api/v1/bots/welcome/memory/bot/u1/motd", json={"value": "hi"})
    assert wrong.status_code == 400
    assert "owner of bot memory" in wrong.json()["message"]


async def test_delete_a_variable(client: httpx.AsyncClient) -> None:
    await start_conversation(client)
    response = await client.delete("/api/v1/bots/welcome/memory/user/u1/mood")
    assert response.status_code == 200
    assert response.json()["deleted"] is True
    view = (await client.get(MEMORY)).json()
    assert "mood" not in view["scopes"]["user"]
    again = await client.delete("/api/v1/bots/welcome/memory/user/u1/mood")
    assert again.status_code == 404
    dead = await client.delete("/api/v1/bots/welcome/memory/session/nobody/topic")
    assert dead.status_code == 404


async def test_bad_values_and_scopes_are_400(client: httpx.AsyncClient) -> None:
    url = "/api/v1/bots/welcome/memory"
    assert (await client.put(f"{url}/user/u1/x", json={"value": 2**70})).status_code == 400
    assert (await client.put(f"{url}/user/u1/x", json={})).status_code == 400
    assert (await client.put(f"{url}/user/u1/x", json={"value": "x" * 5000})).status_code == 413
    assert (await client.put(f"{url}/global/u1/x", json={"value": 1})).status_code == 400
    assert (await client.put(f"{url}/user/u1/a%01", json={"value": 1})).status_code == 400


async def test_end_session_empties_session_and_temp(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await start_conversation(client)
    response = await client.delete("/api/v1/bots/welcome/users/u1/session")
    assert response.json() == {"ended": True}
    view = (await client.get(MEMORY)).json()
    assert view["scopes"]["session"] == {}
    assert view["scopes"]["temp"] == {}
    assert view["scopes"]["user"]["name"]["value"] == "Ada"
    # the next message starts the flow over; the user is known now
    replies = await converse(client, "hello again")
    assert replies[0].startswith("Welcome back, Ada!")
    clock.advance(timedelta(seconds=31 * 60))
    assert (await client.delete("/api/v1/bots/welcome/users/u1/session")).json() == {"ended": False}


async def test_export_and_forget_a_user(client: httpx.AsyncClient) -> None:
    await start_conversation(client)
    exported = (await client.get("/api/v1/bots/welcome/users/u1/export")).json()
    assert exported["userId"] == "u1"
    assert exported["user"]["name"]["value"] == "Ada"
    assert exported["sessions"][0]["sessionId"] == "welcome::api::u1"
    assert exported["kvs"] == {"storage/users/u1/numberOfConversations": 1}
    forgotten = await client.delete("/api/v1/bots/welcome/users/u1")
    assert forgotten.status_code == 200
    assert forgotten.json()["deleted"]["kvs"] == 1
    after = (await client.get("/api/v1/bots/welcome/users/u1/export")).json()
    assert after["user"] == {}
    assert after["sessions"] == []
    assert after["kvs"] == {}


async def test_memory_routes_need_a_token_of_the_bot(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get(MEMORY)).status_code == 401
    assert (await anonymous.get(MEMORY, headers=bearer(ECHO_TOKEN))).status_code == 403
    assert (await anonymous.get(MEMORY, headers=bearer(WELCOME_TOKEN))).status_code == 200
    # even a public bot's memory needs a token
    public = await anonymous.get("/api/v1/bots/echo/users/u1/memory")
    assert public.status_code == 401
    unknown = await anonymous.get("/api/v1/bots/nobot/users/u1/memory", headers=bearer(ECHO_TOKEN))
    assert unknown.status_code == 403  # a bot token learns nothing about other bots


async def test_unknown_bot_is_404_for_an_admin(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/bots/nobot/users/u1/memory")
    assert response.status_code == 404
    assert "the bots are echo, welcome" in response.json()["message"]


async def test_a_user_id_with_a_slash_is_reached_percent_encoded_on_every_route(
    client: httpx.AsyncClient,
) -> None:
    base = "/api/v1/bots/welcome"
    user = "a%2Fb"
    converse = await client.post(f"{base}/converse/{user}", json={"text": "hi"})
    assert converse.status_code == 200, converse.text
    await client.post(f"{base}/converse/{user}", json={"text": "Ada"})
    view = await client.get(f"{base}/users/{user}/memory")
    assert view.status_code == 200, view.text
    assert view.json()["userId"] == "a/b"
    assert view.json()["scopes"]["user"]["name"]["value"] == "Ada"
    assert (await client.get(f"{base}/users/a/memory")).json()["scopes"]["user"] == {}
    put = await client.put(f"{base}/memory/user/{user}/mood", json={"value": "fine"})
    assert put.status_code == 200, put.text
    assert put.json()["ownerId"] == "a/b"
    deleted = await client.delete(f"{base}/memory/user/{user}/mood")
    assert deleted.status_code == 200, deleted.text
    exported = await client.get(f"{base}/users/{user}/export")
    assert exported.status_code == 200, exported.text
    assert exported.json()["userId"] == "a/b"
    assert exported.json()["user"]["name"]["value"] == "Ada"
    ended = await client.delete(f"{base}/users/{user}/session")
    assert ended.status_code == 200, ended.text
    assert ended.json() == {"ended": True}
    # a user called "a/session" is a user, not the session route of "a"
    await client.post(f"{base}/converse/a%2Fsession", json={"text": "hi"})
    forgot = await client.delete(f"{base}/users/a%2Fsession")
    assert forgot.status_code == 200, forgot.text
    assert sum(forgot.json()["deleted"].values()) > 0
    forgot = await client.delete(f"{base}/users/{user}")
    assert forgot.status_code == 200, forgot.text
    after = await client.get(f"{base}/users/{user}/memory")
    assert after.json()["scopes"]["user"] == {}


async def test_an_encoded_slash_in_a_key_and_an_encoded_nul(client: httpx.AsyncClient) -> None:
    kvs = "/api/v1/bots/welcome/kvs"
    assert (await client.put(f"{kvs}/storage%2Fglobal/x", json={"value": 1})).status_code == 200
    assert (await client.get(f"{kvs}/storage/global/x")).json()["value"] == 1
    escaped = await client.put(f"{kvs}/storage/users/a%252Fb/topic", json={"value": 2})
    assert escaped.json()["key"] == "storage/users/a%2Fb/topic"
    nul = await client.get("/api/v1/bots/welcome/users/a%00b/memory")
    assert nul.status_code == 400
    assert "NUL" in nul.json()["message"]


async def test_an_unknown_field_is_400_naming_it_and_nothing_is_stored(
    client: httpx.AsyncClient,
) -> None:
    """Variables take no expiry over HTTP (retention policies set it): a field is refused."""
    url = "/api/v1/bots/welcome/memory/user/u1/x"
    response = await client.put(url, json={"value": "secret", "expiry": "1h"})
    assert response.status_code == 400, response.text
    assert "expiry" in response.text
    assert "x" not in (await client.get(MEMORY)).json()["scopes"]["user"]
