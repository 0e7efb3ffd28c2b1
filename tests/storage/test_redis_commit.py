"""The Redis backend's turn commit: versions, checks, deltas, fencing, commit ids.

These call the storage contract directly (``load_turn`` / ``commit_turn``), as the turn
layer does. Pauses and stalls are real: a subprocess stopped with ``SIGSTOP``, and a
private ``redis-server`` stalled with ``DEBUG SLEEP`` (never the shared server).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from botmemory.errors import BackendUnavailableError, ConflictError
from botmemory.storage import create_storage
from botmemory.storage.base import (
    KvsCheck,
    KvsPrefixCheck,
    KvsRecord,
    KvsWrite,
    ScopeCheck,
    SessionRecord,
    Storage,
    StoredVar,
    TurnKeys,
    TurnWrite,
    VarCheck,
    VarDelta,
    VarKey,
    VarUpdate,
)
from tests.conftest import START, OpenStorage, storages_on

redis = pytest.importorskip("redis")

import redis.asyncio as aioredis  # noqa: E402 - needs redis

from botmemory.storage.redis.layout import BotKeys  # noqa: E402

pytestmark = pytest.mark.redis

KEYS = TurnKeys("b", "u", "s")
NOW = START


def var(scope: str, name: str, owner: str | None = None) -> VarKey:
    default = {"user": "u", "session": "s", "temp": "s", "bot": ""}[scope]
    return VarKey(scope, "b", default if owner is None else owner, name)  # type: ignore[arg-type]


def session(temp: float | None = NOW + 300) -> SessionRecord:
    return SessionRecord("b", "s", "u", NOW, NOW, NOW + 3600, temp)


def stored(key: VarKey, value: object, expires_at: float | None = None) -> StoredVar:
    return StoredVar(key, json.dumps(value), NOW, expires_at)


@pytest.fixture
async def open_storage(redis_url: str) -> AsyncIterator[OpenStorage]:
    """Open Redis storages on this test's prefix (each one a process to the server)."""
    async with storages_on(redis_url) as open_:
        yield open_


async def seed(storage: Storage) -> TurnWrite:
    """Store one of everything; return the write."""
    write = TurnWrite(
        session(),
        session_version=0,
        upserts=[
            stored(var("user", "name"), "Ada"),
            stored(var("session", "topic"), "tea"),
            stored(var("temp", "step"), 1),
            stored(var("bot", "visits"), 1),
            stored(var("bot", "motto"), "hi"),
        ],
        kvs_writes=[
            KvsWrite("b", "cfg/a", KvsRecord('"x"', None)),
            KvsWrite("b", "cfg/b", KvsRecord('"y"', NOW + 60)),
        ],
        now=NOW,
    )
    await storage.commit_turn(write)
    return write


async def state(storage: Storage) -> tuple[object, ...]:
    """Everything a check could be about, to compare before and after."""
    snap = await storage.load_turn(KEYS)
    scopes = (snap.user, snap.session_vars, snap.temp_vars, snap.bot)
    kvs = [await storage.kvs_get("b", k, NOW) for k in ("cfg/a", "cfg/b", "cfg/c", "other")]
    return (snap.session, *(sorted(s) for s in scopes), kvs)


# -- versions ---------------------------------------------------------------------------
async def test_every_row_a_commit_writes_carries_its_version(open_storage: OpenStorage) -> None:
    storage = await open_storage()
    write = await seed(storage)
    snap = await storage.load_turn(KEYS)
    assert snap.session is not None
    assert snap.session.version == write.version
    rows = [*snap.user, *snap.session_vars, *snap.temp_vars, *snap.bot]
    assert len(rows) == 5
    assert {v.version for v in rows} == {write.version}
    record = await storage.kvs_get("b", "cfg/a", NOW)
    assert record is not None
    assert record.version == write.version


