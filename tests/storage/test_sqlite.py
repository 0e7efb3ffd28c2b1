"""What is specific to the SQLite backend."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from botmemory import (
    BackendError,
    BackendUnavailableError,
    ErasurePendingError,
    Identity,
    LockTimeoutError,
    ManualClock,
    Memory,
    SchemaVersionError,
    parse_duration,
)
from botmemory.kvs import conversation_storage_key, user_storage_key
from botmemory.storage.base import TurnWrite
from botmemory.storage.sqlite import MIGRATIONS, SqliteStorage, sqlite_path
from botmemory.storage.sqlite import connection as sqlite_connection
from botmemory.storage.sqlite import schema as sqlite_schema
from botmemory.storage.sqlite import sql as sqlite_sql


def test_url_paths() -> None:
    assert sqlite_path("sqlite:///data/x.db") == "data/x.db"  # relative, as in SQLAlchemy
    assert sqlite_path("sqlite:////abs/x.db") == "/abs/x.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    assert sqlite_path("SQLite:///data/x.db") == "data/x.db"  # a scheme has no case


SECRET = "ZZSECRET-7c1e"


async def store_secrets(mem: Memory) -> list[str]:
    """Store a distinct secret of user u1 in every place erasure must reach; return them."""
    secrets = [f"{SECRET}-{kind}" for kind in ("user", "session", "temp", "kvs", "talk", "old")]
    kvs = mem.kvs.for_bot("b")
    await kvs.set(conversation_storage_key(Identity.of("b", "u1", thread_id="t0"), "x"), secrets[5])
    async with mem.turn("b", "u1") as state:
        state.user["email"] = secrets[0]
        state.user["note"] = secrets[0] * 3
        state.session["topic"] = secrets[1]
        state.temp["card"] = secrets[2]
        await state.kvs.set(user_storage_key("u1", "email"), secrets[3])
        await state.kvs.set(conversation_storage_key(state.identity, "topic"), secrets[4])
    async with mem.turn("b", "u1") as state:
        state.user["email"] = secrets[0] + "-changed"
    for other in range(50):  # plenty of other rows on the same pages
        async with mem.turn("b", f"other{other}") as state:
            state.user["email"] = f"{other}@example.com"
    return secrets


def left_in_files(directory: Path, secrets: list[str]) -> list[str]:
    """The secrets still readable in memory.db, its WAL or its shared memory file."""
    files = list(directory.glob("memory.db*"))
    assert any(path.name == "memory.db-wal" for path in files)  # the memory is open
    return sorted(
        f"{secret} in {path.name}"
        for path in files
        for secret in secrets
        if secret.encode() in path.read_bytes()
    )


async def test_erased_values_are_gone_from_the_file_and_its_wal(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with await Memory.open(f"sqlite:///{tmp_path}/memory.db", clock=clock) as mem:
        secrets = await store_secrets(mem)
        assert len({s.split(" ")[0] for s in left_in_files(tmp_path, secrets)}) == 6
        counts = await mem.forget_user("b", "u1")
        assert (counts.user_variables, counts.kvs) == (2, 3)
        assert left_in_files(tmp_path, secrets) == []


async def test_an_erasure_waits_for_a_reader_to_finish(tmp_path: Path, clock: ManualClock) -> None:
    async with await Memory.open(f"sqlite:///{tmp_path}/memory.db", clock=clock) as mem:
        secrets = await store_secrets(mem)
        reader = sqlite3.connect(tmp_path / "memory.db", isolation_level=None)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM kvs").fetchone() == (3,)  # a snapshot
        asyncio.get_running_loop().call_later(0.2, reader.execute, "COMMIT")
        await mem.forget_user("b", "u1")
        assert left_in_files(tmp_path, secrets) == []
        reader.close()


async def test_an_erasure_a_reader_outlasts_says_so_and_the_next_call_finishes_it(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with await Memory.open(f"sqlite:///{tmp_path}/memory.db", clock=clock) as mem:
        storage: SqliteStorage = mem.storage  # type: ignore[assignment]
        storage.checkpoint_wait = parse_duration("50ms")
        secrets = await store_secrets(mem)
        reader = sqlite3.connect(tmp_path / "memory.db", isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM kvs").fetchone()
        with pytest.raises(ErasurePendingError, match="another connection") as pending:
            await mem.forget_user("b", "u1")
        assert (pending.value.counts["sessions"], pending.value.counts["kvs"]) == (1, 3)
        exported = await mem.export_user("b", "u1")  # deleted all the same
        assert (exported.user, exported.sessions, exported.kvs) == ({}, (), {})
        assert left_in_files(tmp_path, secrets) != []  # the reader still sees them
        reader.execute("COMMIT")
        reader.close()
        assert (await mem.forget_user("b", "u1")).kvs == 0
        assert left_in_files(tmp_path, secrets) == []


async def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    async with await Memory.open(f"sqlite:///{path}"):
        pass
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.close()


async def test_a_new_database_is_its_owners_only_and_an_existing_one_keeps_its_mode(
    tmp_path: Path,
) -> None:
    """It holds users' data: private, as exports and lock files are; SQLite gives its -wal
    and -shm files the database file's mode."""
    async with await Memory.open(f"sqlite:///{tmp_path}/new.db") as mem:
        await mem.kvs.for_bot("b").set("k", 1)
        files = sorted(tmp_path.glob("new.db*"))
        assert {path.name for path in files} >= {"new.db", "new.db-wal", "new.db-shm"}
        assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in files} == {
            path.name: 0o600 for path in files
        }
    shared = tmp_path / "shared.db"
    shared.touch(mode=0o640)
    shared.chmod(0o640)  # the mode its owner chose
    async with await Memory.open(f"sqlite:///{shared}") as mem:
        await mem.kvs.for_bot("b").set("k", 1)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o640


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(SchemaVersionError, match="newer"):
        await Memory.open(f"sqlite:///{path}")


