"""The cached plans of a PostgreSQL turn read only the turn's own rows.

A connection caches a generic plan of each statement, made once, maybe while the tables
were small. Every turn statement's generic plan (``plan_cache_mode=force_generic_plan``)
must find its rows through an index condition that names the owner or key, never by a
scan of a table or of a bot's rows, on tables of many owners.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from botmemory import Memory
from botmemory.storage.base import (
    KvsCheck,
    KvsPrefixCheck,
    KvsRecord,
    KvsWrite,
    ScopeCheck,
    SessionRecord,
    StoredVar,
    TurnWrite,
    VarCheck,
    VarDelta,
    VarKey,
)
from tests.conftest import POSTGRES_URL, START

asyncpg = pytest.importorskip("asyncpg")

from botmemory.storage.postgres import sql, turn  # noqa: E402 - needs asyncpg
from tests.storage.test_postgres import schema_of  # noqa: E402

pytestmark = pytest.mark.postgres

SESSION = SessionRecord("b", "s5", "u5", START, START, START + 600, START + 60)
OWN = {"variables": "owner", "sessions": "key", "kvs": "key"}
"""The column whose index condition confines a scan of each table to one owner's rows."""
FILL = (
    "INSERT INTO variables SELECT 'b', s, CASE s WHEN 'user' THEN 'u' ELSE 's' END || i, "
    "'n' || j, '1', 0, NULL, NULL FROM generate_series(1, 3000) i, generate_series(1, 5) j, "
    "unnest(ARRAY['user', 'session', 'temp']) s",
    "INSERT INTO sessions SELECT 'b', 's' || i, 'u' || i, 0, 0, 1e12, NULL "
    "FROM generate_series(1, 3000) i",
    "INSERT INTO kvs SELECT 'b' || i % 1000, 'k' || i, '1', NULL FROM generate_series(1, 30000) i",
    "ANALYZE",
)


def var(scope: str, name: str) -> VarKey:
    return VarKey(scope, "b", {"user": "u5", "bot": ""}.get(scope, "s5"), name)  # type: ignore[arg-type]


def turn_writes() -> Iterator[TurnWrite]:
    """Commits of every shape: lean, with every part, and each part alone."""
    upsert = StoredVar(var("user", "n1"), "2", START)
    yield TurnWrite(SESSION, session_version=7, upserts=[upsert], checks=[VarCheck(upsert.key, 3)])
    yield TurnWrite(
        SESSION,
        session_version=7,
        reset_session=True,
        upserts=[StoredVar(var("session", "n1"), "2", START)],
        deletes=[var("user", "n2")],
        checks=[VarCheck(var("user", "n3"), 3)],
        deltas=[VarDelta(var("bot", "visits"), 1)],
        scope_checks=[ScopeCheck("user", "b", "u5", frozenset({"n1"}))],
        kvs_checks=[KvsCheck("b", "k5", 1)],
        kvs_prefix_checks=[KvsPrefixCheck("b", "k1", ()), KvsPrefixCheck("b", "", ())],
        kvs_writes=[KvsWrite("b", "k6", KvsRecord("1", None)), KvsWrite("b", "k7", None)],
    )
    yield TurnWrite(SESSION, reset_temp=True)
    yield TurnWrite(None, deletes=[var("user", "n2")])
    yield TurnWrite(None, kvs_writes=[KvsWrite("b", "k7", None)])


def statements() -> Iterator[tuple[str, list[Any]]]:
    yield sql.LOAD_TURN, ["b", "u5", "s5"]
    for write in turn_writes():
        read = turn.read_statement(write)
        if read is not None:
            yield read
        yield turn.write_statement(write, write.upserts)


async def generic_plan(conn: Any, statement: str, params: list[Any]) -> dict[str, Any]:
    """Return the generic plan of ``statement``, as a connection caches it."""
    types = await conn.fetchval(
        "SELECT array_agg(format_type(t, NULL) ORDER BY n) FROM unnest($1::oid[]) "
        "WITH ORDINALITY AS p (t, n)",
        [t.oid for t in (await conn.prepare(statement)).get_parameters()],
    )
    await conn.execute(f"PREPARE checked ({', '.join(types)}) AS {statement}")
    try:
        literals = [
            await conn.fetchval(f"SELECT quote_nullable($1::{t}) || '::{t}'", value)
            for t, value in zip(types, params, strict=True)
        ]
        text = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE checked ({', '.join(literals)})")
    finally:
        await conn.execute("DEALLOCATE checked")
    return dict(json.loads(text)[0]["Plan"])


def scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from scans(child)


def unconfined(plan: dict[str, Any]) -> list[str]:
    """Describe each step of ``plan`` that may read rows of other owners."""
    found = []
    for node in scans(plan):
        kind = node["Node Type"]
        table = node.get("Relation Name") or node.get("Index Name", "").split("_")[0]
        if table not in OWN or kind == "ModifyTable":
            continue
        if kind == "Bitmap Heap Scan":
            continue  # its Bitmap Index Scans below are checked
        cond = node.get("Index Cond", "")
        if not kind.endswith("Index Scan") or f"{OWN[table]} " not in cond:
            found.append(f"{kind} on {table} ({cond or node.get('Filter', 'no condition')})")
    return found


async def test_every_turn_statement_reads_only_its_own_rows(postgres_url: str) -> None:
    async with await Memory.open(postgres_url):
        pass
    conn = await asyncpg.connect(
        POSTGRES_URL,
        server_settings={
            "search_path": schema_of(postgres_url),
            "plan_cache_mode": "force_generic_plan",
        },
    )
    try:
        for statement in FILL:
            await conn.execute(statement)
        found = [
            (statement, unconfined(await generic_plan(conn, statement, params)))
            for statement, params in statements()
        ]
        assert [(statement, steps) for statement, steps in found if steps] == []
    finally:
        await conn.close()


def test_the_check_sees_a_scan_of_a_bots_rows() -> None:
    plan = {
        "Node Type": "Index Scan",
        "Relation Name": "variables",
        "Index Cond": "(bot_id = $1)",
        "Plans": [{"Node Type": "Seq Scan", "Relation Name": "kvs"}],
    }
    assert len(unconfined(plan)) == 2


async def test_a_commit_runs_cached_generic_plans(postgres_url: str) -> None:
    """Left to itself the server plans a statement of array parameters anew at each run."""
    async with await Memory.open(f"{postgres_url}&pool_min=1&pool_max=1") as mem:
        for n in range(8):
            async with mem.turn("b", "u1") as state:
                state.user["n"] = n
                state.session["m"] = len(state.bot)
        async with mem.storage.db.connection() as conn:  # type: ignore[attr-defined]
            plans = await conn.fetch(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            )
    commits = [p for p in plans if p["statement"].lstrip().startswith("WITH")]
    assert len(commits) >= 2  # the read and the write
    assert [(p["statement"], p["custom_plans"]) for p in commits if p["custom_plans"]] == []
    assert sum(p["generic_plans"] for p in commits) >= 14  # a read and a write a turn
