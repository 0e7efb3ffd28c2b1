"""PostgreSQL turn commits: version checks, write skew, deltas, versions of every write.

Two ``PostgresStorage`` objects on one URL have their own pools: to the server they
are two processes. Each test's storages live in the test's own schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest

from botmemory.errors import ConflictError
from botmemory.storage.base import (
    KvsCheck,
    KvsPrefixCheck,
    KvsRecord,
    KvsWrite,
    ScopeCheck,
    SessionRecord,
    SessionUpdate,
    StoredVar,
    TurnKeys,
    TurnWrite,
    VarCheck,
    VarDelta,
    VarKey,
    VarUpdate,
)
from tests.conftest import START, storages_on

pytest.importorskip("asyncpg")

from botmemory.storage.postgres import PostgresStorage

pytestmark = pytest.mark.postgres

OpenStorage = Callable[[], Awaitable[PostgresStorage]]
KEYS = TurnKeys("b", "u1", "s1")
SESSION = SessionRecord("b", "s1", "u1", START, START, START + 600, START + 60)
VISITS = VarKey("bot", "b", "", "visits")


def var(scope: str, name: str, value: str = "1", owner: str | None = None) -> StoredVar:
    default = {"user": "u1", "bot": "", "session": "s1", "temp": "s1"}[scope]
    key = VarKey(scope, "b", default if owner is None else owner, name)  # type: ignore[arg-type]
    return StoredVar(key, value, START)


@pytest.fixture
async def open_storage(postgres_url: str) -> AsyncIterator[OpenStorage]:
    """Open storages on the test's schema (each one a process to the server)."""
    async with storages_on(postgres_url) as open_:
        yield open_  # type: ignore[misc]  # it opens PostgresStorage on this URL


@pytest.fixture
async def db(open_storage: OpenStorage) -> PostgresStorage:
    return await open_storage()


async def stored(db: PostgresStorage) -> dict[str, tuple[str, int]]:
    snap = await db.load_turn(KEYS)
    every = snap.user + snap.bot + snap.session_vars + snap.temp_vars
    return {f"{v.key.scope}.{v.key.name}": (v.value, v.version) for v in every}


# -- each check: a conflict writes nothing; a check that holds commits --------------------
async def test_session_version_check(db: PostgresStorage) -> None:
    await db.commit_turn(TurnWrite(SESSION, session_version=0, now=START))
    first = await db.load_turn(KEYS)
    assert first.session is not None
    assert first.session.version > 0
    with pytest.raises(ConflictError):  # a second "new" session
        await db.commit_turn(TurnWrite(SESSION, session_version=0, upserts=[var("user", "x")]))
    assert await stored(db) == {}
    write = TurnWrite(SESSION, session_version=first.session.version, upserts=[var("user", "x")])
    await db.commit_turn(write)
    after = await db.load_turn(KEYS)
    assert after.session is not None
    assert after.session.version == write.version
    assert await stored(db) == {"user.x": ("1", write.version)}


async def test_variable_checks(db: PostgresStorage) -> None:
    x = var("user", "x").key
    first = TurnWrite(None, checks=[VarCheck(x, 0)], upserts=[var("user", "x", "1")])
    await db.commit_turn(first)
    with pytest.raises(ConflictError):  # still absent: no longer
        await db.commit_turn(TurnWrite(None, checks=[VarCheck(x, 0)], upserts=[var("bot", "y")]))
    with pytest.raises(ConflictError):  # an old version
        await db.commit_turn(TurnWrite(None, checks=[VarCheck(x, 12345)], deletes=[x]))
    assert await stored(db) == {"user.x": ("1", first.version)}
    await db.commit_turn(TurnWrite(None, checks=[VarCheck(x, first.version)], deletes=[x]))
    assert await stored(db) == {}


async def test_scope_checks_see_added_and_removed_variables(db: PostgresStorage) -> None:
    await db.commit_turn(TurnWrite(None, upserts=[var("session", "a"), var("session", "b")]))

    def check(names: set[str]) -> TurnWrite:
        scope = ScopeCheck("session", "b", "s1", names)
        return TurnWrite(None, scope_checks=[scope], upserts=[var("user", "total", "2")])

    with pytest.raises(ConflictError):
        await db.commit_turn(check({"a"}))  # a phantom b
    with pytest.raises(ConflictError):
        await db.commit_turn(check({"a", "b", "c"}))  # c was removed
    assert "user.total" not in await stored(db)
    await db.commit_turn(TurnWrite(None, upserts=[var("session", "b", "changed")]))
    await db.commit_turn(check({"a", "b"}))  # a changed value is for its own check
    assert (await stored(db))["user.total"][0] == "2"