async def test_records_of_the_layout_without_versions_read_as_version_one(
    open_storage: OpenStorage, redis_url: str, admin: aioredis.Redis
) -> None:
    storage = await open_storage()
    keys = BotKeys.of(prefix_of(redis_url), "b")
    await admin.hset(keys.bot_vars, "visits", f"{NOW!r}\n\n\n7")
    await admin.hset(keys.session("s"), mapping={"user": "u", "started": repr(NOW),
                     "seen": repr(NOW), "expires": repr(NOW + 60)})  # fmt: skip
    await admin.set(keys.data("old"), "\n1")
    snap = await storage.load_turn(KEYS)
    assert [(v.value, v.version) for v in snap.bot] == [("7", 1)]
    assert snap.session is not None
    assert snap.session.version == 1
    assert await storage.kvs_get("b", "old", NOW) == KvsRecord("1", None, 1)
    absent = TurnWrite(None, checks=[VarCheck(var("bot", "visits"), 0)], now=NOW)
    with pytest.raises(ConflictError):
        await storage.commit_turn(absent)
    await storage.commit_turn(
        TurnWrite(
            session(),
            session_version=1,
            checks=[VarCheck(var("bot", "visits"), 1)],
            kvs_checks=[KvsCheck("b", "old", 1)],
            deltas=[VarDelta(var("bot", "visits"), 1)],
            now=NOW,
        )
    )
    assert [v.value for v in (await storage.load_turn(KEYS)).bot] == ["8"]


# -- checks ------------------------------------------------------------------------------
def stale_checks(first: TurnWrite) -> dict[str, TurnWrite]:
    """For each kind of check, a write whose check no longer holds after ``meddle``."""
    v = first.version
    return {
        "session": TurnWrite(session(), session_version=0),
        "variable": TurnWrite(None, checks=[VarCheck(var("user", "name"), 1234)]),
        "absent variable": TurnWrite(None, checks=[VarCheck(var("user", "name"), 0)]),
        "scope": TurnWrite(None, scope_checks=[ScopeCheck("temp", "b", "s", set())]),
        "scope with a row more": TurnWrite(
            None, scope_checks=[ScopeCheck("bot", "b", "", {"other", "visits"})]
        ),
        "kvs": TurnWrite(None, kvs_checks=[KvsCheck("b", "cfg/a", 0)]),
        "kvs prefix": TurnWrite(
            None, kvs_prefix_checks=[KvsPrefixCheck("b", "cfg/", (("cfg/a", v),))]
        ),
        "delta on a string": TurnWrite(None, deltas=[VarDelta(var("bot", "motto"), 1)]),
    }


def holding_checks(first: TurnWrite) -> TurnWrite:
    """Every kind of check, each holding after ``seed``."""
    v = first.version
    return TurnWrite(
        session(),
        session_version=v,
        checks=[VarCheck(var("user", "name"), v), VarCheck(var("user", "missing"), 0)],
        scope_checks=[
            ScopeCheck("temp", "b", "s", {"step"}),
            ScopeCheck("user", "b", "nobody", set()),
        ],
        kvs_checks=[KvsCheck("b", "cfg/a", v), KvsCheck("b", "cfg/none", 0)],
        kvs_prefix_checks=[
            KvsPrefixCheck("b", "cfg/", (("cfg/a", v), ("cfg/b", v))),
            KvsPrefixCheck("b", "", (("cfg/a", v), ("cfg/b", v))),
        ],
        deltas=[VarDelta(var("bot", "visits"), 1)],
        now=NOW,
    )


WRITES = {
    "upserts": [stored(var("user", "name"), "Bob"), stored(var("bot", "new"), 1)],
    "kvs_writes": [KvsWrite("b", "cfg/c", KvsRecord("1", None)), KvsWrite("b", "cfg/a", None)],
    "deltas": [VarDelta(var("bot", "visits"), 5)],
    "deletes": [var("session", "topic")],
}


@pytest.mark.parametrize("kind", list(stale_checks(TurnWrite(None))))
async def test_a_check_that_no_longer_holds_conflicts_and_writes_nothing(
    open_storage: OpenStorage, kind: str
) -> None:
    storage = await open_storage()
    first = await seed(storage)
    before = await state(storage)
    stale = stale_checks(first)[kind]
    write = TurnWrite(
        session(temp=None),
        session_version=stale.session_version if kind == "session" else first.version,
        reset_temp=True,
        checks=stale.checks,
        scope_checks=stale.scope_checks,
        kvs_checks=stale.kvs_checks,
        kvs_prefix_checks=stale.kvs_prefix_checks,
        deltas=[*stale.deltas, *WRITES["deltas"]],  # type: ignore[list-item]
        upserts=WRITES["upserts"],  # type: ignore[arg-type]
        kvs_writes=WRITES["kvs_writes"],  # type: ignore[arg-type]
        deletes=WRITES["deletes"],  # type: ignore[arg-type]
        now=NOW,
    )
    with pytest.raises(ConflictError):
        await storage.commit_turn(write)
    assert await state(storage) == before


