"""What is specific to the PostgreSQL backend: URL, schema, indexes, locks and faults.

A second ``Memory`` on the same URL has its own pool, so to the server it is another
process. Faults are made for real: connections killed with ``pg_terminate_backend``,
and a server that goes down and comes back, played by a TCP proxy in front of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pytest

from botmemory import (
    BackendUnavailableError,
    ConfigError,
    InvalidDurationError,
    LockTimeoutError,
    ManualClock,
    Memory,
    SchemaVersionError,
    TurnState,
)
from botmemory.urls import mask_url
from tests.conftest import POSTGRES_URL

asyncpg = pytest.importorskip("asyncpg")

from botmemory.storage.postgres import sql  # noqa: E402 - needs asyncpg
from botmemory.storage.postgres.url import parse_postgres_url  # noqa: E402

pytestmark = pytest.mark.postgres

PASSWORD = "s3cret-pw"


def schema_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["schema"]


def with_netloc(url: str, *, password: str | None = None, port: int | None = None) -> str:
    """Return ``url`` with a password (the test server trusts, it ignores it) or a port."""
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = f"{parts.hostname}:{port or parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=f"{user}:{password or PASSWORD}@{host}"))


def named(url: str) -> tuple[str, str]:
    """Return ``url`` with an application name of its own, and that name."""
    name = f"bm-test-{uuid.uuid4().hex[:8]}"
    return f"{url}&application_name={name}", name


@pytest.fixture
async def admin(postgres_url: str) -> AsyncIterator[Any]:
    """A connection of the test itself, in the test's schema."""
    conn = await asyncpg.connect(
        POSTGRES_URL, server_settings={"search_path": schema_of(postgres_url)}
    )
    yield conn
    await conn.close()


async def terminate(admin: Any, application_name: str, *, wait: bool = True) -> int:
    """Kill the server sessions of ``application_name``; with ``wait``, until they are gone."""
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application_name
    )
    killed = [row[0] for row in rows]
    for pid in killed:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    for _ in range(200 if wait else 0):
        left = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY ($1::int[])", killed
        )
        if not left:
            break
        await asyncio.sleep(0.01)
    else:
        assert not wait, f"sessions of {application_name} survived pg_terminate_backend"
    return len(killed)


# -- URL -----------------------------------------------------------------------------------
def test_own_url_parameters_are_taken_out_of_the_dsn() -> None:
    options = parse_postgres_url(
        "postgresql://u:p@db:5433/app?schema=bm&pool_min=2&pool_max=4&lock_timeout=2s"
        "&connect_timeout=500ms&sslmode=disable"
    )
    assert (options.schema, options.pool_min, options.pool_max) == ("bm", 2, 4)
    assert (options.lock_timeout, options.connect_timeout) == (2.0, 0.5)
    assert parse_postgres_url("postgres://db/app?command_timeout=2m").command_timeout == 120
    assert options.dsn == (
        "postgresql://u:p@db:5433/app?sslmode=disable&application_name=botmemory"
    )
    defaults = parse_postgres_url("postgres://db/app")
    assert (defaults.schema, defaults.pool_min, defaults.pool_max) == ("public", 1, 10)
    assert (defaults.lock_timeout, defaults.connect_timeout) == (30.0, 10.0)
    assert defaults.command_timeout == 30.0
    assert parse_postgres_url("postgres://db/app?lock_timeout=never").lock_timeout is None


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("schema=my-schema", ConfigError),
        ("schema=", ConfigError),
        ("pool_max=0", ConfigError),
        ("pool_min=5&pool_max=2", ConfigError),
        ("pool_max=many", ConfigError),
        ("lock_timeout=soon", InvalidDurationError),
        ("lock_timeout=0", InvalidDurationError),
        ("command_timeout=0", InvalidDurationError),
    ],
)
async def test_bad_url_parameters_are_refused_before_connecting(
    query: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await Memory.open(f"postgresql://u:{PASSWORD}@127.0.0.1:1/x?{query}")


# -- schema and migrations -----------------------------------------------------------------
async def test_tables_live_in_their_schema_with_a_version(postgres_url: str, admin: Any) -> None:
    async with await Memory.open(postgres_url):
        pass
    tables = await admin.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
        schema_of(postgres_url),
    )
    assert {t[0] for t in tables} == {"variables", "sessions", "kvs", "meta", "schema_version"}
    versions = await admin.fetch("SELECT version FROM schema_version ORDER BY version")
    assert [v[0] for v in versions] == list(range(1, len(sql.MIGRATIONS) + 1))


