"""The records ``Memory`` answers with: frozen, and their JSON documents a fixed contract.

The golden documents below are what ``Memory.peek`` and ``Memory.export_user`` returned
as dicts before they returned records; the HTTP API, ``botmemory memory show --json``
and export files show exactly these, so they must not drift.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest

from botmemory import (
    ErasureCounts,
    ExportedSession,
    ExportedVariable,
    ManualClock,
    Memory,
    MemoryView,
    SessionView,
    UserExport,
    VariableView,
)
from tests.conftest import OpenMemory

LAST_MESSAGES = [{"text": "hello", "timestamp": "2023-11-14T22:13:20.000Z", "type": "text"}]

GOLDEN_PEEK: dict[str, Any] = {
    "botId": "b",
    "userId": "u1",
    "channel": "api",
    "threadId": None,
    "sessionId": "b::api::u1",
    "now": 1700000120.0,
    "nowIso": "2023-11-14T22:15:20.000Z",
    "session": {
        "alive": True,
        "expiresAt": 1700001800.0,
        "expiresAtIso": "2023-11-14T22:43:20.000Z",
    },
    "scopes": {
        "user": {
            "name": {"value": "Ada", "expiresAt": None, "expiresAtIso": None},
            "email": {
                "value": "ada@example.com",
                "expiresAt": 1705184000.0,
                "expiresAtIso": "2024-01-13T22:13:20.000Z",
            },
            "mood": {
                "value": {"now": "ok"},
                "expiresAt": 1700086400.0,
                "expiresAtIso": "2023-11-15T22:13:20.000Z",
            },
        },
        "session": {
            "topic": {
                "value": "billing",
                "expiresAt": 1700001800.0,
                "expiresAtIso": "2023-11-14T22:43:20.000Z",
            },
            "lastMessages": {
                "value": LAST_MESSAGES,
                "expiresAt": 1700001800.0,
                "expiresAtIso": "2023-11-14T22:43:20.000Z",
            },
        },
        "temp": {
            "step": {
                "value": 2,
                "expiresAt": 1700000300.0,
                "expiresAtIso": "2023-11-14T22:18:20.000Z",
            }
        },
        "bot": {"shared": {"value": "stays", "expiresAt": None, "expiresAtIso": None}},
    },
}

GOLDEN_EXPORT: dict[str, Any] = {
    "botId": "b",
    "channel": "api",
    "userId": "u1",
    "exportedAt": "2023-11-14T22:15:20.000Z",
    "user": {
        "name": {"value": "Ada", "changedAt": "2023-11-14T22:13:20.000Z", "expiresAt": None},
        "email": {
            "value": "ada@example.com",
            "changedAt": "2023-11-14T22:13:20.000Z",
            "expiresAt": "2024-01-13T22:13:20.000Z",
        },
        "mood": {
            "value": {"now": "ok"},
            "changedAt": "2023-11-14T22:13:20.000Z",
            "expiresAt": "2023-11-15T22:13:20.000Z",
        },
    },
    "sessions": [
        {
            "sessionId": "b::api::u1",
            "startedAt": "2023-11-14T22:13:20.000Z",
            "lastSeen": "2023-11-14T22:13:20.000Z",
            "expiresAt": "2023-11-14T22:43:20.000Z",
            "variables": {"topic": "billing", "lastMessages": LAST_MESSAGES},
            "temp": {"step": 2},
            "messages": [],
        },
        {
            "sessionId": "b::api::u1::t1",
            "startedAt": "2023-11-14T22:14:50.000Z",
            "lastSeen": "2023-11-14T22:14:50.000Z",
            "expiresAt": "2023-11-14T22:44:50.000Z",
            "variables": {"thread": True},
            "temp": {},
            "messages": [],
        },
    ],
    "kvs": {"storage/users/u1/score": 10, "storage/conversation/b::api::u1/cart": ["tea"]},
}


async def populate(mem: Memory, clock: ManualClock) -> None:
    """Something in every scope, a thread's session, and the user's keys."""
    async with mem.turn("b", "u1", message={"type": "text", "text": "hello"}) as state:
        state.user.update({"name": "Ada", "email": "ada@example.com", "mood": {"now": "ok"}})
        state.session["topic"] = "billing"
        state.temp["step"] = 2
        state.bot["shared"] = "stays"
    clock.advance(timedelta(seconds=90))
    async with mem.turn("b", "u1", thread_id="t1") as state:
        state.session["thread"] = True
    kvs = mem.kvs.for_bot("b")
    await kvs.set("storage/users/u1/score", 10)
    await kvs.set("storage/conversation/b::api::u1/cart", ["tea"], expiry="1h")
    await kvs.set("storage/global/visits", 1)
    clock.advance(timedelta(seconds=30))


def same_document(found: dict[str, Any], golden: dict[str, Any]) -> None:
    """Equal, with the same keys in the same order at every level the records build.

    The order of variables, sessions and keys is the storage's, as before."""
    assert found == golden
    assert json.dumps(found, sort_keys=True) == json.dumps(golden, sort_keys=True)
    assert list(found) == list(golden)