async def test_kvs_checks_judge_liveness_at_the_commit_time(db: PostgresStorage) -> None:
    await db.kvs_put("b", "k", START, KvsRecord("1", START + 10))
    live = await db.kvs_get("b", "k", START)
    assert live is not None
    assert live.version > 0
    at_expiry = TurnWrite(None, kvs_checks=[KvsCheck("b", "k", live.version)], now=START + 10)
    with pytest.raises(ConflictError):  # expired at the commit's time: absent
        await db.commit_turn(replace(at_expiry, upserts=[var("user", "x")]))
    absent = TurnWrite(None, kvs_checks=[KvsCheck("b", "k", 0)], now=START + 10)
    write = replace(absent, kvs_writes=[KvsWrite("b", "k", KvsRecord("2", None))])
    await db.commit_turn(write)
    assert await db.kvs_get("b", "k", START + 20) == KvsRecord("2", None, write.version)
    with pytest.raises(ConflictError):
        await db.commit_turn(replace(absent, kvs_writes=[KvsWrite("b", "k", None)]))
    assert await db.kvs_get("b", "k", START + 20) is not None
    gone = TurnWrite(None, kvs_checks=[KvsCheck("b", "k", write.version)], now=START + 20)
    await db.commit_turn(replace(gone, kvs_writes=[KvsWrite("b", "k", None)]))
    assert await db.kvs_get("b", "k", START + 20) is None


async def test_kvs_prefix_checks(db: PostgresStorage) -> None:
    await db.kvs_put("b", "p/a", START, KvsRecord("1", None))
    await db.kvs_put("b", "p/old", START, KvsRecord("1", START))  # expired: not listed
    await db.kvs_put("b", "q", START, KvsRecord("1", None))
    a = await db.kvs_get("b", "p/a", START)
    assert a is not None
    listed = KvsPrefixCheck("b", "p/", (("p/a", a.version),))
    add = KvsWrite("b", "p/b", KvsRecord("2", None))
    await db.kvs_put("b", "p/c", START, KvsRecord("3", None))  # a phantom since the listing
    with pytest.raises(ConflictError):
        await db.commit_turn(TurnWrite(None, kvs_prefix_checks=[listed], kvs_writes=[add]))
    assert await db.kvs_keys("b", "p/", START) == ["p/a", "p/c"]
    await db.kvs_delete("b", "p/c", START)
    write = TurnWrite(None, kvs_prefix_checks=[listed], kvs_writes=[add], now=START)
    await db.commit_turn(write)
    assert await db.kvs_keys("b", "p/", START) == ["p/a", "p/b"]


# -- concurrency across processes ------------------------------------------------------------
async def test_write_skew_on_absent_variables_lets_one_commit_win(
    open_storage: OpenStorage,
) -> None:
    """Each commit writes its variable if the other's is absent: never both."""
    first, second = await open_storage(), await open_storage()
    for n in range(40):
        x, y = var("bot", f"x{n}"), var("bot", f"y{n}")
        a = TurnWrite(None, checks=[VarCheck(y.key, 0)], upserts=[x])
        b = TurnWrite(None, checks=[VarCheck(x.key, 0)], upserts=[y])
        results = await asyncio.gather(
            first.commit_turn(a), second.commit_turn(b), return_exceptions=True
        )
        assert sorted(type(r).__name__ for r in results) == ["ConflictError", "NoneType"]
    assert len((await first.load_turn(KEYS)).bot) == 40


async def test_concurrent_deltas_add_up_exactly(open_storage: OpenStorage) -> None:
    storages = [await open_storage() for _ in range(4)]

    async def visit(n: int) -> None:
        await storages[n % 4].commit_turn(TurnWrite(None, deltas=[VarDelta(VISITS, 1)], now=START))

    await asyncio.gather(*(visit(n) for n in range(200)))  # not one ConflictError
    assert (await stored(storages[0]))["bot.visits"][0] == "200"