async def test_processes_starting_together_migrate_once(postgres_url: str, admin: Any) -> None:
    memories = await asyncio.gather(*(Memory.open(postgres_url) for _ in range(4)))
    for mem in memories:
        await mem.close()
    count = await admin.fetchval("SELECT count(*) FROM schema_version")
    assert count == len(sql.MIGRATIONS)


async def test_a_newer_schema_is_refused(postgres_url: str, admin: Any) -> None:
    async with await Memory.open(postgres_url):
        pass
    await admin.execute("INSERT INTO schema_version (version) VALUES ($1)", len(sql.MIGRATIONS) + 1)
    with pytest.raises(SchemaVersionError, match="newer"):
        await Memory.open(postgres_url)


async def test_rows_of_the_first_schema_get_versions_on_upgrade(
    postgres_url: str, admin: Any, monkeypatch: pytest.MonkeyPatch, clock: ManualClock
) -> None:
    schema = schema_of(postgres_url)
    with monkeypatch.context() as patch:  # a database made by the first release
        patch.setattr(sql, "MIGRATIONS", sql.MIGRATIONS[:1])
        await sql.apply_migrations(admin, schema, 42)
    for statement in (
        "INSERT INTO variables VALUES ('b', 'user', 'u1', 'n', '1', 0, NULL, NULL)",
        "INSERT INTO variables VALUES ('b', 'user', 'u1', 'm', '2', 0, NULL, NULL)",
        "INSERT INTO sessions VALUES ('b', 's', 'u1', 0, 0, 1e12, NULL)",
        "INSERT INTO kvs VALUES ('b', 'k', '1', NULL)",
    ):
        await admin.execute(statement)
    async with await Memory.open(postgres_url, clock=clock) as mem:
        assert await mem.kvs.for_bot("b").get("k") == 1
    versions = [
        row[0]
        for table in ("variables", "sessions", "kvs")
        for row in await admin.fetch(f"SELECT version FROM {table}")
    ]
    assert len(versions) == len(set(versions)) == 4
    assert all(0 < v <= 2**62 for v in versions)


async def test_janitor_and_turn_queries_use_indexes(postgres_url: str, admin: Any) -> None:
    async with await Memory.open(postgres_url):
        pass
    fill = [  # 20,000 rows each, 1% expired
        "INSERT INTO variables SELECT 'b', 'user', 'u' || i, 'n', '1', 0, "
        "CASE WHEN i % 100 = 0 THEN 1 ELSE 1e12 END, NULL FROM generate_series(1, 20000) i",
        "INSERT INTO sessions SELECT 'b', 's' || i, 'u' || i, 0, 0, "
        "CASE WHEN i % 100 = 0 THEN 1 ELSE 1e12 END, CASE WHEN i % 100 = 1 THEN 1 END "
        "FROM generate_series(1, 20000) i",
        "INSERT INTO kvs SELECT 'b', 'k' || i, '1', CASE WHEN i % 100 = 0 THEN 1 END "
        "FROM generate_series(1, 20000) i",
        "ANALYZE",
    ]
    for statement in fill:
        await admin.execute(statement)
    queries = {
        "variables_expiry": (sql.EXPIRED_USER_VARS, 100.0, 1000),
        "sessions_expiry": (sql.EXPIRED_SESSIONS, 100.0, 1000),
        "sessions_temp_expiry": (sql.EXPIRED_TEMPS, 100.0, 1000),
        "kvs_expiry": (sql.DELETE_EXPIRED_KVS, 100.0, 1000, -1e300),
        "variables_pkey": (sql.LOAD_TURN, "b", "u5", "s5"),
        "kvs_pkey": (sql.KVS_KEYS, "b", "k1", "k2", 5.0),
    }
    for index, (query, *args) in queries.items():
        rows = await admin.fetch(f"EXPLAIN {query}", *args)
        plan = "\n".join(row[0] for row in rows)
        assert re.search(rf"(using|on) {index}\b", plan), plan
    # the turn's commit statements: tests/storage/test_postgres_plans.py


def test_lock_keys_are_the_same_in_every_version() -> None:
    """Processes of two versions sharing a database must lock the same keys."""
    from botmemory.storage.postgres.pool import lock_key

    assert lock_key("session", "public", "b", '["api", "u1", null]') == -1593042523968526806


