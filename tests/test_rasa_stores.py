"""Tracker stores and lock stores, as botmemory's storage backends and session locks.

Follows Rasa's ``tests/core/tracker_stores/test_tracker_stores.py``,
``tests/core/tracker_stores/test_redis_tracker_store.py`` (save and retrieve, retrieving
a conversation that does not exist, ``keys()``, deleting, ``max_event_history``,
``record_exp``) and ``tests/core/test_lock_store.py`` (``TicketLock`` serving tickets in
order, ``test_message_order``, ``test_multiple_conversation_ids``, ``test_lock_error``,
a lock's lifetime when its holder is gone).

How Rasa's parts map here: a tracker is a session (its user memory kept apart); its
store is the backend under test; ``retrieve`` is ``Memory.peek``, which changes nothing;
``keys()`` is the live sessions of ``export_user`` and ``kvs.keys``; ``delete`` is
``forget_user`` or ``end_session``. Rasa's lock store hands out tickets per conversation
id; botmemory locks each session for the length of a turn, in the process and, on SQLite,
PostgreSQL and Redis, across processes. Its Redis lock expires after a lifetime; a
Redis lease here lapses after ``lease_timeout`` once its holder stops renewing it.
Redis' native TTLs (``record_exp``) are checked in
``tests/storage/test_redis.py::test_whole_keys_get_native_ttls_from_their_stored_expiry``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import traceback
from datetime import timedelta
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any

import pytest

from botmemory import Identity, LockTimeoutError, ManualClock, Memory
from botmemory.turns import TurnState
from tests.conftest import OpenMemory

SPAWN: SpawnContext = multiprocessing.get_context("spawn")
DEADLINE = 90.0
"""Seconds a test waits for its processes before it gives up on them."""
SESSION = Identity.of("b", "u1").session_key
MS = timedelta(milliseconds=1)


def text(t: str) -> dict[str, str]:
    return {"type": "text", "text": t}


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database that several processes can share, with a session lock across them."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shared.db"
    return str(request.getfixturevalue(f"{request.param}_url"))


# -- tracker stores -------------------------------------------------------------------------------
async def test_what_a_turn_saved_is_retrieved(
    open_memory: OpenMemory, backend: str, backend_url: str
) -> None:
    # Rasa's get_or_create_tracker_store: a slot set and saved comes back, from the
    # same store and, for a store with a server or a file, from another one opened on it.
    mem = await open_memory()
    async with mem.turn("b", "u1", message=text("hi")) as state:
        state.user["location"] = "Easter Island"
        state.session["cuisine"] = "French"
    stores = [mem] if backend == "memory" else [mem, await open_memory(url=backend_url)]
    for store in stores:
        view = await store.peek("b", "u1")
        assert view.session.alive
        assert view.scopes["user"]["location"].value == "Easter Island"
        assert view.scopes["session"]["cuisine"].value == "French"
        async with store.turn("b", "u1") as state:
            assert not state.is_new_session
            assert state.user["location"] == "Easter Island"


async def test_retrieving_a_conversation_that_does_not_exist_creates_nothing(
    mem: Memory,
) -> None:
    # Rasa: retrieve() of an unknown sender id is None, and delete() of one only logs.
    for _ in range(2):
        view = await mem.peek("b", "nobody")
        assert not view.session.alive
        assert view.session.expires_at is None
        assert view.scopes == {"user": {}, "session": {}, "temp": {}, "bot": {}}
    export = await mem.export_user("b", "nobody")
    assert (export.user, export.sessions, export.kvs) == ({}, (), {})
    assert not await mem.end_session("b", "nobody")
    counts = await mem.forget_user("b", "nobody")
    assert counts.to_json() == {
        "user_variables": 0,
        "sessions": 0,
        "session_variables": 0,
        "kvs": 0,
    }


async def test_deleting_a_conversation_leaves_the_others(mem: Memory) -> None:
    # Rasa's delete_tracker: afterwards retrieve() is None; other senders are untouched.
    for user in ("u1", "u2"):
        async with mem.turn("b", user) as state:
            state.user["name"] = user
            state.session["s"] = user
    counts = await mem.forget_user("b", "u1")
    assert (counts.user_variables, counts.sessions) == (1, 1)
    view = await mem.peek("b", "u1")
    assert not view.session.alive
    assert view.scopes["user"] == {}
    other = await mem.peek("b", "u2")
    assert other.scopes["session"]["s"].value == "u2"
    assert other.scopes["user"]["name"].value == "u2"


async def test_keys_list_the_live_conversations_only(mem: Memory, clock: ManualClock) -> None:
    # Rasa's keys(): every stored conversation id. Here a user's live sessions (one
    # per thread); a session that timed out is no longer listed, before any janitor.
    async with mem.turn("b", "u1") as state:
        state.session["s"] = 0
    clock.advance(timedelta(minutes=10))
    for thread in ("t1", "t2"):
        async with mem.turn("b", "u1", thread_id=thread) as state:
            state.session["s"] = thread
    sessions = (await mem.export_user("b", "u1")).sessions
    assert sorted(s.session_id for s in sessions) == [
        "b::api::u1",
        "b::api::u1::t1",
        "b::api::u1::t2",
    ]
    clock.advance(timedelta(minutes=20) - MS)  # the first one's last millisecond
    assert len((await mem.export_user("b", "u1")).sessions) == 3
    clock.advance(MS)
    sessions = (await mem.export_user("b", "u1")).sessions
    assert sorted(s.session_id for s in sessions) == ["b::api::u1::t1", "b::api::u1::t2"]


async def test_records_expire_after_their_expiry_like_record_exp(
    mem: Memory, clock: ManualClock
) -> None:
    # Rasa's RedisTrackerStore(record_exp=...): a record lives that long, then is gone.
    # The key-value store's expiry does that on every backend, judged by the clock.
    kvs = mem.kvs.for_bot("b")
    await kvs.set("tracker/u1", {"events": 3}, expiry="3000s")
    await kvs.set("tracker/u2", {"events": 1})
    clock.advance(timedelta(seconds=3000) - MS)
    assert await kvs.keys("tracker/") == ["tracker/u1", "tracker/u2"]
    assert await kvs.get("tracker/u1") == {"events": 3}
    clock.advance(MS)
    assert await kvs.keys("tracker/") == ["tracker/u2"]
    assert await kvs.get("tracker/u1") is None
    assert (await mem.janitor.run_once()).kvs == 1


async def test_a_long_conversation_keeps_its_last_messages_and_every_variable(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    # Rasa's tracker store remembers max_event_history and stores many events; here
    # session.lastMessages bounds the message history, the variables are all kept.
    mem = await open_memory({"session": {"lastMessages": 42}})
    for i in range(300):
        clock.advance(timedelta(seconds=1))
        async with mem.turn("b", "u1", message=text(f"m{i}")) as state:
            state.session[f"v{i}"] = i
    async with mem.turn("b", "u1") as state:
        messages = state.session["lastMessages"]
        assert isinstance(messages, list)
        assert [m["text"] for m in messages] == [f"m{i}" for i in range(258, 300)]  # type: ignore[index,call-overload]
        assert {k: v for k, v in state.session.items() if k != "lastMessages"} == {
            f"v{i}": i for i in range(300)
        }


# -- lock stores: one conversation's messages one at a time, in order -----------------------------
async def test_messages_of_one_conversation_are_processed_in_arrival_order(mem: Memory) -> None:
    # Rasa's test_message_order: 10 messages of one sender, each holding the lock a
    # little less long than the one before (passes of the event loop, not real time),
    # are processed in the order they came.
    incoming: list[int] = []
    processed: list[int] = []

    async def handle(i: int) -> None:
        incoming.append(i)
        async with mem.turn("b", "u1", message=text(f"sender {i}")) as state:
            for _ in range(20 - 2 * i):  # the message's work, while the lock is held
                await asyncio.sleep(0)
            log = state.session.get("log", [])
            assert isinstance(log, list)
            state.session["log"] = [*log, i]
            processed.append(i)

    tasks = []
    for i in range(10):
        tasks.append(asyncio.ensure_future(handle(i)))
        await asyncio.sleep(0)  # each task reaches the lock before the next is made
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)
    assert incoming == processed == list(range(10))
    async with mem.turn("b", "u1") as state:
        assert state.session["log"] == list(range(10))
    assert not mem.storage.turn_in_progress("b", SESSION)  # nobody waiting, nothing held


async def test_different_conversations_do_not_wait_for_each_other(mem: Memory) -> None:
    # Rasa's test_multiple_conversation_ids: each conversation id has a lock of its own.
    inside_second = asyncio.Event()

    async def first() -> None:
        async with mem.turn("b", "u1") as state:
            await asyncio.wait_for(inside_second.wait(), 10)  # held while u2's turn runs
            state.session["who"] = "u1"

    async def second() -> None:
        async with mem.turn("b", "u2") as state:
            inside_second.set()
            state.session["who"] = "u2"

    await asyncio.wait_for(asyncio.gather(first(), second()), DEADLINE)
    for user in ("u1", "u2"):
        assert (await mem.peek("b", user)).scopes["session"]["who"].value == user


async def test_a_turn_holds_its_session_and_releases_it_when_done(mem: Memory) -> None:
    # Rasa's TicketLock: a ticket issued is being served until finish_serving; then
    # no one is waiting. Also when the turn failed.
    assert not mem.storage.turn_in_progress("b", SESSION)
    async with mem.turn("b", "u1"):
        assert mem.storage.turn_in_progress("b", SESSION)
    assert not mem.storage.turn_in_progress("b", SESSION)
    with pytest.raises(RuntimeError):
        async with mem.turn("b", "u1"):
            raise RuntimeError("the action failed")
    assert not mem.storage.turn_in_progress("b", SESSION)
    async with mem.turn("b", "u1") as state:
        assert state.session.get("never") is None


async def test_a_waiting_turn_given_up_leaves_no_ticket_behind(mem: Memory) -> None:
    # Rasa's remove_expired_tickets: a ticket nobody serves any more does not hold the
    # conversation. Here a turn cancelled while it waits for its session (its client
    # went away) neither runs nor delays the turns after it.
    ran: list[str] = []
    async with mem.turn("b", "u1") as state:
        state.session["n"] = 1

        async def abandoned() -> None:
            async with mem.turn("b", "u1") as other:
                ran.append("abandoned")
                other.session["n"] = 100

        waiting = asyncio.ensure_future(abandoned())
        await asyncio.sleep(0.05)  # a real lock: on PostgreSQL and Redis, a round trip
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert not mem.storage.turn_in_progress("b", SESSION)
    async with asyncio.timeout(10), mem.turn("b", "u1") as state:
        assert state.session["n"] == 1
    assert ran == []


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def server_url(request: pytest.FixtureRequest) -> tuple[str, str]:
    """A database with a server, and the URL parameter bounding a turn's wait for its session."""
    wait = {"postgres": "lock_timeout", "redis": "lock_wait"}[request.param]
    return str(request.getfixturevalue(f"{request.param}_url")), wait