async def test_checks_that_hold_let_the_commit_through(open_storage: OpenStorage) -> None:
    storage = await open_storage()
    first = await seed(storage)
    write = holding_checks(first)
    await storage.commit_turn(write)
    snap = await storage.load_turn(KEYS)
    assert ("visits", "2", write.version) in [(v.key.name, v.value, v.version) for v in snap.bot]
    assert snap.session is not None
    assert snap.session.version == write.version


async def test_expired_kvs_keys_are_absent_to_checks(open_storage: OpenStorage) -> None:
    storage = await open_storage()
    first = await seed(storage)  # cfg/b expires at NOW + 60
    later = NOW + 60
    with pytest.raises(ConflictError):
        await storage.commit_turn(
            TurnWrite(None, kvs_checks=[KvsCheck("b", "cfg/b", first.version)], now=later)
        )
    await storage.commit_turn(
        TurnWrite(
            None,
            kvs_checks=[KvsCheck("b", "cfg/b", 0)],
            kvs_prefix_checks=[KvsPrefixCheck("b", "cfg/", (("cfg/a", first.version),))],
            kvs_writes=[KvsWrite("b", "cfg/b", KvsRecord("2", None))],
            now=later,
        )
    )
    record = await storage.kvs_get("b", "cfg/b", later + 10**6)
    assert record is not None
    assert record.value == "2"


# -- deltas ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "by", "expected"),
    [
        (None, 1, 1),
        (41, 1, 42),
        (2**63, 1, 2**63 + 1),  # exact beyond doubles
        (2**64 - 2, 1, 2**64 - 1),  # the largest integer stored
        (-(2**63), 2**63 - 5, -5),
        (12345678901234567890, -12345678901234567890, 0),
        (1, 0.5, 1.5),
        (0.1, 0.2, 0.1 + 0.2),
        (1.5, 0.5, 2.0),  # stays a float
        (10**15, 0.5, 10**15 + 0.5),
        (2**63, 1.0, 2**63 + 1.0),
        (-0.0, 0, 0.0),
        (-0.0, -0.0, -0.0),
        (1e300, 1e300, 2e300),
    ],
)
async def test_deltas_add_as_python_does(
    open_storage: OpenStorage, start: float | None, by: float, expected: float
) -> None:
    storage = await open_storage()
    key = var("bot", "n")
    if start is not None:
        await storage.commit_turn(TurnWrite(None, upserts=[stored(key, start)], now=NOW))
    await storage.commit_turn(TurnWrite(None, deltas=[VarDelta(key, by)], now=NOW))
    (row,) = (await storage.load_turn(KEYS)).bot
    result = json.loads(row.value)
    assert result == expected
    assert type(result) is type(expected)
    if isinstance(expected, float):
        assert repr(result) == repr(expected)


@pytest.mark.parametrize(
    ("start", "by"), [(2**64 - 1, 1), (-(2**63), -1), (1.7e308, 1.7e308), (-1.7e308, -1.7e308)]
)
async def test_a_delta_out_of_range_conflicts_and_writes_nothing(
    open_storage: OpenStorage, start: float, by: float
) -> None:
    storage = await open_storage()
    key = var("bot", "n")
    await storage.commit_turn(TurnWrite(None, upserts=[stored(key, start)], now=NOW))
    with pytest.raises(ConflictError, match="in range"):
        await storage.commit_turn(TurnWrite(None, deltas=[VarDelta(key, by)], now=NOW))
    (row,) = (await storage.load_turn(KEYS)).bot
    assert json.loads(row.value) == start


async def test_a_delta_starts_from_zero_on_what_expired_or_this_commit_removed(
    open_storage: OpenStorage,
) -> None:
    storage = await open_storage()
    expired, removed, reset, upserted = (
        var("user", "e"),
        var("bot", "r"),
        var("temp", "t"),
        var("bot", "u"),
    )
    await storage.commit_turn(
        TurnWrite(
            session(),
            upserts=[stored(expired, 10, NOW + 5), stored(removed, 10), stored(reset, 10)],
            now=NOW,
        )
    )
    write = TurnWrite(
        session(),
        reset_temp=True,
        deletes=[removed],
        upserts=[stored(upserted, 100)],
        deltas=[VarDelta(k, 1, NOW + 99) for k in (expired, removed, reset, upserted)]
        + [VarDelta(upserted, 1)],
        now=NOW + 5,
    )
    await storage.commit_turn(write)
    snap = await storage.load_turn(KEYS)
    values = {v.key.name: (json.loads(v.value), v.version) for v in snap.user + snap.bot}
    values |= {v.key.name: (json.loads(v.value), v.version) for v in snap.temp_vars}
    assert values == {n: (x, write.version) for n, x in [("e", 1), ("r", 1), ("t", 1), ("u", 102)]}
    assert [v.expires_at for v in snap.user] == [NOW + 99]


