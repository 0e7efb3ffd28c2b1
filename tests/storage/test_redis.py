"""What is specific to the Redis backend: URL, key layout, native TTLs, leases and faults.

A second ``Memory`` on the same URL has its own connection pool, so to the server it
is another process. Faults are made for real: connections killed with ``CLIENT KILL``,
and a private ``redis-server`` that is stopped and started again.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from botmemory import (
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    Identity,
    InvalidDurationError,
    LockTimeoutError,
    ManualClock,
    Memory,
    SchemaVersionError,
)
from botmemory.kvs import user_storage_key
from botmemory.storage import create_storage
from botmemory.storage.base import KvsRecord
from botmemory.urls import mask_url
from tests.conftest import DAY, REDIS_URL

redis = pytest.importorskip("redis")

import redis.asyncio as aioredis  # noqa: E402 - needs redis
from redis.crc import key_slot  # noqa: E402

from botmemory.storage.redis import RedisOptions  # noqa: E402
from botmemory.storage.redis import kvs as redis_kvs  # noqa: E402
from botmemory.storage.redis.layout import BotKeys, MetaKeys  # noqa: E402
from botmemory.storage.redis.lease import Lease  # noqa: E402
from botmemory.storage.redis.scripts import Scripts  # noqa: E402

pytestmark = pytest.mark.redis

OpenRedis = Callable[..., Awaitable[Memory]]
SESSION = Identity.of("b", "u1").session_key


def prefix_of(url: str) -> str:
    return dict(parse_qsl(url.partition("?")[2]))["prefix"]


def with_params(url: str, **params: str) -> str:
    return f"{url}&{urlencode(params)}" if params else url


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the test server outside botmemory."""
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def open_redis(redis_url: str, clock: ManualClock) -> AsyncIterator[OpenRedis]:
    """Open memories on this test's prefix, with extra URL parameters; close them after."""
    opened: list[Memory] = []

    async def open_(config: dict[str, Any] | None = None, **params: str) -> Memory:
        mem = await Memory.open(with_params(redis_url, **params), config, clock=clock)
        opened.append(mem)
        return mem

    yield open_
    for mem in opened:
        await mem.close()


async def fill(mem: Memory, users: int) -> None:
    for i in range(users):
        async with mem.turn("b", f"u{i}") as state:
            state.user["name"] = f"n{i}"
            state.session["s"] = i
            state.temp["t"] = i
        await mem.kvs.for_bot("b").set(f"k{i}", i, expiry="1h")


async def kill_clients(admin: aioredis.Redis, name: str, only_blocked: bool = False) -> int:
    """Kill the connections named ``name`` (only those blocked, if asked); count them."""
    killed = 0
    for client in await admin.client_list():
        if client.get("name") == name and (not only_blocked or "b" in client["flags"]):
            killed += await admin.client_kill_filter(_id=client["id"])
    return killed


