"""Shortened session and dialog timeouts applied to the sessions stored before, on every backend.

At start-up, :class:`~botmemory.Memory` scans the stored sessions in bounded batches
(``Storage.scan_sessions``), computes each one's timers with
:meth:`~botmemory.storage.base.SessionRecord.within` and writes them back with a guarded
update (``Storage.update_sessions``) that skips a session a turn rewrote meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from botmemory import ManualClock, Memory
from botmemory.ids import Identity
from botmemory.storage.base import (
    SessionCursor,
    SessionRecord,
    SessionUpdate,
    Storage,
    TurnKeys,
    TurnWrite,
)
from tests.conftest import DAY, START, OpenMemory, storages_on

LONG = {"dialog": {"sessionTimeoutInterval": "1d", "timeoutInterval": "1h"}}
SHORT = {"dialog": {"sessionTimeoutInterval": "30m", "timeoutInterval": "5m"}}


async def stored_session(mem: Memory, user_id: str) -> SessionRecord | None:
    identity = Identity.of("b", user_id)
    keys = TurnKeys("b", identity.user_key, identity.session_key)
    return (await mem.storage.load_turn(keys)).session


async def scan_all(storage: Storage, limit: int) -> list[list[SessionRecord]]:
    batches: list[list[SessionRecord]] = []
    after: SessionCursor | None = None
    while True:
        sessions, after = await storage.scan_sessions(after, limit)
        batches.append(sessions)
        if after is None:
            return batches


def session(bot_id: str, key: str) -> SessionRecord:
    return SessionRecord(bot_id, key, f"user-{key}", START, START, START + DAY, START + 3600)


# -- the storage contract ---------------------------------------------------------------
async def test_a_scan_in_bounded_batches_returns_every_stored_session(backend_url: str) -> None:
    async with storages_on(backend_url) as open_storage:
        storage = await open_storage()
        stored = [session("b", f"s{i:02}") for i in range(7)] + [session("c", "s00")]
        for s in stored:
            await storage.commit_turn(TurnWrite(s))
        batches = await scan_all(storage, 3)
    found = {(s.bot_id, s.key) for batch in batches for s in batch}
    assert found == {(s.bot_id, s.key) for s in stored}
    if not backend_url.startswith("redis"):  # ZSCAN's COUNT is a hint: a small set comes whole
        assert [len(batch) for batch in batches] == [3, 3, 2]


async def test_an_update_applies_only_to_a_session_unchanged_since_the_scan(
    backend_url: str,
) -> None:
    async with storages_on(backend_url) as open_storage:
        storage = await open_storage()
        for key in ("kept", "rewritten", "deleted"):
            await storage.commit_turn(TurnWrite(session("b", key)))
        read = {s.key: s for batch in await scan_all(storage, 10) for s in batch}
        rewritten = replace(read["rewritten"], last_seen=START + 60)  # a turn meanwhile
        await storage.commit_turn(TurnWrite(rewritten, session_version=rewritten.version))
        assert await storage.delete_sessions([read["deleted"]]) == 1
        updates = [SessionUpdate(s, START + 1800, START + 300) for s in read.values()]
        applied = await storage.update_sessions(updates)
        assert [u.read.key for u in applied] == ["kept"]
        now = {s.key: s for batch in await scan_all(storage, 10) for s in batch}
    assert set(now) == {"kept", "rewritten"}  # a deleted session stays deleted
    kept = now["kept"]
    assert (kept.expires_at, kept.temp_expires_at) == (START + 1800, START + 300)
    assert kept.version == applied[0].version != read["kept"].version
    assert (now["rewritten"].last_seen, now["rewritten"].expires_at) == (START + 60, START + DAY)


# -- through Memory, at start-up ----------------------------------------------------------
@pytest.fixture
def shared(backend: str) -> None:
    if backend == "memory":
        pytest.skip("memory:// keeps nothing once closed")


@pytest.mark.usefixtures("shared")
async def test_more_sessions_than_one_batch_are_all_brought_within(
    open_memory: OpenMemory, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("botmemory.memory._RECONCILE_BATCH", 3)
    first = await open_memory(LONG)
    users = [f"u{i}" for i in range(8)]
    for user in users:
        async with first.turn("b", user) as state:
            state.temp["step"] = 1
    await first.close()
    second = await open_memory(SHORT)
    for user in users:
        s = await stored_session(second, user)
        assert s is not None
        assert (s.expires_at, s.temp_expires_at) == (START + 30 * 60, START + 5 * 60)
    clock.advance(timedelta(minutes=30))
    report = await second.janitor.run_once()
    assert (report.temp, report.sessions) == (len(users), len(users))


@pytest.mark.usefixtures("shared")
async def test_sessions_on_both_sides_of_the_shortened_timeout(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    first = await open_memory(LONG)
    async with first.turn("b", "past") as state:
        state.session["n"] = 1
    clock.advance(timedelta(seconds=1))
    async with first.turn("b", "inside") as state:
        state.session["n"] = 2
    await first.close()
    second = await open_memory(SHORT)
    clock.advance(timedelta(minutes=30) - timedelta(seconds=1))  # "past" ends right now
    report = await second.janitor.run_once()
    assert report.sessions == 1
    assert await stored_session(second, "past") is None
    async with second.turn("b", "inside") as state:  # one second left
        assert not state.is_new_session
        assert state.session["n"] == 2
    async with second.turn("b", "past") as state:
        assert state.is_new_session


@pytest.mark.usefixtures("shared")
async def test_a_turn_between_the_scan_and_the_update_is_not_overwritten(
    open_memory: OpenMemory, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await open_memory(LONG)  # a process that still runs with the long timeouts
    for user in ("u1", "u2"):
        async with old.turn("b", user) as state:
            state.session["n"] = 1
    storage_class = type(old.storage)
    update_sessions = storage_class.update_sessions
    rounds: list[list[str]] = []

    async def turn_first(storage: Any, updates: Sequence[SessionUpdate]) -> list[SessionUpdate]:
        rounds.append([u.read.user_key for u in updates])
        if len(rounds) == 1:  # between the scan and this update, u1 has a turn
            clock.advance(timedelta(minutes=10))
            async with old.turn("b", "u1") as state:
                state.session["n"] = 2
        return await update_sessions(storage, updates)

    monkeypatch.setattr(storage_class, "update_sessions", turn_first)
    await open_memory(SHORT)
    u1, u2 = [Identity.of("b", user).user_key for user in ("u1", "u2")]
    assert sorted(rounds[0]) == [u1, u2]
    assert rounds[1:] == [[u1]]  # skipped by the guard, read again: the next round's
    brought = await stored_session(old, "u1")
    assert brought is not None
    assert brought.last_seen == START + 10 * 60  # the turn's write stands...
    assert brought.expires_at == START + 40 * 60  # ...brought within the new timeout
    other = await stored_session(old, "u2")
    assert other is not None
    assert other.expires_at == START + 30 * 60
