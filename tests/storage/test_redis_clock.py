"""Redis' native TTLs count from botmemory's clock, not from the wall clock nor Redis'.

Every test runs a :class:`~botmemory.ManualClock` years behind real time (``START``)
with a short ``ttl_grace``, and reads the TTL Redis reports (``PTTL``) right after the
write: it must be the time that clock leaves until the stored expiry, plus the grace
(never less than the grace). Nothing sleeps: a TTL counted from the wall clock would be
the bare grace, and Redis would free live data that much real time later.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import parse_qsl

import pytest

from botmemory import Identity, ManualClock, Memory
from botmemory.durations import parse_duration
from botmemory.storage import create_storage
from botmemory.storage.base import (
    KvsDelta,
    KvsRecord,
    KvsWrite,
    SessionRecord,
    StoredVar,
    TurnWrite,
    VarKey,
)
from tests.conftest import BACKENDS, REDIS_URL, START

redis = pytest.importorskip("redis")

import redis.asyncio as aioredis  # noqa: E402 - needs redis
from redis.asyncio.cluster import RedisCluster  # noqa: E402 - needs redis

from botmemory.storage.redis.layout import BotKeys, kvs_keys  # noqa: E402

pytestmark = pytest.mark.redis

TTL_GRACE = "2s"
GRACE = parse_duration(TTL_GRACE)
SESSION_TIMEOUT = parse_duration("1h")
DIALOG_TIMEOUT = parse_duration("5m")
CONFIG = {
    "dialog": {"timeoutInterval": "5m", "sessionTimeoutInterval": "1h"},
    "dataRetention": {"policies": {"email": "1d"}},
}
WHO = Identity.of("b", "u1")
REDIS_BACKENDS = [b for b in ("redis", "redis_cluster") if b in BACKENDS] or ["redis"]


@pytest.fixture(params=REDIS_BACKENDS)
def url(request: pytest.FixtureRequest) -> str:
    """A Redis (or Redis Cluster) URL on a prefix of this test, with a 2 s grace."""
    base = str(request.getfixturevalue(f"{request.param}_url"))
    return f"{base}&ttl_grace={TTL_GRACE}"


@pytest.fixture
async def admin(url: str) -> AsyncIterator[aioredis.Redis | RedisCluster]:
    """A client of the same server (or cluster) outside botmemory."""
    client: aioredis.Redis | RedisCluster
    if url.startswith("redis+cluster://"):
        first = url.partition("://")[2].split(",")[0].split("/")[0]
        client = RedisCluster.from_url(f"redis://{first}", decode_responses=True)
    else:
        client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def mem(url: str, clock: ManualClock) -> AsyncIterator[Memory]:
    async with await Memory.open(url, CONFIG, clock=clock) as memory:
        yield memory


def prefix_of(url: str) -> str:
    return dict(parse_qsl(url.partition("?")[2]))["prefix"]


def keys_of(url: str) -> BotKeys:
    return BotKeys.of(prefix_of(url), "b")


async def assert_ttl(admin: aioredis.Redis | RedisCluster, key: str, lives: float) -> None:
    """Redis frees ``key`` ``lives`` seconds of the clock from now, plus the grace."""
    ttl = float(await admin.pttl(key)) / 1000
    expected = lives + GRACE
    assert expected - 5 < ttl <= expected, f"{key}: TTL {ttl}s, expected about {expected}s"


def test_the_clock_is_far_behind_real_time(clock: ManualClock) -> None:
    """What every test here relies on: a wall-clock TTL would be the bare grace."""
    assert time.time() - clock() > 30 * 86400


async def test_a_turns_session_and_its_memories_live_by_botmemorys_clock(
    mem: Memory, admin: aioredis.Redis | RedisCluster, url: str, clock: ManualClock
) -> None:
    async with mem.turn("b", "u1") as state:
        state.session["topic"] = "billing"
        state.temp["step"] = 1
        state.user["email"] = "ada@example.com"  # retention: 1d, per variable
    keys = keys_of(url)
    sk = WHO.session_key
    for key in (keys.session(sk), keys.session_vars(sk), keys.user_sessions(WHO.user_key)):
        await assert_ttl(admin, key, SESSION_TIMEOUT)
    await assert_ttl(admin, keys.temp_vars(sk), DIALOG_TIMEOUT)
    # a user variable's retention is per variable: its hash never gets a native TTL
    assert await admin.pttl(keys.user(WHO.user_key)) == -1
    email = (await mem.peek("b", "u1")).scopes["user"]["email"]
    assert (email.value, email.expires_at) == ("ada@example.com", START + parse_duration("1d"))

    clock.advance(timedelta(minutes=50))  # the next turn counts from the clock's new time
    async with mem.turn("b", "u1") as state:
        state.session["topic"] = "refund"
        state.temp["step"] = 2
    await assert_ttl(admin, keys.session(sk), SESSION_TIMEOUT)
    await assert_ttl(admin, keys.temp_vars(sk), DIALOG_TIMEOUT)
    assert await admin.pttl(keys.user(WHO.user_key)) == -1
    view = await mem.peek("b", "u1")
    assert view.scopes["session"]["topic"].value == "refund"
    assert view.scopes["user"]["email"].value == "ada@example.com"


async def test_kvs_keys_live_by_botmemorys_clock_in_and_out_of_turns(
    mem: Memory, admin: aioredis.Redis | RedisCluster, url: str
) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("doc", {"a": 1}, path="a", expiry="1h")  # a read-modify-write
    await kvs.add("hits", 1, expiry="2h")  # outside a turn: a read-modify-write too
    async with mem.turn("b", "u1") as state:
        await state.kvs.set("turn", "v", expiry="3h")  # written by the turn's commit
        await state.kvs.add("count", 1, expiry="4h")  # a delta added at commit
    keys = keys_of(url)
    for name, hours in [("doc", 1), ("hits", 2), ("turn", 3), ("count", 4)]:
        await assert_ttl(admin, keys.data(name), hours * 3600)
    assert await kvs.get("turn") == "v"


async def test_a_key_set_outside_a_turn_lives_by_botmemorys_clock(
    mem: Memory, admin: aioredis.Redis | RedisCluster, url: str
) -> None:
    await mem.kvs.for_bot("b").set("k", "v", expiry="1h")
    await assert_ttl(admin, keys_of(url).data("k"), 3600)


async def test_a_commit_counts_ttls_from_its_now_on_both_sides_of_the_expiry(
    url: str, admin: aioredis.Redis | RedisCluster
) -> None:
    """Through the storage contract: ``TurnWrite.now`` is the clock's time of the commit."""
    storage = create_storage(url)
    await storage.open()
    try:
        now = START
        session = SessionRecord("b", "s", "u", now - 60, now, now + 600, now + 300)
        await storage.commit_turn(
            TurnWrite(
                session,
                session_version=0,
                upserts=[
                    StoredVar(VarKey("session", "b", "s", "topic"), '"tea"', now, None),
                    StoredVar(VarKey("temp", "b", "s", "step"), "1", now, None),
                ],
                kvs_writes=[
                    KvsWrite("b", "live", KvsRecord("1", now + 30)),
                    KvsWrite("b", "gone", KvsRecord("1", now - 30)),  # expired at now
                ],
                kvs_deltas=[KvsDelta("b", "n", 1, now + 45)],
                now=now,
            )
        )
        keys = keys_of(url)
        await assert_ttl(admin, keys.session("s"), 600)
        await assert_ttl(admin, keys.session_vars("s"), 600)
        await assert_ttl(admin, keys.temp_vars("s"), 300)
        await assert_ttl(admin, keys.user_sessions("u"), 600)
        await assert_ttl(admin, keys.data("live"), 30)
        await assert_ttl(admin, keys.data("n"), 45)
        await assert_ttl(admin, keys.data("gone"), 0)  # past: the grace, no less

        record = KvsRecord("1", now + 120)
        for namespace in ("b", ""):  # a bot's store, and the global one
            await storage.kvs_modify(namespace, "rmw", now, lambda _: (record, None))
            await assert_ttl(admin, kvs_keys(prefix_of(url), namespace).data("rmw"), 120)
    finally:
        await storage.close()