async def test_the_locking_load_returns_the_load_and_holds_the_lock(
    postgres_url: str, admin: Any, clock: ManualClock
) -> None:
    """Migration 3 holds a copy of ``LOAD_TURN`` in ``botmemory_lock_load_turn``."""
    async with await Memory.open(postgres_url, clock=clock) as mem:
        for bot, user in (("b", "u1"), ("b", "u2"), ("c", "u1")):  # only the first is read
            async with mem.turn(bot, user) as state:
                state.user["name"] = f"{bot} {user}"
                state.session["topic"] = "x"
                state.temp["step"] = 1
                state.bot["greeting"] = bot
    session = await admin.fetchval(
        "SELECT key FROM sessions WHERE bot_id = 'b' AND user_key = $1", '["api", "u1"]'
    )
    args = ("b", '["api", "u1"]', session)
    expected = sorted(map(tuple, await admin.fetch(sql.LOAD_TURN, *args)))
    assert len(expected) == 4
    conn = await asyncpg.connect(
        POSTGRES_URL, server_settings={"search_path": schema_of(postgres_url)}
    )
    try:
        assert sorted(map(tuple, await conn.fetch(sql.LOCK_LOAD_TURN, *args, 42))) == expected
        assert not await admin.fetchval("SELECT pg_try_advisory_lock(42)")
        assert await conn.fetchval(sql.UNLOCK, 42)
    finally:
        await conn.close()


# -- locks across processes ----------------------------------------------------------------
async def waiting_for_advisory_lock(admin: Any, application_name: str) -> bool:
    return bool(
        await admin.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = $1",
            application_name,
        )
    )


async def test_a_turn_waits_for_the_same_session_in_another_process(
    postgres_url: str, admin: Any, clock: ManualClock
) -> None:
    """The waiting turn loads what the first committed: its load starts once the lock is
    granted (a load in the statement that waits for the lock would not see it)."""
    await turns_in_turn(postgres_url, postgres_url, admin, clock)


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
async def test_a_waiting_turn_sees_the_commit_whatever_the_default_isolation(
    postgres_url: str, admin: Any, clock: ManualClock, isolation: str
) -> None:
    """A database or role whose default isolation is stricter than READ COMMITTED would
    give the load a snapshot from before the wait."""
    stricter = f"{postgres_url}&default_transaction_isolation={isolation.replace(' ', '%20')}"
    await turns_in_turn(postgres_url, stricter, admin, clock)


async def turns_in_turn(first_url: str, second_url: str, admin: Any, clock: ManualClock) -> None:
    """A turn of ``second_url``'s process waits for one of ``first_url``'s, then sees it."""
    url, name = named(second_url)
    first = await Memory.open(first_url, clock=clock)
    second = await Memory.open(url, clock=clock)
    order: list[str] = []

    async def later_turn() -> None:
        async with second.turn("b", "u1") as state:
            order.append(f"second saw {state.session.get('n')}")
            state.session["n"] = 2

    try:
        async with first.turn("b", "u1") as state:
            state.session["n"] = 1
            task = asyncio.create_task(later_turn())
            for _ in range(500):  # the other process is waiting: poll the server
                if await waiting_for_advisory_lock(admin, name):
                    break
                await asyncio.sleep(0.01)
            order.append("first ends")
        await task
        assert order == ["first ends", "second saw 1"]
    finally:
        await first.close()
        await second.close()


async def test_a_load_that_times_out_leaves_no_session_lock(
    postgres_url: str, admin: Any, clock: ManualClock
) -> None:
    """The lock is taken before the load, which may then wait for a table's lock (a
    migration, ``VACUUM FULL``): the connection that holds the session goes."""
    url, name = named(f"{postgres_url}&lock_timeout=300ms")
    mem = await Memory.open(url, clock=clock)
    other = await Memory.open(f"{postgres_url}&lock_timeout=300ms", clock=clock)
    try:
        async with mem.turn("b", "u1") as state:
            state.session["n"] = 1
        async with admin.transaction():
            await admin.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(LockTimeoutError):
                async with mem.turn("b", "u1"):
                    pass  # pragma: no cover - never runs
        held = await admin.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1",
            name,
        )
        assert held == 0
        async with other.turn("b", "u1") as state:
            assert state.session["n"] == 1
    finally:
        await mem.close()
        await other.close()