async def test_200_concurrent_deltas_from_several_processes_sum_exactly(
    open_storage: OpenStorage,
) -> None:
    storages = [await open_storage() for _ in range(4)]
    key, counter = var("bot", "visits"), var("user", "points", owner="shared")

    async def visit(i: int) -> None:
        deltas = [VarDelta(key, 1), VarDelta(counter, 0.25)]
        await storages[i % 4].commit_turn(TurnWrite(None, deltas=deltas, now=NOW))

    await asyncio.gather(*(visit(i) for i in range(200)))  # a conflict would raise
    snap = await storages[0].load_turn(TurnKeys("b", "shared", "s"))
    assert [json.loads(v.value) for v in snap.bot] == [200]
    assert [json.loads(v.value) for v in snap.user] == [50.0]


# -- commit ids ------------------------------------------------------------------------------
async def test_a_commit_sent_again_is_not_applied_again(open_storage: OpenStorage) -> None:
    first, second = await open_storage(), await open_storage()
    write = TurnWrite(
        None,
        deltas=[VarDelta(var("bot", "visits"), 1)],
        kvs_writes=[KvsWrite("b", "k", KvsRecord("1", None))],
        now=NOW,
    )
    await first.commit_turn(write)
    await first.kvs_put("b", "k", NOW, KvsRecord("2", None))
    await second.commit_turn(write)  # from another process: already applied, a success
    assert [v.value for v in (await first.load_turn(KEYS)).bot] == ["1"]
    record = await first.kvs_get("b", "k", NOW)
    assert record is not None
    assert record.value == "2"


# -- fencing: a lease holder paused past its lease -----------------------------------------
HOLDER = textwrap.dedent(
    """
    import asyncio, json, sys
    from botmemory.errors import ConflictError
    from botmemory.storage import create_storage
    from botmemory.storage.base import (
        SessionRecord, StoredVar, TurnKeys, TurnWrite, VarCheck, VarKey
    )

    async def main(url: str, now: float) -> None:
        storage = create_storage(url)
        await storage.open()
        async with storage.session_lock("b", "s"):
            snap = await storage.load_turn(TurnKeys("b", "u", "s"))
            print("loaded", flush=True)
            sys.stdin.readline()  # the parent stops this process, then lets it go on
            key = VarKey("session", "b", "s", "n")
            row = next((v for v in snap.session_vars if v.key == key), None)
            count = 0 if row is None else json.loads(row.value)
            write = TurnWrite(
                SessionRecord("b", "s", "u", now, now, now + 3600, None),
                session_version=0 if snap.session is None else snap.session.version,
                checks=[VarCheck(key, 0 if row is None else row.version)],
                upserts=[StoredVar(key, json.dumps(count + 1), now)],
                now=now,
            )
            try:
                await storage.commit_turn(write)
                print("committed", flush=True)
            except ConflictError:
                print("conflict", flush=True)
        await storage.close()

    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
    """
)


async def bump(storage: Storage) -> None:
    """One turn that adds 1 to session variable ``n``, checking what it read."""
    async with storage.session_lock("b", "s"):
        snap = await storage.load_turn(KEYS)
        key = var("session", "n")
        row = next((v for v in snap.session_vars if v.key == key), None)
        count = 0 if row is None else json.loads(row.value)
        await storage.commit_turn(
            TurnWrite(
                SessionRecord("b", "s", "u", NOW, NOW, NOW + 3600, None),
                session_version=0 if snap.session is None else snap.session.version,
                checks=[VarCheck(key, 0 if row is None else row.version)],
                upserts=[stored(key, count + 1)],
                now=NOW,
            )
        )