# -- URL ----------------------------------------------------------------------------------
def test_own_url_parameters_are_taken_out_of_the_url() -> None:
    options = RedisOptions.parse(
        "rediss://u:pw@h:6380/2?prefix=app:&socket_timeout=3&lease_timeout=5s&lock_wait=2s"
        "&ttl_grace=10m&pool_max=7"
    )
    assert options.client_url == "rediss://u:pw@h:6380/2?socket_timeout=3"
    assert (options.prefix, options.lease_timeout, options.lock_wait) == ("app:", 5.0, 2.0)
    assert (options.ttl_grace, options.pool_max) == (600.0, 7)
    defaults = RedisOptions.parse("redis://h")
    assert (defaults.client_url, defaults.prefix, defaults.lease_timeout) == (
        "redis://h",
        "botmemory:",
        30.0,
    )


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("prefix={x}:", ConfigError),
        ("prefix=", ConfigError),
        ("lease_timeout=soon", InvalidDurationError),
        ("lease_timeout=0s", InvalidDurationError),
        ("lock_wait=never", InvalidDurationError),
        ("pool_max=0", ConfigError),
        ("pool_max=many", ConfigError),
        ("socket_timeout=abc", ConfigError),
    ],
)
def test_bad_url_parameters_are_refused_before_connecting(
    query: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        create_storage(f"redis://127.0.0.1:1/0?{query}")


async def test_a_newer_layout_is_refused(redis_url: str, admin: aioredis.Redis) -> None:
    await admin.set(MetaKeys.of(prefix_of(redis_url)).layout, 99)
    with pytest.raises(SchemaVersionError, match="newer"):
        await Memory.open(redis_url)


# -- layout and native expiry --------------------------------------------------------------
async def test_every_key_of_a_bot_shares_one_hash_tag(
    open_redis: OpenRedis, admin: aioredis.Redis, redis_url: str
) -> None:
    mem = await open_redis({"dataRetention": {"policies": {"mood": "1h"}}})
    for thread in (None, "t1"):
        async with mem.turn("b", "u1", thread_id=thread) as state:
            state.user.update({"mood": "ok", "name": "Ada"})
            state.session["s"] = 1
            state.temp["t"] = 1
            state.bot["b"] = 1
    await mem.kvs.for_bot("b").set("k", 1, expiry="1h")
    await mem.kvs.for_global().set("g", 1)
    keys = [k async for k in admin.scan_iter(match=f"{prefix_of(redis_url)}*")]
    of_the_bot = [k for k in keys if "{global}" not in k and "{meta}" not in k]
    assert len(of_the_bot) >= 12  # user, 2 sessions with their variables, bot, kvs, indexes
    assert len({key_slot(k.encode()) for k in of_the_bot}) == 1


async def test_whole_keys_get_native_ttls_from_their_stored_expiry(
    redis_url: str, admin: aioredis.Redis
) -> None:
    clock = ManualClock(time.time())  # near real time: a TTL is the remaining time
    config = {"dialog": {"timeoutInterval": "5m", "sessionTimeoutInterval": "1h"}}
    url = with_params(redis_url, ttl_grace="2s")
    async with await Memory.open(url, config, clock=clock) as mem:
        async with mem.turn("b", "u1") as state:
            state.user["name"] = "Ada"
            state.session["s"] = 1
            state.temp["t"] = 1
        kvs = mem.kvs.for_bot("b")
        await kvs.set("expiring", 1, expiry="10m")
        await kvs.set("cleared", 1, expiry="10m")
        await kvs.set("cleared", 2)
    keys = BotKeys.of(prefix_of(redis_url), "b")

    async def ttl(key: str) -> float:
        return float(await admin.pttl(key)) / 1000

    for key, lives in [
        (keys.session(SESSION), 3600),
        (keys.session_vars(SESSION), 3600),
        (keys.temp_vars(SESSION), 300),
        (keys.data("expiring"), 600),
    ]:
        assert lives - 5 < await ttl(key) <= lives + 2, key
    assert await ttl(keys.data("cleared")) < 0  # set without expiry: no TTL left
    assert await ttl(keys.user('["api","u1"]')) < 0  # retention is per variable


async def test_redis_never_frees_a_key_before_the_injected_clock_says_so(
    open_redis: OpenRedis, admin: aioredis.Redis, redis_url: str, clock: ManualClock
) -> None:
    mem = await open_redis()  # the test clock is years behind real time
    kvs = mem.kvs.for_bot("b")
    await kvs.set("k", "v", expiry="1h")
    assert await admin.pttl(BotKeys.of(prefix_of(redis_url), "b").data("k")) > 3500 * 1000
    clock.advance(timedelta(seconds=3599))
    assert await kvs.get("k") == "v"
    clock.advance(timedelta(seconds=1))
    assert await kvs.get("k") is None


async def test_records_redis_expired_on_its_own_do_not_confuse_the_janitor(
    open_redis: OpenRedis, admin: aioredis.Redis, redis_url: str, clock: ManualClock
) -> None:
    mem = await open_redis()
    await fill(mem, 3)
    keys = BotKeys.of(prefix_of(redis_url), "b")
    gone = Identity.of("b", "u0")
    sk = gone.session_key
    await admin.delete(keys.session(sk), keys.session_vars(sk), keys.temp_vars(sk))
    await admin.delete(keys.user_sessions(gone.user_key), keys.data("k0"))  # TTLs ran out
    clock.advance(timedelta(seconds=DAY))
    report = await mem.janitor.run_once()
    assert (report.sessions, report.temp, report.kvs) == (2, 2, 3)
    assert (await mem.janitor.run_once()).total == 0
    left = [k async for k in admin.scan_iter(match=f"{keys.base}*")]
    users = [keys.user(Identity.of("b", f"u{i}").user_key) for i in range(3)]
    bookkeeping = [keys.users, keys.commits, keys.registered]
    assert sorted(left) == sorted([*users, *bookkeeping])  # no index entry is left behind


# -- leases --------------------------------------------------------------------------------
async def test_only_the_holder_releases_a_lease_and_a_lapsed_one_is_taken_over(
    redis_url: str, admin: aioredis.Redis
) -> None:
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    scripts = Scripts(client)
    key = f"{prefix_of(redis_url)}test-lease"
    holder = Lease(client, scripts, key, timeout=0.3)
    other = Lease(client, scripts, key, timeout=0.3)
    try:
        assert await holder.try_take()
        assert not await other.try_take()
        assert not await other.release()
        assert await admin.get(key) == holder.token
        await holder.stop()  # the holder dies: nobody renews its lease
        assert await other.take(wait=3)
        assert not await holder.release()
        assert await admin.get(key) == other.token
        assert await other.release()
        assert await admin.get(key) is None
    finally:
        await holder.stop()
        await other.stop()
        await client.aclose()


async def test_turns_of_one_session_are_serialized_across_processes(
    open_redis: OpenRedis,
) -> None:
    first, second = await open_redis(), await open_redis()

    async def bump(mem: Memory) -> None:
        async with mem.turn("b", "u1") as state:
            count = state.session.get("n", 0)
            await asyncio.sleep(0.001)  # let the other process try to get in
            state.session["n"] = count + 1  # type: ignore[operator]

    await asyncio.gather(*(bump(mem) for mem in (first, second) for _ in range(20)))
    async with first.turn("b", "u1") as state:
        assert state.session["n"] == 40


async def test_a_turn_takes_over_the_lapsed_lease_of_a_dead_process(
    open_redis: OpenRedis, admin: aioredis.Redis, redis_url: str
) -> None:
    mem = await open_redis(lock_wait="5s")
    lease = BotKeys.of(prefix_of(redis_url), "b").lease(SESSION)
    await admin.set(lease, "token-of-a-dead-process", px=300)
    started = time.monotonic()
    async with mem.turn("b", "u1") as state:
        state.user["name"] = "Ada"
    assert time.monotonic() - started >= 0.25


async def test_a_turn_gives_up_after_lock_wait(
    open_redis: OpenRedis, admin: aioredis.Redis, redis_url: str
) -> None:
    mem = await open_redis(lock_wait="200ms")
    lease = BotKeys.of(prefix_of(redis_url), "b").lease(SESSION)
    await admin.set(lease, "token-of-a-busy-process", px=10_000)
    with pytest.raises(LockTimeoutError, match="lock_wait"):
        async with mem.turn("b", "u1"):
            pass
    assert await admin.get(lease) == "token-of-a-busy-process"  # not ours to release
    await admin.delete(lease)
    async with mem.turn("b", "u1") as state:
        state.user["name"] = "Ada"


async def test_a_long_turn_keeps_its_lease(open_redis: OpenRedis) -> None:
    slow = await open_redis(lease_timeout="300ms")
    other = await open_redis(lock_wait="300ms")
    async with slow.turn("b", "u1"):
        await asyncio.sleep(0.5)  # longer than the lease: its holder renews it
        with pytest.raises(LockTimeoutError):
            async with other.turn("b", "u1"):
                pass


async def test_one_janitor_runs_at_a_time_across_processes(
    open_redis: OpenRedis, clock: ManualClock
) -> None:
    first, second = await open_redis(), await open_redis()
    await fill(first, 30)
    clock.advance(timedelta(seconds=DAY))
    reports = await asyncio.gather(first.janitor.run_once(), second.janitor.run_once())
    assert sum(r.sessions for r in reports) == 30
    assert sum(r.kvs for r in reports) == 30
    assert sum(r.temp for r in reports) == 30


async def test_a_janitor_lease_held_elsewhere_skips_the_run_until_it_lapses(
    open_redis: OpenRedis,
    admin: aioredis.Redis,
    redis_url: str,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mem = await open_redis()
    await fill(mem, 3)
    clock.advance(timedelta(seconds=DAY))
    await admin.set(MetaKeys.of(prefix_of(redis_url)).janitor_lease, "killed-janitor", px=300)
    with caplog.at_level(logging.INFO, logger="botmemory.janitor"):
        assert (await mem.janitor.run_once()).total == 0
    assert any("skipped" in r.message for r in caplog.records)
    await asyncio.sleep(0.35)  # the killed janitor's lease lapses
    assert (await mem.janitor.run_once()).sessions == 3


async def test_a_failed_janitor_run_releases_its_lease_and_the_next_finishes(
    open_redis: OpenRedis, clock: ManualClock
) -> None:
    mem = await open_redis()
    mem.janitor.batch_size = 2
    await fill(mem, 5)
    clock.advance(timedelta(seconds=DAY))
    storage = mem.storage
    real = storage.delete_sessions
    calls = 0

    async def dies_after_one_batch(sessions: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("janitor killed")
        return await real(sessions)

    storage.delete_sessions = dies_after_one_batch  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await mem.janitor.run_once()
    storage.delete_sessions = real  # type: ignore[method-assign]
    assert (await mem.janitor.run_once()).sessions == 3


# -- faults --------------------------------------------------------------------------------
async def test_a_read_modify_write_cut_off_is_not_applied_twice(
    open_redis: OpenRedis, admin: aioredis.Redis, clock: ManualClock
) -> None:
    name = f"bm-test-{uuid.uuid4().hex[:8]}"
    mem = await open_redis(client_name=name)
    kvs = mem.kvs.for_bot("b")
    await kvs.set("count", 1)
    sync_admin = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    calls = 0

    def add_one_and_cut_the_connection(record: KvsRecord | None) -> tuple[KvsRecord, None]:
        nonlocal calls
        calls += 1
        for client in sync_admin.client_list():
            if client.get("name") == name:
                sync_admin.client_kill_filter(_id=client["id"])
        return KvsRecord("2", None), None

    try:
        with pytest.raises(BackendUnavailableError):
            await mem.storage.kvs_modify("b", "count", clock(), add_one_and_cut_the_connection)
    finally:
        sync_admin.close()
    assert calls == 1  # a lost connection is not a conflict: no retry
    assert await kvs.get("count") == 1
    assert await kvs.incr("count") == 2


async def test_shortening_timers_skips_a_session_rewritten_since_the_read(
    open_redis: OpenRedis, admin: aioredis.Redis, redis_url: str
) -> None:
    mem = await open_redis()
    async with mem.turn("b", "u1") as state:
        state.session["step"] = 1
    k = BotKeys.of(prefix_of(redis_url), "b")
    record = k.session(SESSION)
    read = await admin.hget(record, "ver")
    async with mem.turn("b", "u1") as state:
        state.session["step"] = 2
    expires = await admin.hget(record, "expires")

    def shorten(version: str) -> Awaitable[list[int]]:
        keys = [k.due_sessions, k.due_temps, record]
        return Scripts(admin).update_sessions(keys=keys, args=[version, SESSION, "1.0", "", "7"])

    assert await shorten(read) == []  # a turn rewrote it after the read
    assert await admin.hget(record, "expires") == expires
    assert await shorten(await admin.hget(record, "ver")) == [1]
    assert await admin.hmget(record, ["expires", "ver"]) == ["1.0", "7"]
    assert await admin.zscore(k.due_sessions, SESSION) == 1.0
    await admin.delete(record)  # the janitor deleted it since a read: not brought back
    assert await shorten("7") == await shorten("1") == []
    assert await admin.exists(record) == 0


async def test_concurrent_increments_of_one_key_from_two_processes_all_count(
    open_redis: OpenRedis,
) -> None:
    first, second = await open_redis(), await open_redis()  # two pools: two processes
    stores = [first.kvs.for_bot("b"), second.kvs.for_bot("b")]
    await asyncio.gather(*(stores[i % 2].incr("hits") for i in range(400)))
    assert await stores[0].get("hits") == 400
    for mem in (first, second):  # the per-key queues are gone once idle
        assert not mem.storage._kvs._modifying  # type: ignore[attr-defined]


async def test_increments_of_one_key_in_one_process_never_conflict(
    open_redis: OpenRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    conflicts: list[int] = []
    monkeypatch.setattr(redis_kvs, "_backoff", lambda n: conflicts.append(n) or 0.0)
    kvs = (await open_redis()).kvs.for_bot("b")
    await asyncio.gather(*(kvs.incr("hits") for _ in range(200)))
    assert await kvs.get("hits") == 200
    assert conflicts == []  # queued in the process, not retried after a WATCH conflict


async def test_connections_killed_between_turns_are_replaced(
    open_redis: OpenRedis, admin: aioredis.Redis
) -> None:
    name = f"bm-test-{uuid.uuid4().hex[:8]}"
    mem = await open_redis(client_name=name)
    async with mem.turn("b", "u1") as state:
        state.user["name"] = "Ada"
    assert await kill_clients(admin, name) >= 1
    async with mem.turn("b", "u1") as state:
        assert state.user["name"] == "Ada"
    assert await mem.kvs.for_bot("b").incr("n") == 1


async def test_an_unreachable_server_is_unavailable_with_the_password_masked(
    clock: ManualClock,
) -> None:
    url = "redis://bot:s3cret-pw@127.0.0.1:1/0?socket_connect_timeout=2"
    with pytest.raises(BackendUnavailableError) as failure:
        await Memory.open(url, clock=clock)
    assert "redis://bot:***@127.0.0.1:1/0" in str(failure.value)
    assert "s3cret-pw" not in str(failure.value)


@pytest.mark.parametrize("pool_max", ["5", "50"])
async def test_a_thousand_concurrent_calls_wait_for_a_connection(
    open_redis: OpenRedis, admin: aioredis.Redis, pool_max: str
) -> None:
    name = f"bm-test-{uuid.uuid4().hex[:8]}"
    mem = await open_redis(client_name=name, pool_max=pool_max)
    kvs = mem.kvs.for_bot("b")
    await asyncio.gather(*(kvs.incr(f"n{i % 100}") for i in range(1000)))
    assert await asyncio.gather(*(kvs.get(f"n{i}") for i in range(100))) == [10] * 100
    connections = [c for c in await admin.client_list() if c.get("name") == name]
    assert 1 <= len(connections) <= int(pool_max)


async def test_a_call_that_finds_no_free_connection_in_time_says_so_once(
    open_redis: OpenRedis, redis_url: str
) -> None:
    mem = await open_redis(pool_max="1", lock_wait="200ms")
    client = mem.storage._redis  # type: ignore[attr-defined]
    blocked = asyncio.create_task(client.blpop([f"{prefix_of(redis_url)}nothing"], 1))
    await asyncio.sleep(0.05)  # the only connection waits in BLPOP
    with pytest.raises(LockTimeoutError) as failure:
        await mem.kvs.for_bot("b").get("k")
    assert "pool_max=1" in str(failure.value)
    assert str(failure.value).count("Redis") == 1  # not wrapped again on the way out
    await blocked
    assert await mem.kvs.for_bot("b").get("k") is None


async def test_the_janitor_visits_a_bot_again_after_redis_lost_its_data(
    open_redis: OpenRedis, admin: aioredis.Redis, redis_url: str, clock: ManualClock
) -> None:
    mem = await open_redis()
    await fill(mem, 2)
    keys = [k async for k in admin.scan_iter(match=f"{prefix_of(redis_url)}*")]
    await admin.delete(*keys)  # as a restart without persistence, for this prefix only
    await fill(mem, 2)  # this process remembers having registered the bot
    await mem.kvs.for_bot("kvs-only").set("k", 1, expiry="1h")
    clock.advance(timedelta(seconds=DAY))
    report = await mem.janitor.run_once()
    assert (report.sessions, report.temp, report.kvs) == (2, 2, 3)


async def test_overlapping_janitor_steps_count_each_temp_memory_once(
    open_redis: OpenRedis, clock: ManualClock
) -> None:
    first, second = await open_redis(), await open_redis()
    await fill(first, 10)
    clock.advance(timedelta(seconds=DAY))
    due = await first.storage.expired_temps(clock(), 100)
    counts = await asyncio.gather(first.storage.clear_temps(due), second.storage.clear_temps(due))
    assert sum(counts) == 10


class PrivateServer:
    """A ``redis-server`` of this test alone, with an append-only file, on a free port."""

    def __init__(self, binary: str, directory: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self._args += ["--appendonly", "yes", "--dir", str(directory)]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(self._args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait for the real process to listen
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()  # a clean shutdown: the append-only file is kept
            self._process.wait(timeout=10)
            self._process = None


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[PrivateServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: the restart test runs a server of its own")
    server = PrivateServer(binary, tmp_path)
    server.start()
    yield server
    server.stop()


async def test_server_down_and_back(private_server: PrivateServer, clock: ManualClock) -> None:
    url = f"redis://127.0.0.1:{private_server.port}/0?socket_connect_timeout=1"
    async with await Memory.open(url, clock=clock) as mem:
        async with mem.turn("b", "u1") as state:
            state.user["name"] = "Ada"
        with pytest.raises(BackendUnavailableError, match="unavailable"):
            async with mem.turn("b", "u1") as state:
                state.user["name"] = "Bob"
                private_server.stop()  # the commit finds the server gone
        with pytest.raises(BackendUnavailableError):
            async with mem.turn("b", "u1"):
                pass
        private_server.start()  # with its data, and the lease the failed turn could not free
        lease = BotKeys.of("botmemory:", "b").lease(SESSION)
        raw = aioredis.Redis(port=private_server.port)
        assert await raw.pttl(lease) > 20_000
        await raw.aclose()
        started = time.monotonic()
        async with mem.turn("b", "u1") as state:
            assert state.user["name"] == "Ada"
            state.user["name"] = "Cy"
        assert time.monotonic() - started < 5  # it did not wait for that lease to lapse
        async with mem.turn("b", "u1") as state:
            assert state.user["name"] == "Cy"


async def test_a_connection_killed_during_a_commit_fails_the_turn_and_writes_nothing(
    private_server: PrivateServer, clock: ManualClock
) -> None:
    name = f"bm-test-{uuid.uuid4().hex[:8]}"
    redis_url = f"redis://127.0.0.1:{private_server.port}/0?client_name={name}"
    mem = await Memory.open(redis_url, clock=clock)
    admin = aioredis.Redis(port=private_server.port, decode_responses=True)
    async with mem.turn("b", "u1") as state:
        state.user["name"] = "Ada"

    async def kill_the_commit() -> None:
        while not await kill_clients(admin, name, only_blocked=True):  # noqa: ASYNC110
            await asyncio.sleep(0.005)  # polls the server, not this process
        await admin.client_unpause()

    killer: asyncio.Task[None] | None = None
    try:
        with pytest.raises(BackendUnavailableError) as failure:
            async with mem.turn("b", "u1") as state:
                state.user["name"] = "Bob"
                state.session["topic"] = "lost"
                state.bot["count"] = 1
                await admin.client_pause(5000, all=False)  # writes wait: the commit hangs
                killer = asyncio.create_task(kill_the_commit())
    finally:
        await admin.client_unpause()
    assert killer is not None
    await killer
    assert mask_url(redis_url) in str(failure.value)
    async with mem.turn("b", "u1") as state:  # the first turn after succeeds
        assert state.user["name"] == "Ada"
        assert "topic" not in state.session
        assert "count" not in state.bot
        state.user["name"] = "Cy"
    async with mem.turn("b", "u1") as state:
        assert state.user["name"] == "Cy"
    await mem.close()
    await admin.aclose()


async def test_an_erasure_deletes_the_users_keys_in_the_transaction_of_the_rest(
    open_redis: OpenRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn of another process that read a key of the user cannot copy it into memory
    the erasure already deleted: the key goes in the same transaction, so the turn's
    check of it fails."""
    mem, other = await open_redis(), await open_redis()
    key = user_storage_key("u1", "secret")
    await mem.kvs.for_bot("b").set(key, "S")
    erased, go_on = asyncio.Event(), asyncio.Event()
    storage: Any = mem.storage
    delete_prefix = storage._kvs.delete_prefix

    async def after_the_transaction(namespace: str, prefix: str) -> int:
        erased.set()  # the erasure's transaction has run: only its late pass is left
        await go_on.wait()
        return int(await delete_prefix(namespace, prefix))

    monkeypatch.setattr(storage._kvs, "delete_prefix", after_the_transaction)

    async def copy_the_secret() -> None:
        async with other.turn("b", "u1") as state:
            secret = await state.kvs.get(key)
            await erased.wait()
            state.user["copy"] = secret

    turn = asyncio.create_task(copy_the_secret())
    erasure = asyncio.create_task(mem.forget_user("b", "u1"))
    with pytest.raises(ConflictError):
        await turn
    go_on.set()
    assert (await erasure).kvs == 1
    exported = await mem.export_user("b", "u1")
    assert (exported.user, exported.kvs) == ({}, {})
