"""What is specific to Redis Cluster: URL, one slot per bot, every shard swept, failover.

The whole contract suite and the multi-process tests also run on a cluster (the
``redis_cluster`` backend of tests/conftest.py); these tests check what only a cluster
has. The cluster is real: six ``redis-server --cluster-enabled yes`` processes
(tests/redis_cluster.py), and the failover test starts one of its own to kill a master.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest

from botmemory import BackendUnavailableError, BotMemoryError, ConfigError, ManualClock, Memory
from botmemory.storage import create_storage
from tests.conftest import REDIS_URL, service_unavailable
from tests.redis_cluster import Cluster, ClusterUnavailable

redis = pytest.importorskip("redis")

from redis.asyncio.cluster import RedisCluster  # noqa: E402 - needs redis

from botmemory.storage.redis.layout import BotKeys  # noqa: E402

pytestmark = pytest.mark.redis

BOTS = [f"bot{i}" for i in range(24)]


def prefix_of(url: str) -> str:
    return url.partition("prefix=")[2]


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://127.0.0.1:7000,:7001/",
        "redis+cluster://127.0.0.1:7000,host/",
        "redis+cluster://127.0.0.1,127.0.0.1:7001/",
    ],
)
def test_each_node_of_a_cluster_url_needs_host_and_port(url: str) -> None:
    with pytest.raises(ConfigError, match="host:port"):
        create_storage(url)


@pytest.mark.parametrize("port", ["0", "65536"])
def test_a_cluster_node_port_is_1_to_65535(port: str) -> None:
    with pytest.raises(ConfigError, match="a port is 1 to 65535"):
        create_storage(f"redis+cluster://127.0.0.1:{port}/")
    with pytest.raises(ConfigError, match="a port is 1 to 65535"):
        create_storage(f"redis+cluster://127.0.0.1:7000,127.0.0.1:{port}/")
    create_storage("redis+cluster://127.0.0.1:65535,127.0.0.1:1/")  # both ends: taken


async def test_a_cluster_url_on_a_plain_server_says_so(clock: ManualClock) -> None:
    plain = REDIS_URL.partition("://")[2].split("/")[0]
    with pytest.raises(ConfigError, match="not a cluster"):
        await Memory.open(f"redis+cluster://{plain}/?prefix=bm-not-a-cluster:", clock=clock)


async def test_a_bot_keeps_one_slot_and_the_bots_spread_over_every_master(
    redis_cluster_url: str, clock: ManualClock
) -> None:
    async with await Memory.open(redis_cluster_url, clock=clock) as mem:
        for bot in BOTS:
            async with mem.turn(bot, "u1") as state:
                state.user["name"] = "Ada"
                state.session["step"] = 1
                state.bot["visits"] = 1
                await state.kvs.set("k", 1)
    first = redis_cluster_url.partition("://")[2].split(",")[0]
    client = RedisCluster.from_url(f"redis://{first}", decode_responses=True)
    try:
        masters = set()
        for bot in BOTS:
            base = BotKeys.of(prefix_of(redis_cluster_url), bot).base
            keys = [k async for k in client.scan_iter(match=f"{base}*")]
            assert len(keys) >= 5
            assert len({client.keyslot(k) for k in keys}) == 1
            masters.add(client.get_node_from_key(keys[0]).name)
        assert len(masters) == 3
    finally:
        await client.aclose()


async def test_the_janitor_sweeps_every_bot_on_every_shard(
    redis_cluster_url: str, clock: ManualClock
) -> None:
    config = {
        "dataRetention": {"policies": {"email": "1d"}},
        "dialog": {"sessionTimeoutInterval": "1d"},
    }
    async with await Memory.open(redis_cluster_url, config, clock=clock) as mem:
        for bot in BOTS:
            async with mem.turn(bot, "u1") as state:
                state.user["email"] = "ada@example.com"
                state.session["step"] = 1
            await mem.kvs.for_bot(bot).set("k", 1, expiry="1d")
        clock.advance(timedelta(days=1) - timedelta(seconds=1))
        before = await mem.janitor.run_once()
        assert (before.user_variables, before.sessions, before.kvs) == (0, 0, 0)
        clock.advance(timedelta(seconds=2))
        after = await mem.janitor.run_once()
        assert (after.user_variables, after.sessions, after.kvs) == (len(BOTS),) * 3
        for bot in BOTS:
            assert await mem.kvs.for_bot(bot).get("k") is None


@pytest.fixture
def own_cluster(tmp_path: Path) -> Cluster:
    cluster = Cluster(tmp_path / "cluster")
    try:
        cluster.start()
    except ClusterUnavailable as exc:
        service_unavailable(f"no Redis Cluster: {exc}")
    return cluster


async def test_a_killed_master_fails_over_without_a_restart(
    own_cluster: Cluster, clock: ManualClock
) -> None:
    url = f"{own_cluster.url}?prefix=bm-failover:&lock_wait=2s"
    try:
        async with await Memory.open(url, clock=clock) as mem:
            async with mem.turn("b", "u1") as state:
                state.bot["count"] = 1
            master = own_cluster.master_of(BotKeys.of("bm-failover:", "b").bot_vars)
            own_cluster.kill(master)
            failed: list[BotMemoryError] = []
            deadline = time.monotonic() + 60
            while True:
                try:
                    async with mem.turn("b", "u1") as state:
                        count = state.bot.get("count", 0)
                        assert isinstance(count, int)
                        state.bot["count"] = count + 1
                    break
                except BotMemoryError as exc:
                    failed.append(exc)
                assert time.monotonic() < deadline, f"no failover within 60s: {failed[-1]}"
                await asyncio.sleep(0.1)  # a real replica takes over: nothing to wait on
            assert failed, "a turn right after the master died should fail"
            assert all(isinstance(e, BackendUnavailableError) for e in failed), failed
            assert "redis" not in type(failed[0]).__module__
            async with mem.turn("b", "u2") as state:
                # replication is asynchronous: the write before the kill may be lost
                assert state.bot["count"] in (1, 2)
    finally:
        own_cluster.stop()