async def test_a_turn_gives_up_after_lock_timeout(postgres_url: str, clock: ManualClock) -> None:
    first = await Memory.open(postgres_url, clock=clock)
    impatient = await Memory.open(f"{postgres_url}&lock_timeout=300ms", clock=clock)
    try:
        async with first.turn("b", "u1") as state:
            state.session["n"] = 1
            started = time.monotonic()
            with pytest.raises(LockTimeoutError, match="lock_timeout=300ms"):
                async with impatient.turn("b", "u1"):
                    pass
            assert time.monotonic() - started >= 0.25
            async with impatient.turn("b", "u2") as other:  # another session: no wait
                other.session["n"] = 1
        async with impatient.turn("b", "u1") as state:
            assert state.session["n"] == 1
    finally:
        await first.close()
        await impatient.close()


@pytest.mark.parametrize("lock_timeout", ["5s", "never"])
async def test_a_turn_waits_for_its_session_longer_than_command_timeout(
    postgres_url: str, clock: ManualClock, lock_timeout: str
) -> None:
    """A lock wait is bounded by ``lock_timeout`` (or not at all: ``never``), not by
    ``command_timeout``."""
    first = await Memory.open(postgres_url, clock=clock)
    patient_url = f"{postgres_url}&lock_timeout={lock_timeout}&command_timeout=200ms"
    patient = await Memory.open(patient_url, clock=clock)

    async def read(state: TurnState) -> object:
        return state.session.get("n")

    try:
        async with first.turn("b", "u1") as state:
            state.session["n"] = 1
            later = asyncio.create_task(patient.run_turn(read, "b", "u1"))
            await asyncio.sleep(0.5)  # the other process waits on the real lock meanwhile
            assert not later.done()
        assert await later == 1
    finally:
        await first.close()
        await patient.close()


async def test_one_janitor_at_a_time(postgres_url: str, clock: ManualClock) -> None:
    first = await Memory.open(postgres_url, clock=clock)
    second = await Memory.open(postgres_url, clock=clock)
    try:
        await second.kvs.for_bot("b").set("k", 1, expiry="1s")
        clock.advance(timedelta(seconds=2))
        async with first.storage.janitor_lock() as acquired:
            assert acquired
            skipped = await second.janitor.run_once()
            assert skipped.total == 0
        report = await second.janitor.run_once()
        assert report.kvs == 1
    finally:
        await first.close()
        await second.close()


async def test_an_erasure_that_waited_for_a_commit_deletes_the_rows_it_inserted(
    postgres_url: str, admin: Any, clock: ManualClock
) -> None:
    """A transaction holding a user's row locks (a committing turn) inserts a variable;
    the erasure's DELETE waits for it, then finds the new row too: its snapshot predates
    the row, so a second pass looks again."""
    url, name = named(postgres_url)
    async with await Memory.open(url, clock=clock) as mem:
        async with mem.edit("b", "u1") as state:
            state.user["email"] = "a@example.com"
        committing = admin.transaction()
        await committing.start()
        await admin.execute("SELECT 1 FROM variables WHERE name = 'email' FOR UPDATE")
        await admin.execute(
            "CREATE TEMP TABLE nick ON COMMIT DROP AS SELECT * FROM variables WHERE name = 'email';"
            "UPDATE nick SET name = 'nick'; INSERT INTO variables SELECT * FROM nick"
        )
        erasure = asyncio.create_task(mem.forget_user("b", "u1"))
        while not await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
            "AND wait_event_type = 'Lock'",
            name,
        ):
            assert not erasure.done()
            await asyncio.sleep(0.01)
        await committing.commit()
        counts = await erasure
        assert counts.user_variables == 2
        assert (await mem.export_user("b", "u1")).user == {}
        assert await admin.fetchval("SELECT count(*) FROM variables") == 0


async def test_a_turn_needs_one_connection_and_a_full_pool_times_out(
    postgres_url: str, clock: ManualClock
) -> None:
    url = f"{postgres_url}&pool_min=1&pool_max=1&lock_timeout=300ms"
    async with await Memory.open(url, clock=clock) as mem:
        kvs = mem.kvs.for_bot("b")
        async with mem.turn("b", "u1") as state:
            state.user["n"] = await kvs.incr("count")  # on the turn's own connection
            assert await asyncio.gather(kvs.incr("count"), kvs.get("count")) == [2, 2]
            with pytest.raises(LockTimeoutError, match="no free connection"):
                await asyncio.create_task(kvs.get("count"), context=contextvars.Context())
        assert await kvs.get("count") == 2


