"""PostgreSQL behind a real PgBouncer in transaction mode (``pgbouncer=true``).

Its server connections are shared by every client: a session-level advisory lock
outlives the client that took it, and a prepared statement may be looked for on
another server connection. The contract suite and the exactness tests also run
through it (backend ``postgres_pgbouncer``); this file shows the problem and the fix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

pytest.importorskip("asyncpg")

import asyncpg

from botmemory import ConfigError, Identity, LockTimeoutError, Memory
from botmemory.errors import BackendError
from botmemory.storage import create_storage
from botmemory.storage.postgres.pool import lock_key
from botmemory.storage.postgres.url import parse_postgres_url
from botmemory.turns import TurnState
from tests.conftest import POSTGRES_URL
from tests.pgbouncer import POOL_SIZE

pytestmark = pytest.mark.postgres


def _schema(url: str) -> str:
    return url.split("schema=")[1].split("&")[0]


def _without_pgbouncer(url: str) -> str:
    return url.replace("&pgbouncer=true", "")


async def _advisory_locks_held(keys: Iterable[int]) -> set[int]:
    """The advisory locks among ``keys`` that a server connection holds, read directly."""
    wanted = {(k & 0xFFFFFFFFFFFFFFFF) >> 32 << 32 | (k & 0xFFFFFFFF): k for k in keys}
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        rows = await conn.fetch(
            "SELECT classid::bigint, objid::bigint FROM pg_locks "
            "WHERE locktype = 'advisory' AND objsubid = 1"
        )
    finally:
        await conn.close()
    return {wanted[r[0] << 32 | r[1]] for r in rows if r[0] << 32 | r[1] in wanted}


async def _value(mem: Memory, user: str, scope: str) -> Any:
    scopes = (await mem.peek("b", user)).scopes
    return scopes[scope]["n"].value  # type: ignore[index]


async def test_a_session_lock_outlives_its_client_behind_pgbouncer(
    postgres_pgbouncer_url: str,
) -> None:
    """The problem: why botmemory takes no session-level lock through PgBouncer."""
    key = lock_key("demonstration", _schema(postgres_pgbouncer_url))
    client = await asyncpg.connect(postgres_pgbouncer_url.split("?")[0], statement_cache_size=0)
    await client.execute(f"SELECT pg_advisory_lock({key})")
    await client.close()
    try:
        assert await _advisory_locks_held([key]) == {key}  # directly, it would be gone
    finally:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND objsubid = 1 AND objid::bigint = $1",
                key & 0xFFFFFFFF,
            )
        finally:
            await conn.close()


def test_the_pgbouncer_parameter_is_true_or_false() -> None:
    assert parse_postgres_url("postgresql://db/app?pgbouncer=true").pgbouncer
    assert not parse_postgres_url("postgresql://db/app").pgbouncer
    assert "pgbouncer" not in parse_postgres_url("postgresql://db/app?pgbouncer=false").dsn
    with pytest.raises(ConfigError, match="pgbouncer='yes' must be true or false"):
        parse_postgres_url("postgresql://db/app?pgbouncer=yes")


async def test_a_pgbouncer_url_without_the_parameter_is_refused_clearly(
    postgres_pgbouncer_url: str,
) -> None:
    with pytest.raises(BackendError, match="search_path"):
        await Memory.open(_without_pgbouncer(postgres_pgbouncer_url))


async def test_a_pgbouncer_whose_search_path_is_not_the_schema_is_refused(
    postgres_pgbouncer_url: str,
) -> None:
    other = postgres_pgbouncer_url.replace("schema=", "schema=other_")
    with pytest.raises(ConfigError, match="ALTER ROLE"):
        await Memory.open(other)


async def test_many_turns_through_a_tiny_pgbouncer_pool_leave_no_lock_behind(
    postgres_pgbouncer_url: str,
) -> None:
    url = f"{postgres_pgbouncer_url}&pool_max={4 * POOL_SIZE}"
    first, second = await Memory.open(url), await Memory.open(url)
    users = [f"u{i}" for i in range(10)]

    async def count(state: TurnState) -> None:
        state.session["n"] = int(state.session.get("n", 0)) + 1  # type: ignore[arg-type]
        state.user["n"] = int(state.user.get("n", 0)) + 1  # type: ignore[arg-type]

    try:
        turns = [
            mem.run_turn(count, "b", user)
            for mem in (first, second)
            for user in ["hot"] * 10 + users
        ]
        await asyncio.gather(*turns)
        assert await _value(first, "hot", "session") == 20
        assert [await _value(second, f"u{i}", "user") for i in range(10)] == [2] * 10
        assert await first.janitor.run_once() is not None
    finally:
        await first.close()
        await second.close()
    schema = _schema(postgres_pgbouncer_url)
    sessions = [Identity.of("b", user).session_key for user in ["hot", *users]]
    keys = [lock_key("session", schema, "b", key) for key in sessions]
    keys += [lock_key(name, schema) for name in ("janitor", "migrate")]
    assert await _advisory_locks_held([*keys, lock_key("retry", schema, "b")]) == set()


async def test_one_janitor_at_a_time_through_pgbouncer(postgres_pgbouncer_url: str) -> None:
    first, second = create_storage(postgres_pgbouncer_url), create_storage(postgres_pgbouncer_url)
    await first.open()
    await second.open()
    try:
        async with first.janitor_lock() as running:
            assert running
            async with second.janitor_lock() as also_running:
                assert not also_running
        async with second.janitor_lock() as running:
            assert running
    finally:
        await first.close()
        await second.close()


async def test_a_retry_lock_through_pgbouncer_waits_then_times_out(
    postgres_pgbouncer_url: str,
) -> None:
    url = f"{postgres_pgbouncer_url}&lock_timeout=200ms"
    first, second = create_storage(url), create_storage(url)
    await first.open()
    await second.open()
    try:
        async with first.retry_lock("b"):
            with pytest.raises(LockTimeoutError, match="lock_timeout=200ms"):
                async with second.retry_lock("b"):
                    pass
            async with second.retry_lock("other bot"):
                pass
        async with second.retry_lock("b"):
            pass
    finally:
        await first.close()
        await second.close()


async def test_concurrent_opens_through_pgbouncer_migrate_once(
    postgres_pgbouncer_url: str,
) -> None:
    storages = [create_storage(postgres_pgbouncer_url) for _ in range(2 * POOL_SIZE)]
    await asyncio.gather(*(s.open() for s in storages))
    try:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            versions = await conn.fetch(
                f'SELECT version FROM "{_schema(postgres_pgbouncer_url)}".schema_version'
            )
        finally:
            await conn.close()
        assert len(versions) == len({v[0] for v in versions}) > 0
    finally:
        await asyncio.gather(*(s.close() for s in storages))