@pytest.mark.parametrize("others_run", [True, False])
async def test_a_holder_paused_past_its_lease_never_overwrites_a_newer_turn(
    open_storage: OpenStorage, redis_url: str, tmp_path: Path, others_run: bool
) -> None:
    url = f"{redis_url}&lease_timeout=300ms"
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holder = await asyncio.create_subprocess_exec(
        sys.executable, str(script), url, repr(NOW),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(os.environ),
    )  # fmt: skip
    assert holder.stdin is not None
    assert holder.stdout is not None
    try:
        line = await asyncio.wait_for(holder.stdout.readline(), 20)
        assert line == b"loaded\n"
        os.kill(holder.pid, signal.SIGSTOP)
        await asyncio.sleep(0.6)  # past its lease: nobody renews it
        storage = await open_storage(url)
        if others_run:
            for _ in range(3):
                await asyncio.wait_for(bump(storage), 10)
        holder.stdin.write(b"go\n")
        await holder.stdin.drain()
        os.kill(holder.pid, signal.SIGCONT)
        outcome = await asyncio.wait_for(holder.stdout.readline(), 20)
        assert await asyncio.wait_for(holder.wait(), 20) == 0
    finally:
        if holder.returncode is None:
            os.kill(holder.pid, signal.SIGCONT)
            holder.kill()
            await holder.wait()
    snap = await storage.load_turn(KEYS)
    (count,) = [json.loads(v.value) for v in snap.session_vars]
    if others_run:  # the paused turn read n before the others' turns: refused
        assert (outcome, count) == (b"conflict\n", 3)
    else:  # nobody changed what it read: it commits, as if it had run first
        assert (outcome, count) == (b"committed\n", 1)


# -- a stalled server ------------------------------------------------------------------------
class StallableServer:
    """A ``redis-server`` of this test alone, without persistence, on a free port."""

    def __init__(self, binary: str, directory: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(directory), "--enable-debug-command", "local"]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        self._process.kill()
        self._process.wait(timeout=10)


@pytest.fixture
def stallable(tmp_path: Path) -> Iterator[StallableServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: the stall test runs a server of its own")
    server = StallableServer(binary, tmp_path)
    yield server
    server.stop()


@pytest.mark.parametrize("attempt", range(3))
async def test_a_commit_whose_reply_timed_out_is_applied_once(
    stallable: StallableServer, attempt: int
) -> None:
    url = f"redis://127.0.0.1:{stallable.port}/0?socket_timeout=0.2"
    storage = create_storage(url)
    await storage.open()
    admin = aioredis.Redis(port=stallable.port, decode_responses=True)
    key = var("bot", "visits")
    write = TurnWrite(None, deltas=[VarDelta(key, 1)], now=NOW)
    try:
        await storage.commit_turn(TurnWrite(None, upserts=[stored(key, 0)], now=NOW))
        stall = asyncio.create_task(admin.execute_command("DEBUG", "SLEEP", "0.6"))
        await asyncio.sleep(0.05 + 0.1 * attempt)  # the commit lands in the stall
        with pytest.raises(BackendUnavailableError):  # its reply times out
            await storage.commit_turn(write)
        await stall  # the server is back; the first attempt may have run meanwhile
        (row,) = (await storage.load_turn(KEYS)).bot
        assert json.loads(row.value) in (0, 1)
        await storage.commit_turn(write)  # sent again, as a caller retrying would
        await storage.commit_turn(write)
        (row,) = (await storage.load_turn(KEYS)).bot
        assert json.loads(row.value) == 1
    finally:
        await storage.close()
        await admin.aclose()


def prefix_of(url: str) -> str:
    return url.partition("prefix=")[2].partition("&")[0]


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    from tests.conftest import REDIS_URL

    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


async def test_janitor_and_kvs_writes_give_new_versions(open_storage: OpenStorage) -> None:
    storage = await open_storage()
    first = await seed(storage)
    await storage.kvs_put("b", "cfg/a", NOW, KvsRecord('"z"', None))
    put = await storage.kvs_get("b", "cfg/a", NOW)
    assert put is not None
    assert put.version not in (0, first.version)
    await storage.kvs_modify("b", "cfg/a", NOW, lambda r: (KvsRecord("1", None), None))
    modified = await storage.kvs_get("b", "cfg/a", NOW)
    assert modified is not None
    assert modified.version not in (0, put.version)
    name = var("user", "name")
    applied = await storage.update_user_vars([VarUpdate(name, NOW, '"Bo"', NOW + 9)])
    assert len(applied) == 1
    snap = await storage.load_turn(KEYS)
    assert snap.user[0].value == '"Bo"'
    assert snap.user[0].version not in (0, first.version)
    assert snap.session is not None
    assert await storage.clear_temps([snap.session]) == 1
    after = await storage.load_turn(KEYS)
    assert after.session is not None
    assert after.session.version not in (0, first.version)
    assert after.temp_vars == []
    assert await storage.clear_temps([snap.session]) == 0  # done already: not counted again