# -- faults ------------------------------------------------------------------------------
async def test_a_dropped_connection_fails_the_turn_and_writes_nothing(
    postgres_url: str, admin: Any, clock: ManualClock
) -> None:
    url, name = named(with_netloc(postgres_url))
    async with await Memory.open(url, clock=clock) as mem:
        async with mem.turn("b", "u1") as state:
            state.user["kept"] = 1
            state.session["n"] = 1
        with pytest.raises(BackendUnavailableError) as failure:
            async with mem.turn("b", "u1") as state:
                state.user["lost"] = 2
                state.session["n"] = 2
                del state.user["kept"]
                assert await terminate(admin, name) >= 1
        assert mask_url(url) in str(failure.value)
        assert PASSWORD not in str(failure.value)
        async with mem.turn("b", "u1") as state:
            assert dict(state.user) == {"kept": 1}
            assert state.session["n"] == 1


@pytest.mark.parametrize("noticed", [True, False], ids=["noticed", "unnoticed"])
async def test_connections_killed_between_turns_are_replaced(
    postgres_url: str, admin: Any, clock: ManualClock, noticed: bool
) -> None:
    """The next turn succeeds, whether or not the client saw its connections go."""
    url, name = named(f"{postgres_url}&pool_min=3")
    async with await Memory.open(url, clock=clock) as mem:
        for n in range(5):
            async with mem.turn("b", "u1") as state:
                assert state.user.get("n", 0) == n
                state.user["n"] = n + 1
            assert await terminate(admin, name, wait=noticed) >= 1
        async with mem.turn("b", "u1") as state:
            assert await mem.kvs.for_bot("b").incr("count") == 1


class Proxy:
    """A TCP proxy in front of the server: stopping it is the server going down."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()  # cleared: a frozen server, connections open
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


async def test_server_down_and_back(postgres_url: str, clock: ManualClock) -> None:
    target = urlsplit(postgres_url)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    url = with_netloc(postgres_url, port=proxy.port)
    mem = await Memory.open(url, clock=clock)
    try:
        async with mem.turn("b", "u1") as state:
            state.user["kept"] = 1
        with pytest.raises(BackendUnavailableError) as failure:
            async with mem.turn("b", "u1") as state:
                state.user["lost"] = 1
                await proxy.stop()  # the server goes down in the middle of the turn
        assert mask_url(url) in str(failure.value)
        assert PASSWORD not in str(failure.value)
        with pytest.raises(BackendUnavailableError):
            async with mem.turn("b", "u1"):
                pass
        with pytest.raises(BackendUnavailableError):
            await mem.kvs.for_bot("b").get("k")
        await proxy.start()  # back, on the same port
        async with mem.turn("b", "u1") as state:
            assert dict(state.user) == {"kept": 1}
    finally:
        await mem.close()
        with contextlib.suppress(Exception):
            await proxy.stop()


async def test_a_frozen_server_fails_calls_within_command_timeout(
    postgres_url: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    target = urlsplit(postgres_url)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    url = (
        with_netloc(postgres_url, port=proxy.port)
        + "&command_timeout=500ms&connect_timeout=1s&pool_min=2"
    )
    mem = await Memory.open(url, clock=clock)
    try:
        await mem.kvs.for_bot("b").set("k", 1)
        proxy.flowing.clear()
        for call in (mem.kvs.for_bot("b").get("k"), mem.turn("b", "u1").__aenter__()):
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError, match="command_timeout=500ms"):
                await call
            assert time.monotonic() - started < 2.5
        proxy.flowing.set()
        assert await mem.kvs.for_bot("b").get("k") == 1
    finally:
        proxy.flowing.set()
        await mem.close()
        await proxy.stop()
    tracebacks = [r for r in caplog.records if r.exc_info or r.exc_text]
    assert not tracebacks, [r.getMessage() for r in tracebacks]


async def test_an_unreachable_server_is_unavailable_with_the_password_masked() -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test?connect_timeout=2s"
    with pytest.raises(BackendUnavailableError) as failure:
        await Memory.open(url)
    assert "postgres:***@127.0.0.1:1" in str(failure.value)
    assert PASSWORD not in str(failure.value)


async def test_prefixes_around_the_surrogate_gap(postgres_url: str, clock: ManualClock) -> None:
    async with await Memory.open(postgres_url, clock=clock) as mem:
        kvs = mem.kvs.for_bot("b")
        for key in ("x\ud7ff", "x\ud7ffa", "x\ue000", "x\U0010ffff", "x\U0010ffffz", "y"):
            await kvs.set(key, 1)
        assert await kvs.keys("x\ud7ff") == ["x\ud7ff", "x\ud7ffa"]
        assert await kvs.keys("x\U0010ffff") == ["x\U0010ffff", "x\U0010ffffz"]
        assert await kvs.delete_prefix("x") == 5
        assert await kvs.keys() == ["y"]