async def test_a_turn_that_cannot_get_its_session_in_time_fails_and_writes_nothing(
    server_url: tuple[str, str], clock: ManualClock
) -> None:
    # Rasa's test_lock_error: a second message that waits longer than its wait time for
    # the conversation's lock raises LockError. The second memory is another process
    # to the server (a pool of its own).
    url, wait = server_url
    holder = await Memory.open(url, clock=clock)
    impatient = await Memory.open(f"{url}&{wait}=200ms", clock=clock)
    try:
        async with holder.turn("b", "u1") as state:
            state.session["n"] = 1
            with pytest.raises(LockTimeoutError, match=wait):
                async with impatient.turn("b", "u1") as other:
                    other.session["n"] = 100  # pragma: no cover - never runs
        async with impatient.turn("b", "u1") as state:
            assert state.session["n"] == 1
            state.session["n"] = 2
        async with holder.turn("b", "u1") as state:
            assert state.session["n"] == 2
    finally:
        await holder.close()
        await impatient.close()


async def test_a_turn_behind_a_turn_of_its_process_waits_at_most_the_lock_wait(
    server_url: tuple[str, str], clock: ManualClock
) -> None:
    # Rasa's test_lock_error as it is written: both messages reach one server process,
    # and the second waits at most its wait time for the conversation's lock. Within a
    # process turns of one session queue on a lock of the process first: that wait has
    # the same limit as the wait for the other processes.
    url, wait = server_url
    mem = await Memory.open(f"{url}&{wait}=200ms", clock=clock)
    try:
        async with mem.turn("b", "u1") as state:
            state.session["n"] = 1
            started = time.monotonic()
            with pytest.raises(LockTimeoutError, match=wait):
                async with asyncio.timeout(10), mem.turn("b", "u1") as other:
                    other.session["n"] = 100  # pragma: no cover - never runs
            assert 0.15 <= time.monotonic() - started < 5
            assert mem.storage.turn_in_progress("b", SESSION)
        async with mem.turn("b", "u1") as state:
            assert state.session["n"] == 1
        assert not mem.storage.turn_in_progress("b", SESSION)
    finally:
        await mem.close()


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
async def test_without_a_wait_setting_a_turn_waits_at_most_turn_wait(
    url: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same on the backends without a setting: a turn that never ends (an action that
    # hangs) does not keep its session's later turns waiting forever.
    from botmemory.storage import base

    monkeypatch.setattr(base, "TURN_WAIT", 0.2)
    mem = await Memory.open(f"sqlite:///{tmp_path}/m.db" if url == "sqlite" else url, clock=clock)
    try:
        async with mem.turn("b", "u1") as state:
            state.session["n"] = 1
            started = time.monotonic()
            with pytest.raises(LockTimeoutError, match="longer than 200ms"):
                async with asyncio.timeout(10), mem.turn("b", "u1") as other:
                    other.session["n"] = 100  # pragma: no cover - never runs
            assert 0.15 <= time.monotonic() - started < 5
            assert mem.storage.turn_in_progress("b", SESSION)
            # a turn the holder lets go of within the wait gets the session in time
            waiting = asyncio.create_task(mem.run_turn(_read_n, "b", "u1"))
            for _ in range(5):  # passes of the loop: it now waits on the lock
                await asyncio.sleep(0)
            assert not waiting.done()
        assert await waiting == 1
        assert not mem.storage.turn_in_progress("b", SESSION)
    finally:
        await mem.close()


async def _read_n(state: TurnState) -> object:
    return state.session.get("n")


@pytest.mark.redis
async def test_the_wait_in_the_process_and_for_the_lease_share_one_lock_wait(
    redis_url: str, clock: ManualClock
) -> None:
    """A turn that waited for a turn of its process, then for another process's lease,
    gives up once ``lock_wait`` has passed in all: not a whole ``lock_wait`` for each."""
    other = await Memory.open(redis_url, clock=clock)
    mem = await Memory.open(f"{redis_url}&lock_wait=1s", clock=clock)
    try:
        holding, release = asyncio.Event(), asyncio.Event()

        async def hold_lease() -> None:
            async with other.turn("b", "u1"):
                holding.set()
                await release.wait()

        holder = asyncio.create_task(hold_lease())
        await holding.wait()
        local = mem.storage._local_session_lock("b", SESSION)  # a turn of this process
        await local.__aenter__()
        started = time.monotonic()
        waiting = asyncio.create_task(mem.turn("b", "u1").__aenter__())
        await asyncio.sleep(0.6)  # lock waits are real time (a lease is Redis' clock)
        await local.__aexit__(None, None, None)
        with pytest.raises(LockTimeoutError, match="another process"):
            await waiting
        assert 0.9 <= time.monotonic() - started < 1.4  # 1s in all, not 0.6s + 1s
        release.set()
        await holder
    finally:
        await mem.close()
        await other.close()


# -- several processes: Rasa's workers sharing one lock store ----------------------------------
def _worker(url: str, number: int, turns: int, start: Any, results: Any) -> None:
    """Append ``(number, i)`` to one shared session's log, ``turns`` times."""

    async def main() -> int:
        async with await Memory.open(url) as mem:
            await asyncio.to_thread(start.wait, DEADLINE)
            for i in range(turns):
                async with mem.turn("b", "u1", message=text(f"p{number}-{i}")) as state:
                    log = state.session.get("log", [])
                    assert isinstance(log, list)
                    await asyncio.sleep(0)  # let another process try to get in
                    state.session["log"] = [*log, f"p{number}-{i}"]
        return turns

    try:
        results.put((number, asyncio.run(main()), None))
    except BaseException:
        start.abort()
        results.put((number, None, traceback.format_exc()))
        raise


def _holder(url: str, ready: Any) -> None:
    """Start a turn of u1 that writes, say so, and never finish it (until killed)."""

    async def main() -> None:
        async with await Memory.open(url) as mem, mem.turn("b", "u1") as state:
            state.session["by"] = "the dead process"
            state.user["by"] = "the dead process"
            ready.put("holding")
            await asyncio.sleep(3600)  # holds the session until the test kills it

    asyncio.run(main())


async def test_workers_in_several_processes_take_turns_and_lose_nothing(shared_url: str) -> None:
    # Rasa runs several server processes on one lock store: each conversation's
    # messages still go one at a time. 3 processes x 20 read-modify-write turns of one
    # session, each a single attempt: none conflicts, none is lost, each in its order.
    async with await Memory.open(shared_url):
        pass  # the schema, created once before the workers open it together
    count, turns = 3, 20
    start, results = SPAWN.Barrier(count), SPAWN.Queue()
    processes = [
        SPAWN.Process(target=_worker, args=(shared_url, n, turns, start, results), daemon=True)
        for n in range(count)
    ]
    for process in processes:
        process.start()
    try:
        reports = [await asyncio.to_thread(results.get, True, DEADLINE) for _ in processes]
    finally:
        for process in processes:
            process.join(DEADLINE)
            if process.is_alive():
                process.kill()
    errors = [error for _, _, error in reports if error]
    assert not errors, "\n".join(errors)
    async with await Memory.open(shared_url) as mem:
        log = (await mem.peek("b", "u1")).scopes["session"]["log"].value
    assert isinstance(log, list)
    assert len(log) == count * turns
    for n in range(count):
        assert [entry for entry in log if str(entry).startswith(f"p{n}-")] == [
            f"p{n}-{i}" for i in range(turns)
        ]


async def test_a_dead_holder_neither_blocks_the_session_nor_leaves_a_write(
    shared_url: str,
) -> None:
    # Rasa's lock lifetime: a lock whose holder died does not block the conversation
    # for ever. Here the holder is a real process, killed in the middle of its turn:
    # SQLite's file lock and PostgreSQL's advisory lock go with it at once, a Redis
    # lease lapses after lease_timeout (1 s here). Its turn wrote nothing.
    if shared_url.startswith("redis"):
        shared_url += "&lease_timeout=1s"
    async with await Memory.open(shared_url) as mem:
        ready = SPAWN.Queue()
        holder = SPAWN.Process(target=_holder, args=(shared_url, ready), daemon=True)
        holder.start()
        try:
            assert await asyncio.to_thread(ready.get, True, DEADLINE) == "holding"

            async def next_turn() -> dict[str, Any]:
                async with mem.turn("b", "u1") as state:
                    seen = {"session": dict(state.session), "user": dict(state.user)}
                    state.session["by"] = "the next process"
                return seen

            waiting = asyncio.ensure_future(next_turn())
            await asyncio.sleep(0.3)  # the holder is a real process
            assert not waiting.done()  # the live holder has the session
            holder.kill()
            started = time.monotonic()
            seen = await asyncio.wait_for(waiting, 20)
            assert time.monotonic() - started < 10
        finally:
            if holder.is_alive():
                holder.kill()
            holder.join(DEADLINE)
        assert seen == {"session": {}, "user": {}}
        view = await mem.peek("b", "u1")
        assert view.scopes["session"]["by"].value == "the next process"
        assert view.scopes["user"] == {}


async def test_a_session_swept_by_another_process_during_its_turn_is_not_brought_back(
    shared_url: str, clock: ManualClock
) -> None:
    # Rasa decides a session's expiry when a message arrives. Here a turn that loaded
    # its session in the session's last millisecond, and whose session another
    # process's janitor removed before it committed, writes nothing (a conflict): it
    # never brings back half of an ended session. Run again, it starts a new one.
    first = await Memory.open(shared_url, clock=clock)
    other = await Memory.open(shared_url, clock=clock)
    try:
        async with first.turn("b", "u1") as state:
            state.session["topic"] = "billing"
            state.session["step"] = 1
        clock.advance(timedelta(minutes=30) - MS)
        attempts: list[bool] = []

        async def body(state: TurnState) -> None:
            attempts.append(state.is_new_session)
            state.session["step"] = 2
            if len(attempts) == 1:
                clock.advance(MS)
                assert (await other.janitor.run_once()).sessions == 1

        await first.run_turn(body, "b", "u1")
        assert attempts == [False, True]
        view = await other.peek("b", "u1")
        assert view.session.alive
        assert {n: v.value for n, v in view.scopes["session"].items()} == {"step": 2}
    finally:
        await first.close()
        await other.close()