async def test_peek_to_json_is_the_former_document(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory({"dataRetention": {"policies": {"email": "60d", "mood": "1d"}}})
    await populate(mem, clock)
    found: Any = (await mem.peek("b", "u1")).to_json()
    same_document(found, GOLDEN_PEEK)
    assert list(found["session"]) == ["alive", "expiresAt", "expiresAtIso"]
    assert list(found["scopes"]) == ["user", "session", "temp", "bot"]
    assert list(found["scopes"]["temp"]["step"]) == ["value", "expiresAt", "expiresAtIso"]


async def test_export_to_json_is_the_former_document(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory({"dataRetention": {"policies": {"email": "60d", "mood": "1d"}}})
    await populate(mem, clock)
    found: Any = (await mem.export_user("b", "u1")).to_json()
    found["sessions"].sort(key=lambda s: s["sessionId"])  # the storage's order otherwise
    same_document(found, GOLDEN_EXPORT)
    assert list(found["sessions"][0]) == list(GOLDEN_EXPORT["sessions"][0])
    assert list(found["user"]["mood"]) == ["value", "changedAt", "expiresAt"]


async def test_the_records_hold_what_the_documents_show(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory({"dataRetention": {"policies": {"email": "60d", "mood": "1d"}}})
    await populate(mem, clock)
    view = await mem.peek("b", "u1")
    assert view.session == SessionView(alive=True, expires_at=1700001800.0)
    assert view.scopes["user"]["email"] == VariableView("ada@example.com", 1705184000.0)
    assert view.scopes["bot"]["shared"].expires_at is None
    export = await mem.export_user("b", "u1")
    assert export.exported_at == 1700000120.0
    assert export.user["name"] == ExportedVariable("Ada", 1700000000.0, None)
    threads = {s.session_id: s for s in export.sessions}
    assert threads["b::api::u1::t1"].variables == {"thread": True}
    assert dict(export.kvs) == GOLDEN_EXPORT["kvs"]
    counts = await mem.forget_user("b", "u1")
    assert counts == ErasureCounts(user_variables=3, sessions=2, session_variables=4, kvs=2)
    assert counts.to_json() == {
        "user_variables": 3,
        "sessions": 2,
        "session_variables": 4,
        "kvs": 2,
    }


def test_the_records_are_frozen() -> None:
    variable = VariableView("Ada", None)
    session = SessionView(alive=False, expires_at=None)
    view = MemoryView("b", "u1", "api", None, "b::api::u1", 0.0, session, {"user": {}})
    exported = ExportedVariable("Ada", 0.0, None)
    export = UserExport("b", "api", "u1", 0.0, {}, (), {})
    stored = ExportedSession("b::api::u1", 0.0, 0.0, 1.0, {}, {})
    counts = ErasureCounts(0, 0, 0, 0)
    for record, field in [
        (variable, "value"),
        (session, "alive"),
        (view, "now"),
        (exported, "value"),
        (export, "user"),
        (stored, "temp"),
        (counts, "kvs"),
    ]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, field, None)
    assert view.to_json()["scopes"] == {"user": {}, "session": {}, "temp": {}, "bot": {}}