async def test_deltas_follow_the_commits_earlier_writes(db: PostgresStorage) -> None:
    await db.commit_turn(TurnWrite(None, upserts=[var("bot", "visits", "1.5")]))
    await db.commit_turn(TurnWrite(None, deltas=[VarDelta(VISITS, 1)], now=START))
    assert (await stored(db))["bot.visits"][0] == "2.5"
    temp = var("temp", "n", "7").key
    await db.commit_turn(TurnWrite(SESSION, upserts=[var("temp", "n", "7")]))
    reset = TurnWrite(SESSION, reset_temp=True, deltas=[VarDelta(temp, 2), VarDelta(temp, 3)])
    await db.commit_turn(reset)
    assert (await stored(db))["temp.n"] == ("5", reset.version)
    upsert_then_add = TurnWrite(
        None,
        upserts=[var("bot", "visits", "10")],
        deltas=[VarDelta(VISITS, 1, expires_at=START + 5)],
        now=START,
    )
    await db.commit_turn(upsert_then_add)
    user = (await db.load_turn(KEYS)).bot[0]
    assert (user.value, user.expires_at, user.changed_at) == ("11", START + 5, START)
    expired = TurnWrite(None, deltas=[VarDelta(VISITS, 1)], now=START + 5)
    await db.commit_turn(expired)  # expired at the commit's time: counts as 0
    assert (await stored(db))["bot.visits"][0] == "1"


async def test_a_delta_on_a_non_number_conflicts_and_writes_nothing(db: PostgresStorage) -> None:
    await db.commit_turn(TurnWrite(None, upserts=[var("bot", "visits", '"many"')]))
    with pytest.raises(ConflictError, match="no longer a number"):
        await db.commit_turn(
            TurnWrite(None, upserts=[var("bot", "other")], deltas=[VarDelta(VISITS, 1)])
        )
    assert set(await stored(db)) == {"bot.visits"}


# -- every write outside a turn gives a new version ----------------------------------------
async def test_kvs_writes_give_new_versions(db: PostgresStorage) -> None:
    versions = set()
    for n in range(3):
        await db.kvs_put("b", "k", START, KvsRecord(str(n), None))
        record = await db.kvs_get("b", "k", START)
        assert record is not None
        versions.add(record.version)
    await db.kvs_modify("b", "k", START, lambda r: (KvsRecord("9", None), None))
    record = await db.kvs_get("b", "k", START)
    assert record is not None
    assert record.value == "9"
    versions.add(record.version)
    assert len(versions) == 4
    assert 0 not in versions


async def test_janitor_updates_give_new_versions(db: PostgresStorage) -> None:
    user = var("user", "x")._replace(expires_at=START + 1)
    await db.commit_turn(TurnWrite(SESSION, upserts=[user, var("temp", "t")]))
    before = (await db.load_turn(KEYS)).user[0]
    update = VarUpdate(user.key, START, '"kept"', START + 100)
    assert await db.update_user_vars([update]) == [update]
    after = (await db.scan_user_vars("b", None, 10))[0]
    assert after.value == '"kept"'
    assert after.version not in (0, before.version)

    (expired,) = await db.expired_temps(START + 60, 10)
    assert await db.clear_temps([expired]) == 1
    cleared = await db.load_turn(KEYS)
    assert cleared.temp_vars == []
    assert cleared.session is not None
    assert cleared.session.version != expired.version
    assert await db.clear_temps([expired]) == 0  # another run, same batch: counted once

    (read,), _ = await db.scan_sessions(None, 10)
    short = SessionUpdate(read, read.last_seen + 60, None)
    assert await db.update_sessions([short]) == [short]
    shortened = (await db.load_turn(KEYS)).session
    assert shortened is not None
    assert shortened.version != cleared.session.version


def test_a_commit_locks_a_scope_exclusively_only_when_it_may_change_its_names() -> None:
    from botmemory.storage.postgres.pool import lock_key
    from botmemory.storage.postgres.turn import commit_locks

    bot_scope = lock_key("scope", "s", "b", "bot", "")
    stored, new = VarKey("bot", "b", "", "stored"), VarKey("bot", "b", "", "new")

    def exclusive(write: TurnWrite) -> bool:
        keys, flags = commit_locks("s", write)
        return dict(zip(keys, flags, strict=True))[bot_scope]

    lists = ScopeCheck("bot", "b", "", frozenset({"stored"}))
    assert not exclusive(TurnWrite(None, scope_checks=[lists]))
    updated = StoredVar(stored, "2", START)
    assert not exclusive(TurnWrite(None, upserts=[updated], checks=[VarCheck(stored, 5)]))
    assert exclusive(TurnWrite(None, upserts=[StoredVar(new, "1", START)]))
    assert exclusive(TurnWrite(None, upserts=[updated], checks=[VarCheck(stored, 0)]))
    assert exclusive(TurnWrite(None, deletes=[stored]))
    assert exclusive(TurnWrite(None, deltas=[VarDelta(stored, 1)]))
    assert exclusive(TurnWrite(None, scope_checks=[lists], upserts=[StoredVar(new, "1", START)]))