async def test_janitor_queries_use_the_expiry_indexes(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    async with await Memory.open(f"sqlite:///{path}"):
        pass
    db = sqlite3.connect(path)
    plans = {
        "variables": "SELECT * FROM variables WHERE expires_at <= 1 AND scope = 'user' "
        "ORDER BY expires_at LIMIT 10",
        "sessions": "SELECT bot_id, key FROM sessions WHERE expires_at <= 1 LIMIT 10",
        "temp": "SELECT bot_id, key FROM sessions WHERE temp_expires_at <= 1 LIMIT 10",
        "kvs": "SELECT namespace, key FROM kvs WHERE expires_at <= 1 LIMIT 10",
    }
    for table, query in plans.items():
        plan = " ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {query}"))
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (table, plan)
    db.close()


async def test_data_survives_a_restart(tmp_path: Path, clock: ManualClock) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    async with await Memory.open(url, clock=clock) as mem, mem.turn("b", "u1") as state:
        state.user["name"] = "Ada"
        state.session["topic"] = "x"
    async with await Memory.open(url, clock=clock) as mem, mem.turn("b", "u1") as state:
        assert state.user["name"] == "Ada"
        assert state.session["topic"] == "x"


async def test_a_failing_write_in_a_group_commit_fails_alone(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    mem = await Memory.open(f"sqlite:///{tmp_path}/m.db", clock=clock)
    storage: SqliteStorage = mem.storage  # type: ignore[assignment]
    real = SqliteStorage._apply_turn

    def apply(db: sqlite3.Connection, write: TurnWrite, unchanged: bool) -> None:
        real(db, write, unchanged)
        if any(v.key.owner == '["api", "bad"]' for v in write.upserts):
            raise UnicodeEncodeError("utf-8", "x", 0, 1, "not encodable")

    monkeypatch.setattr(SqliteStorage, "_apply_turn", staticmethod(apply))

    async def turn(user: str) -> None:
        async with mem.turn("b", user) as state:
            state.user["x"] = 1

    results = await asyncio.wait_for(
        asyncio.gather(turn("good"), turn("bad"), return_exceptions=True), 10
    )
    assert results[0] is None
    assert isinstance(results[1], BackendError)
    monkeypatch.undo()
    assert storage._worker._thread.is_alive()
    assert (await mem.export_user("b", "bad")).user == {}
    assert (await mem.export_user("b", "good")).user != {}
    await mem.close()


async def hold_worker_with_a_queued_write(
    mem: Memory,
) -> tuple[asyncio.Task[None], threading.Event]:
    """Start a turn whose write waits in the queue behind a busy worker."""
    storage: SqliteStorage = mem.storage  # type: ignore[assignment]
    gate, in_body, leave = threading.Event(), asyncio.Event(), asyncio.Event()

    async def turn() -> None:
        async with mem.turn("b", "u1") as state:
            state.user["x"] = 1
            in_body.set()
            await leave.wait()

    task = asyncio.create_task(turn())
    await in_body.wait()
    storage._worker.post(gate.wait)  # a busy worker
    leave.set()
    while not storage._queued:  # noqa: ASYNC110 - the queue is filled by another task
        await asyncio.sleep(0)
    return task, gate


async def test_calls_made_while_the_worker_is_busy_run_on_the_event_loop_after_it(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy worker thread holds new calls back, then they run on the event loop: they
    used to queue behind it, so that under a steady stream of turns it never ran dry."""
    ran_on: list[str] = []
    for name in ("load_turn", "apply_turn"):
        original = getattr(sqlite_sql, name)

        def recorded(*args: object, _original: Any = original, **kwargs: object) -> object:
            ran_on.append(threading.current_thread().name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(sqlite_sql, name, recorded)
    async with await Memory.open(f"sqlite:///{tmp_path}/m.db", clock=clock) as mem:
        storage: SqliteStorage = mem.storage  # type: ignore[assignment]
        gate = threading.Event()
        storage._worker.post(gate.wait)  # busy for a while

        async def conversation(user: str) -> None:
            for n in range(5):
                async with mem.turn("b", user) as state:
                    state.user["n"] = n

        talks = asyncio.gather(*(conversation(f"u{i}") for i in range(8)))
        for _ in range(20):  # every conversation is waiting for its first load by now
            await asyncio.sleep(0)
        assert ran_on == []  # nothing ran, and nothing went behind the worker's call
        gate.set()
        await asyncio.wait_for(talks, 10)
        assert len(ran_on) == 2 * 8 * 5
        assert set(ran_on) == {threading.current_thread().name}
        for i in range(8):
            assert (await mem.export_user("b", f"u{i}")).user["n"].value == 4


async def test_a_long_call_waits_for_the_calls_the_busy_worker_held_back(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Turns go before background work: a janitor batch asked for while a turn's load
    waits for the worker thread runs after that load, not before it (else back-to-back
    batches would let a turn take one step per batch)."""
    async with await Memory.open(f"sqlite:///{tmp_path}/m.db", clock=clock) as mem:
        storage: SqliteStorage = mem.storage  # type: ignore[assignment]
        order: list[str] = []
        gate = threading.Event()
        storage._worker.post(gate.wait)  # a janitor batch running

        async def turn() -> None:
            async with mem.turn("b", "u1") as state:
                order.append("loaded")
                state.user["x"] = 1
            order.append("committed")

        talk = asyncio.create_task(turn())
        for _ in range(5):  # the load is held back by the busy worker
            await asyncio.sleep(0)
        batch = asyncio.create_task(storage._run(lambda db: order.append("next batch")))
        for _ in range(5):
            await asyncio.sleep(0)
        gate.set()
        await asyncio.wait_for(asyncio.gather(talk, batch), 10)
        assert order.index("loaded") < order.index("next batch")


async def test_a_long_call_waits_for_the_commits_the_busy_worker_held_back(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with await Memory.open(f"sqlite:///{tmp_path}/m.db", clock=clock) as mem:
        storage: SqliteStorage = mem.storage  # type: ignore[assignment]
        task, gate = await hold_worker_with_a_queued_write(mem)
        seen = asyncio.create_task(
            storage._run(lambda db: db.execute("SELECT value FROM variables").fetchall())
        )
        for _ in range(5):
            await asyncio.sleep(0)
        gate.set()
        await task
        assert await seen == [("1",)]  # the queued turn committed first


async def test_a_held_back_commit_that_meets_another_writer_lets_long_calls_go(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Held back by the busy worker, then refused the write lock by another connection,
    a group commit goes to the worker: long calls and close() must not wait for it."""
    path = tmp_path / "m.db"
    mem = await Memory.open(f"sqlite:///{path}", clock=clock)
    storage: SqliteStorage = mem.storage  # type: ignore[assignment]
    other = sqlite3.connect(path, isolation_level=None, timeout=0)

    async def other_writes_for_a_while() -> None:
        await asyncio.sleep(0.6)  # real time: a real lock held by another connection
        other.execute("COMMIT")

    try:
        async with mem.turn("b", "u1") as state:
            state.session["topic"] = "billing"
            busy = asyncio.create_task(storage._worker.call(lambda: time.sleep(0.3)))
            await asyncio.sleep(0.01)  # real time: the worker thread starts its call
            other.execute("BEGIN IMMEDIATE")  # another process starts writing
            writing = asyncio.create_task(other_writes_for_a_while())
        await busy
        await writing
        await asyncio.wait_for(storage.expired_sessions(clock(), 10), 5)  # a long call
    finally:
        other.close()
        await asyncio.wait_for(mem.close(), 5)


async def test_a_call_made_before_close_while_the_worker_is_busy_runs(
    tmp_path: Path, clock: ManualClock
) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    mem = await Memory.open(url, clock=clock)
    storage: SqliteStorage = mem.storage  # type: ignore[assignment]
    gate = threading.Event()
    storage._worker.post(gate.wait)  # busy
    put = asyncio.create_task(mem.kvs.for_bot("b").set("k", 1))
    for _ in range(5):
        await asyncio.sleep(0)
    closing = asyncio.create_task(mem.close())
    for _ in range(5):
        await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(asyncio.gather(put, closing), 10)
    async with await Memory.open(url, clock=clock) as again:
        assert await again.kvs.for_bot("b").get("k") == 1


async def test_a_turn_cancelled_while_its_write_is_queued_writes_nothing(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with await Memory.open(f"sqlite:///{tmp_path}/m.db", clock=clock) as mem:
        task, gate = await hold_worker_with_a_queued_write(mem)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        async with mem.turn("b", "u1") as state:
            assert dict(state.user) == {}


async def test_close_commits_the_writes_already_queued(tmp_path: Path, clock: ManualClock) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    mem = await Memory.open(url, clock=clock)
    task, gate = await hold_worker_with_a_queued_write(mem)
    closing = asyncio.create_task(mem.close())
    await asyncio.sleep(0)
    gate.set()
    await closing
    await task
    async with await Memory.open(url, clock=clock) as again, again.turn("b", "u1") as state:
        assert dict(state.user) == {"x": 1}


async def test_calls_after_close_fail_at_once(tmp_path: Path, clock: ManualClock) -> None:
    mem = await Memory.open(f"sqlite:///{tmp_path}/m.db", clock=clock)
    await mem.close()
    with pytest.raises(BackendUnavailableError, match="closed"):
        await asyncio.wait_for(mem.kvs.for_bot("b").get("k"), 5)

    mem = await Memory.open(f"sqlite:///{tmp_path}/m.db", clock=clock)
    with pytest.raises(BackendUnavailableError):
        async with mem.turn("b", "u1") as state:
            state.user["x"] = 1
            await mem.close()


async def test_a_folder_that_cannot_be_created_is_a_backend_error() -> None:
    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(BackendUnavailableError, match="cannot open"):
        await Memory.open("sqlite:////proc/nope/memory.db")
    assert [t.name for t in threading.enumerate() if t.ident not in before] == []


async def test_a_write_lock_held_past_the_busy_timeout_fails_the_turn_and_writes_nothing(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_schema, "_BUSY_TIMEOUT_MS", 200)  # 200 ms, not 5 s
    url = f"sqlite:///{tmp_path}/m.db"
    async with await Memory.open(url, clock=clock) as mem:
        other = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds SQLite's write lock
        try:
            with pytest.raises(LockTimeoutError, match="locked"):
                async with mem.turn("b", "u1") as state:
                    state.user["lost"] = 1
        finally:
            other.execute("ROLLBACK")
            other.close()
        async with mem.turn("b", "u1") as state:
            assert dict(state.user) == {}


async def test_a_commit_that_waits_for_another_connection_leaves_the_event_loop_free(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event loop never waits on SQLite's write lock: the commit waits elsewhere.

    Here it waits at most 2 s; the lock is let go while it waits, from the event loop.
    Had the commit waited on the event loop, the lock would still be held when it gave up.
    """
    monkeypatch.setattr(sqlite_schema, "_BUSY_TIMEOUT_MS", 2000)
    async with await Memory.open(f"sqlite:///{tmp_path}/m.db", clock=clock) as mem:
        other = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds SQLite's write lock

        async def turn() -> None:
            async with mem.turn("b", "u1") as state:
                state.user["x"] = 1

        task = asyncio.create_task(turn())
        await asyncio.sleep(0.05)  # the turn loads, then its commit waits for the lock
        assert not task.done()
        other.execute("ROLLBACK")
        other.close()
        await task
        async with mem.turn("b", "u1") as state:
            assert dict(state.user) == {"x": 1}


async def test_the_wal_is_checkpointed_by_a_thread_that_close_ends(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event loop's connection never checkpoints; a thread of the storage does,
    after every 100 writes, and then the WAL starts over (at once here, not only past
    4,096 pages)."""
    monkeypatch.setattr(sqlite_connection, "RESTART_AFTER", 0)
    before = {t.ident for t in threading.enumerate()}
    wal = tmp_path / "m.db-wal"
    async with await Memory.open(f"sqlite:///{tmp_path}/m.db", clock=clock) as mem:
        kvs = mem.kvs.for_bot("b")
        for n in range(100):  # each appends pages to the WAL
            await kvs.set(f"k{n}", "x" * 2000)
        for n in range(1000):  # until a write goes over the start of the WAL: 10 s at most
            size = wal.stat().st_size
            await kvs.set(f"k{n}", "y" * 2000)
            if wal.stat().st_size == size:
                break
            await asyncio.sleep(0.01)  # the thread's turn
        assert wal.stat().st_size == size
    assert [t.name for t in threading.enumerate() if t.ident not in before] == []


async def test_the_page_cache_is_32_mib(tmp_path: Path, clock: ManualClock) -> None:
    async with await Memory.open(f"sqlite:///{tmp_path}/m.db", clock=clock) as mem:
        db = mem.storage._conn.db  # type: ignore[attr-defined]
        assert db.execute("PRAGMA cache_size").fetchone()[0] == -32768  # KiB


async def test_a_janitor_batch_wakes_the_checkpointer_at_once(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A janitor batch may change a page per row: the WAL is copied after it, not after
    100 writes, so that a long run does not grow it by hundreds of megabytes."""
    checkpoints = threading.Semaphore(0)
    catch_up = sqlite_connection._catch_up

    def counted(db: sqlite3.Connection) -> None:
        catch_up(db)
        checkpoints.release()

    monkeypatch.setattr(sqlite_connection, "_catch_up", counted)
    async with await Memory.open(f"sqlite:///{tmp_path}/m.db", clock=clock) as mem:
        kvs = mem.kvs.for_bot("b")
        for n in range(10):  # far fewer writes than CHECKPOINT_EVERY
            await kvs.set(f"k{n}", n, expiry="1m")
        clock.advance("61s")
        assert not checkpoints.acquire(timeout=0.2)  # not yet
        assert (await mem.janitor.run_once()).kvs == 10
        assert await asyncio.to_thread(checkpoints.acquire, timeout=10)


async def test_many_turns_at_once_let_the_event_loop_run_between_their_loads(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a pass of the event loop spent its slice on SQLite, other callbacks run."""
    monkeypatch.setattr(sqlite_connection, "SLICE", 0.0)  # 1 ms in use: one call a pass here
    async with await Memory.open(f"sqlite:///{tmp_path}/m.db", clock=clock) as mem:
        loaded: list[int] = []
        seen_by_another_callback: list[int] = []

        async def turn(n: int) -> None:
            async with mem.turn("b", f"u{n}") as state:
                loaded.append(n)
                state.user["x"] = n

        tasks = [asyncio.create_task(turn(n)) for n in range(10)]
        asyncio.get_running_loop().call_soon(lambda: seen_by_another_callback.append(len(loaded)))
        await asyncio.gather(*tasks)
        assert seen_by_another_callback == [1]
        assert sorted(loaded) == list(range(10))
