"""Exporting and erasing one user, on every backend."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

import pytest

from botmemory import (
    ConflictError,
    ErasureCounts,
    ManualClock,
    Memory,
    TurnState,
    UserErasedError,
)
from botmemory.ids import Identity
from botmemory.kvs import conversation_storage_key, user_storage_key
from tests.conftest import DAY, OpenMemory


async def populate(mem: Memory, bot: str = "b", user: str = "u1") -> None:
    async with mem.turn(bot, user, message={"type": "text", "text": "hello"}) as state:
        state.user.update({"name": "Ada", "email": "ada@example.com"})
        state.session["topic"] = "billing"
        state.temp["step"] = 2
        state.bot["shared"] = "stays"
    async with mem.turn(bot, user, thread_id="t1") as state:
        state.session["thread"] = True
    kvs = mem.kvs.for_bot(bot)
    await kvs.set(f"storage/users/{user}/score", 10)
    await kvs.set("storage/global/visits", 1)


async def test_export_returns_everything_stored_for_the_user(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory({"dataRetention": {"policies": {"email": "60d"}}})
    await populate(mem)
    await populate(mem, user="u2")
    export = await mem.export_user("b", "u1")
    data = export.to_json()
    json.dumps(data)  # serialisable as it is
    assert (export.bot_id, export.user_id) == ("b", "u1")
    assert data["user"] == {
        "name": {"value": "Ada", "changedAt": "2023-11-14T22:13:20.000Z", "expiresAt": None},
        "email": {
            "value": "ada@example.com",
            "changedAt": "2023-11-14T22:13:20.000Z",
            "expiresAt": "2024-01-13T22:13:20.000Z",
        },
    }
    sessions = sorted(export.sessions, key=lambda s: s.session_id)
    assert [s.session_id for s in sessions] == ["b::api::u1", "b::api::u1::t1"]
    assert sessions[0].variables["topic"] == "billing"
    assert sessions[0].temp == {"step": 2}
    assert export.kvs == {"storage/users/u1/score": 10}


async def test_export_leaves_out_what_has_expired(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory({"dataRetention": {"policies": {"email": "60d"}}})
    await populate(mem)
    clock.advance(timedelta(seconds=61 * DAY))
    data = await mem.export_user("b", "u1")
    assert set(data.user) == {"name"}
    assert data.sessions == ()


async def test_forget_removes_everything_and_only_that_user(mem: Memory) -> None:
    await populate(mem)
    await populate(mem, user="u2")
    await populate(mem, bot="other")
    counts = await mem.forget_user("b", "u1")
    assert counts == ErasureCounts(user_variables=2, sessions=2, session_variables=4, kvs=1)
    data = await mem.export_user("b", "u1")
    assert (data.user, data.sessions, data.kvs) == ({}, (), {})
    assert (await mem.export_user("b", "u2")).user != {}
    assert (await mem.export_user("other", "u1")).user != {}
    async with mem.turn("b", "u1") as state:
        assert dict(state.user) == {}
        assert state.is_new_session
        assert state.bot["shared"] == "stays"
    assert await mem.kvs.for_bot("b").get("storage/global/visits") == 1


async def test_forget_an_unknown_user_removes_nothing(mem: Memory) -> None:
    assert (await mem.forget_user("b", "nobody")).to_json() == {
        "user_variables": 0,
        "sessions": 0,
        "session_variables": 0,
        "kvs": 0,
    }


async def test_a_user_id_with_a_slash_never_reaches_another_users_keys(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set(user_storage_key("a/b", "cart"), ["secret of user a/b"])
    await kvs.set(user_storage_key("a", "cart"), ["a's own"])
    assert user_storage_key("a/b", "cart") == "storage/users/a%2Fb/cart"
    exported = await mem.export_user("b", "a")
    assert exported.kvs == {"storage/users/a/cart": ["a's own"]}
    await mem.forget_user("b", "a")
    assert await kvs.get(user_storage_key("a/b", "cart")) == ["secret of user a/b"]


async def remember_conversation(mem: Memory, user: str, thread: str | None = None) -> str:
    """Store a conversation variable of the session, as setConversationVariable does."""
    key = conversation_storage_key(Identity.of("b", user, thread_id=thread), "topic")
    async with mem.turn("b", user, thread_id=thread) as state:
        await state.kvs.set(key, f"topic of {user} {thread}")
    return key


async def test_export_and_forget_cover_the_users_conversations_ended_or_not(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory({"dialog": {"sessionTimeoutInterval": "30m"}})
    ended = await remember_conversation(mem, "u1")
    clock.advance(timedelta(seconds=DAY))
    assert (await mem.janitor.run_once()).sessions == 1
    assert await mem.kvs.for_bot("b").get(ended) == "topic of u1 None"  # outlives its session
    mine = [
        ended,
        await remember_conversation(mem, "u1", "t1"),
        await remember_conversation(mem, "u1", "a::b/c"),
    ]
    others = [await remember_conversation(mem, user) for user in ("u1::t1", "u10", "u1:")]
    others.append(await remember_conversation(mem, "u1::x", "t1"))
    key = conversation_storage_key(Identity.of("b", "u1", "web"), "topic")
    await mem.kvs.for_bot("b").set(key, "another channel's user")
    others.append(key)
    assert len(set(mine + others)) == len(mine + others)  # no two sessions share a key
    exported = await mem.export_user("b", "u1")
    assert sorted(exported.kvs) == sorted(mine)
    counts = await mem.forget_user("b", "u1")
    assert (counts.sessions, counts.kvs) == (2, 3)
    kvs = mem.kvs.for_bot("b")
    assert [await kvs.exists(k) for k in mine] == [False] * 3
    assert [await kvs.exists(k) for k in others] == [True] * len(others)
    assert (await mem.export_user("b", "u1")).kvs == {}


async def test_a_turn_running_while_its_user_is_erased_writes_nothing(mem: Memory) -> None:
    async with mem.turn("b", "u1", message={"type": "text", "text": "my secret"}) as state:
        state.user["email"] = "a@example.com"
    loaded, done = asyncio.Event(), asyncio.Event()

    async def slow_turn() -> None:
        async with mem.turn("b", "u1", message={"type": "text", "text": "hi"}) as state:
            state.user["later"] = True
            loaded.set()
            await done.wait()

    task = asyncio.create_task(slow_turn())
    await loaded.wait()
    await mem.forget_user("b", "u1")
    done.set()
    with pytest.raises(UserErasedError):
        await task
    exported = await mem.export_user("b", "u1")
    assert (exported.user, exported.sessions) == ({}, ())
    async with mem.turn("b", "u1") as state:  # the next turn works as usual
        assert dict(state.user) == {}


async def erased_while_loaded(
    erasing: Memory, turn: AbstractAsyncContextManager[TurnState]
) -> None:
    """Run ``turn`` (of another ``Memory``), setting user ``nick``, while ``erasing``
    erases u1 in the middle of it: the turn must conflict, and nothing of u1 stay stored."""
    loaded, done = asyncio.Event(), asyncio.Event()

    async def slow_turn() -> None:
        async with turn as state:
            state.user["nick"] = "ada"
            loaded.set()
            await done.wait()

    task = asyncio.create_task(slow_turn())
    await loaded.wait()
    await erasing.forget_user("b", "u1")
    done.set()
    with pytest.raises(ConflictError):
        await task
    exported = await erasing.export_user("b", "u1")
    assert (exported.user, exported.sessions) == ({}, ())


@pytest.mark.parametrize("how", ["turn", "edit"])
async def test_a_turn_elsewhere_without_a_session_does_not_write_an_erased_user_back(
    backend: str, open_memory: OpenMemory, how: str
) -> None:
    """Another ``Memory`` on the database stands for another process: no in-process
    notice of the erasure reaches it; the checks of what it loaded must."""
    if backend == "memory":
        pytest.skip("memory:// is one process's")
    serving, erasing = await open_memory(), await open_memory()
    async with erasing.edit("b", "u1") as state:  # user memory only, no session
        state.user["email"] = "a@example.com"
    message = {"type": "text", "text": "my secret"}
    turn = serving.turn("b", "u1", message=message) if how == "turn" else serving.edit("b", "u1")
    await erased_while_loaded(erasing, turn)


async def test_an_edit_elsewhere_beside_a_timed_out_session_does_not_write_an_erased_user_back(
    backend: str, open_memory: OpenMemory, clock: ManualClock
) -> None:
    """An edit does not write the timed-out session it found (not swept yet), so it
    checks the user memory it loaded, as when no session is stored."""
    if backend == "memory":
        pytest.skip("memory:// is one process's")
    settings = {"dialog": {"sessionTimeoutInterval": "30m"}}
    serving, erasing = await open_memory(settings), await open_memory(settings)
    async with erasing.turn("b", "u1", message={"type": "text", "text": "hi"}) as state:
        state.user["email"] = "a@example.com"
    clock.advance(timedelta(minutes=31))
    await erased_while_loaded(erasing, serving.edit("b", "u1"))


async def test_a_first_turn_beside_another_session_of_the_user_commits(
    backend: str, open_memory: OpenMemory
) -> None:
    """The other side: with nothing erased, a turn without a session commits as before."""
    if backend == "memory":
        pytest.skip("memory:// is one process's")
    serving, other = await open_memory(), await open_memory()
    async with other.edit("b", "u1") as state:
        state.user["email"] = "a@example.com"
    async with serving.turn("b", "u1", message={"type": "text", "text": "hi"}) as state:
        state.user["nick"] = "ada"
        async with other.turn("b", "u1", "web") as elsewhere:  # another session, same user
            elsewhere.session["x"] = 1
    exported = await other.export_user("b", "u1")
    assert {name: v.value for name, v in exported.user.items()} == {
        "email": "a@example.com",
        "nick": "ada",
    }


def change_values(user: Any) -> None:
    user.incr("x")
    user["z"] = 3


def delete_x(user: Any) -> None:
    del user["x"]


@pytest.mark.parametrize(
    ("elsewhere", "conflicts", "after"),
    [
        pytest.param(change_values, False, {"x": 2, "y": 2, "z": 3}, id="values-changed"),
        pytest.param(delete_x, True, {"y": 1}, id="one-deleted"),
    ],
)
async def test_a_first_turn_conflicts_only_when_the_user_memory_it_loaded_loses_a_name(
    backend: str,
    open_memory: OpenMemory,
    elsewhere: Callable[[Any], None],
    conflicts: bool,
    after: dict[str, int],
) -> None:
    """Its erasure check is that the user memory it loaded is still stored: a value, a
    count or a variable another session adds meanwhile does not matter; a name gone is
    what an erasure looks like, so the turn conflicts (and ``run_turn`` runs it again)."""
    if backend == "memory":
        pytest.skip("memory:// is one process's")
    serving, other = await open_memory(), await open_memory()
    async with other.turn("b", "u1", thread_id="t1") as state:
        state.user["x"] = 1
        state.user["y"] = 1
    with pytest.raises(ConflictError) if conflicts else contextlib.nullcontext():
        async with serving.turn("b", "u1", thread_id="t2") as state:  # no session stored
            state.user["y"] = 2
            async with other.turn("b", "u1", thread_id="t1") as meanwhile:
                elsewhere(meanwhile.user)
    async with other.turn("b", "u1", thread_id="t1") as state:
        assert dict(state.user) == after


async def test_export_hides_temp_timed_out_under_the_current_setting(
    backend: str, open_memory: OpenMemory, clock: ManualClock
) -> None:
    if backend == "memory":
        pytest.skip("memory:// keeps nothing once closed")
    first = await open_memory({"dialog": {"timeoutInterval": "10m"}})
    async with first.turn("b", "u1") as state:
        state.temp["card"] = "4111 1111"
    await first.close()
    second = await open_memory({"dialog": {"timeoutInterval": "1m"}})
    clock.advance(timedelta(seconds=120))
    exported = await second.export_user("b", "u1")
    assert exported.sessions[0].temp == {}
