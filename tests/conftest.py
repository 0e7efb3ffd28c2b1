"""Shared fixtures: a movable clock, and a memory opened on every backend in turn.

Backends come from ``BOTMEMORY_TEST_BACKENDS`` (comma-separated; default: all of
them). PostgreSQL and Redis are read from ``BOTMEMORY_TEST_POSTGRES_URL`` and
``BOTMEMORY_TEST_REDIS_URL`` (default: this machine's servers); each test gets its own
schema or key prefix, removed afterwards. A server that cannot be reached skips its
tests with the reason, or fails them when ``BOTMEMORY_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from botmemory import ManualClock, Memory
from botmemory.storage import Storage, create_storage
from tests.pgbouncer import PgBouncer, PgBouncerUnavailable
from tests.redis_cluster import Cluster, ClusterUnavailable

ALL_BACKENDS = ("memory", "sqlite", "postgres", "postgres_pgbouncer", "redis", "redis_cluster")
BACKENDS = [
    b.strip()
    for b in os.environ.get("BOTMEMORY_TEST_BACKENDS", ",".join(ALL_BACKENDS)).split(",")
    if b.strip()
]
POSTGRES_URL = os.environ.get(
    "BOTMEMORY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("BOTMEMORY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_CLUSTER_URL = os.environ.get("BOTMEMORY_TEST_REDIS_CLUSTER_URL")
"""A running Redis Cluster to test on; without it the tests start one (tests/redis_cluster.py)."""
REQUIRE_SERVICES = os.environ.get("BOTMEMORY_REQUIRE_SERVICES") == "1"

START = 1_700_000_000.0
DAY = 86400.0

OpenMemory = Callable[..., Awaitable[Memory]]
OpenStorage = Callable[..., Awaitable[Storage]]


def service_unavailable(reason: str) -> None:
    """Skip the test, or fail it when the services are required."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (BOTMEMORY_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


async def _postgres_reachable() -> str | None:
    try:
        import asyncpg
    except ImportError:
        return "asyncpg is not installed: pip install 'botmemory[postgres]'"
    try:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}"
    await conn.close()
    return None


async def _redis_reachable() -> str | None:
    try:
        import redis.asyncio as aioredis
    except ImportError:
        return "redis is not installed: pip install 'botmemory[redis]'"
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except Exception as exc:
        return f"Redis at {REDIS_URL} is not reachable: {exc}"
    finally:
        await client.aclose()
    return None


def _with_query(url: str, name: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{name}={value}"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A PostgreSQL URL with a schema of its own, dropped after the test."""
    reason = await _postgres_reachable()
    if reason:
        service_unavailable(reason)
    import asyncpg

    schema = f"bm_test_{uuid.uuid4().hex[:12]}"
    yield _with_query(POSTGRES_URL, "schema", schema)
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[PgBouncer]:
    """A PgBouncer in transaction mode in front of the test PostgreSQL (tests/pgbouncer.py)."""
    bouncer = PgBouncer(POSTGRES_URL)
    try:
        bouncer.start()
    except PgBouncerUnavailable as exc:
        service_unavailable(f"no PgBouncer: {exc}")
    yield bouncer
    bouncer.stop()


@pytest.fixture
async def postgres_pgbouncer_url(pgbouncer: PgBouncer) -> AsyncIterator[str]:
    """A URL through PgBouncer to a schema of its own, dropped after the test."""
    reason = await _postgres_reachable()
    if reason:
        service_unavailable(reason)
    import asyncpg

    schema = f"bm_test_{uuid.uuid4().hex[:12]}"
    pgbouncer.add_schema(schema)
    await _until_served(pgbouncer, schema)
    yield pgbouncer.url(schema)
    pgbouncer.remove_schema(schema)
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _until_served(pgbouncer: PgBouncer, schema: str) -> None:
    """Wait until PgBouncer, reloading its configuration, knows database ``schema``."""
    import asyncpg

    for _ in range(200):
        try:
            conn = await asyncpg.connect(pgbouncer.url(schema).split("?")[0], timeout=3)
        except asyncpg.PostgresError:
            await asyncio.sleep(0.05)  # the reload is under way: not an expiry
            continue
        await conn.close()
        return
    service_unavailable(f"PgBouncer did not serve database {schema} after its reload")


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """A Redis URL with a key prefix of its own, whose keys are deleted after the test."""
    reason = await _redis_reachable()
    if reason:
        service_unavailable(reason)
    import redis.asyncio as aioredis

    prefix = f"bm-test-{uuid.uuid4().hex[:12]}:"
    yield _with_query(REDIS_URL, "prefix", prefix)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster | None]:
    """The cluster the tests started, or None when BOTMEMORY_TEST_REDIS_CLUSTER_URL names one."""
    if REDIS_CLUSTER_URL:
        yield None
        return
    cluster = Cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
    except ClusterUnavailable as exc:
        service_unavailable(f"no Redis Cluster: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture
async def redis_cluster_url(redis_cluster: Cluster | None) -> AsyncIterator[str]:
    """A Redis Cluster URL with a key prefix of its own, deleted after the test."""
    from redis.asyncio.cluster import RedisCluster

    base = REDIS_CLUSTER_URL or (redis_cluster.url if redis_cluster else "")
    prefix = f"bm-test-{uuid.uuid4().hex[:12]}:"
    yield _with_query(base, "prefix", prefix)
    first = base.partition("://")[2].split(",")[0].split("/")[0]
    client = RedisCluster.from_url(f"redis://{first}")
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test."""
    return str(request.param)


@pytest.fixture
def backend_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL for the backend under test."""
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/memory.db"
    return str(request.getfixturevalue(f"{backend}_url"))


@pytest.fixture
def clock() -> ManualClock:
    """A clock that only moves when the test moves it."""
    return ManualClock(START)


@pytest.fixture
async def open_memory(backend_url: str, clock: ManualClock) -> AsyncIterator[OpenMemory]:
    """Open memories on the backend under test; every one is closed after the test."""
    opened: list[Memory] = []

    async def open_(
        config: Mapping[str, Any] | None = None,
        bot_configs: Mapping[str, Mapping[str, Any]] | None = None,
        url: str | None = None,
    ) -> Memory:
        mem = await Memory.open(url or backend_url, config, bot_configs, clock=clock)
        opened.append(mem)
        return mem

    yield open_
    for mem in opened:
        await mem.close()


@pytest.fixture
async def mem(open_memory: OpenMemory) -> Memory:
    """A memory with the default configuration on the backend under test."""
    return await open_memory()


@contextlib.asynccontextmanager
async def storages_on(url: str) -> AsyncIterator[OpenStorage]:
    """Open storages on ``url`` (each one like a process of its own); close them all after."""
    opened: list[Storage] = []

    async def open_(other_url: str = url) -> Storage:
        storage = create_storage(other_url)
        await storage.open()
        opened.append(storage)
        return storage

    yield open_
    for storage in opened:
        await storage.close()
