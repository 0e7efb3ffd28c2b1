"""The PostgreSQL side of bench/turns.py: a fast fill, a raw floor and LangGraph's store.

- ``fill``: the standard users' rows (10 user, 6 session, 3 temp variables, a session
  record, 20 bot variables) made by ``INSERT ... SELECT generate_series`` in the
  database: a million users in a few minutes instead of hours of turns.
- ``floor``: the same statements as a turn, by hand with asyncpg on the same schema:
  the session's advisory lock, the load of the four memories, then in one transaction
  the four variables and the session record written, and the unlock. No checks, no
  versions, no JSON: what a turn cannot go below.
- ``langgraph``: LangGraph's AsyncPostgresStore (langgraph-checkpoint-postgres) doing
  the same turn: the four namespaces searched in one batch, the four items put in
  another; on its own schema, filled the same way.

Each runs ``turns`` turns from one conversation, then from ``concurrency`` at once.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import asyncpg

from botmemory.storage.postgres.url import parse_postgres_url
from botmemory.values import dumps

BOT = "bench"
USER = 'format(\'["api", "user%s"]\', n)'
SESSION = 'format(\'["api", "user%s", null]\', n)'
FILL_VARS = f"""
    INSERT INTO variables (bot_id, scope, owner, name, value, changed_at)
    SELECT '{BOT}', s.scope, CASE s.scope WHEN 'user' THEN {USER} ELSE {SESSION} END,
           s.name, s.value, $1
    FROM generate_series($2::int, $3::int - 1) AS n,
         unnest($4::text[], $5::text[], $6::text[]) AS s (scope, name, value)
"""
FILL_SESSIONS = f"""
    INSERT INTO sessions (bot_id, key, user_key, started_at, last_seen, expires_at,
                          temp_expires_at)
    SELECT '{BOT}', {SESSION}, {USER}, $1::float8, $1::float8, $1::float8 + 3.2e8,
           $1::float8 + 3.2e7
    FROM generate_series($2::int, $3::int - 1) AS n
"""
FILL_BOT = f"""
    INSERT INTO variables (bot_id, scope, owner, name, value, changed_at)
    SELECT '{BOT}', 'bot', '', 'b' || i, i::text, $1 FROM generate_series(0, 19) AS i
"""
CHUNK = 100_000
LANGGRAPH_USERS = 100_000


def user_rows() -> list[list[str]]:
    """The scope, name and value columns of one user's stored variables."""
    rows = [("user", f"u{i}", dumps({"v": i, "s": "x" * 20})) for i in range(10)]
    rows += [("session", f"s{i}", dumps(f"session value {i}")) for i in range(6)]
    rows += [("temp", f"t{i}", dumps(i)) for i in range(3)]
    return [list(column) for column in zip(*rows, strict=True)]


async def connect(url: str) -> Any:
    options = parse_postgres_url(url)
    return await asyncpg.connect(options.dsn, server_settings={"search_path": options.schema})


async def fill(url: str, users: int, start: float) -> None:
    """Store ``users`` standard users and the bot's variables in ``url``'s schema."""
    conn = await connect(url)
    try:
        columns = user_rows()
        for first in range(0, users, CHUNK):
            last = min(users, first + CHUNK)
            await conn.execute(FILL_VARS, start, first, last, *columns)
            await conn.execute(FILL_SESSIONS, start, first, last)
        await conn.execute(FILL_BOT, start)
        # the server would vacuum the new rows while turns are timed: do it before
        await conn.execute("VACUUM (ANALYZE) variables, sessions")
    finally:
        await conn.close()


Turn = Callable[[int, int], Awaitable[None]]
"""One standard turn of user number $1, the conversation's $2-th."""


async def rates(users: int, turns: int, concurrency: int, turn: Turn) -> tuple[float, float]:
    """Run ``turns`` turns from one conversation, then from ``concurrency``; turns/s."""
    found = []
    for conversations in (1, concurrency):
        picks = [random.randrange(users) for _ in range(turns)]

        async def conversation(share: list[int]) -> None:
            for n, user in enumerate(share):
                await turn(user, n)

        started = time.perf_counter()
        await asyncio.gather(*(conversation(picks[i::conversations]) for i in range(conversations)))
        found.append(turns / (time.perf_counter() - started))
    return found[0], found[1]


LOAD = """
    SELECT scope, name, value FROM variables WHERE bot_id = $1 AND scope = 'user' AND owner = $2
    UNION ALL SELECT scope, name, value FROM variables
        WHERE bot_id = $1 AND scope = 'bot' AND owner = ''
    UNION ALL SELECT scope, name, value FROM variables
        WHERE bot_id = $1 AND scope = 'session' AND owner = $3
    UNION ALL SELECT scope, name, value FROM variables
        WHERE bot_id = $1 AND scope = 'temp' AND owner = $3
"""
WRITE = """
    INSERT INTO variables (bot_id, scope, owner, name, value, changed_at)
    SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::float8[])
    ON CONFLICT (bot_id, scope, owner, name) DO UPDATE SET
        value = excluded.value, changed_at = excluded.changed_at
"""
TOUCH = "UPDATE sessions SET last_seen = $3, expires_at = $4 WHERE bot_id = $1 AND key = $2"


async def floor(url: str, users: int, turns: int, concurrency: int) -> tuple[float, float]:
    """The floor's turns/s from one conversation and from ``concurrency``."""
    options = parse_postgres_url(url)
    pool = await asyncpg.create_pool(
        options.dsn,
        min_size=concurrency,
        max_size=concurrency,
        server_settings={"search_path": options.schema},
    )

    async def turn(n: int, count: int) -> None:
        user, session = f'["api", "user{n}"]', f'["api", "user{n}", null]'
        now = time.time()
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", session)
            try:
                rows = await conn.fetch(LOAD, BOT, user, session)
                assert len(rows) == 39
                async with conn.transaction():
                    await conn.execute(
                        WRITE,
                        BOT,
                        ["user", "user", "session", "session"],
                        [user, user, session, session],
                        ["u0", "u1", "s0", "s1"],
                        ['{"s":"changed","v":1}', str(count), str(count), f'"turn {count}"'],
                        [now] * 4,
                    )
                    await conn.execute(TOUCH, BOT, session, now, now + 1800)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", session)

    try:
        return await rates(users, turns, concurrency, turn)
    finally:
        await pool.close()


async def langgraph(url: str, users: int, turns: int, concurrency: int) -> tuple[float, float]:
    """LangGraph AsyncPostgresStore's turns/s; raises ImportError when not installed."""
    from langgraph.store.base import PutOp, SearchOp
    from langgraph.store.postgres.aio import AsyncPostgresStore

    options = parse_postgres_url(url)
    schema = f"bm_bench_lg_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(options.dsn)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in options.dsn else "?"
    dsn = f"{options.dsn}{separator}options={quote(f'-csearch_path={schema}')}"
    try:
        async with AsyncPostgresStore.from_conn_string(
            dsn, pool_config={"min_size": concurrency, "max_size": concurrency}
        ) as store:
            await store.setup()
            await _fill_langgraph(admin, schema, users)

            async def turn(n: int, count: int) -> None:
                user, session = f"user{n}", f"user{n}-session"
                spaces = [(BOT, "user", user), (BOT, "bot"), (BOT, "session", session)]
                spaces.append((BOT, "temp", session))
                found = await store.abatch([SearchOp(ns, limit=50) for ns in spaces])
                assert sum(len(items) for items in found) == 39
                await store.abatch(
                    [
                        PutOp(spaces[0], "u0", {"v": count, "s": "changed"}),
                        PutOp(spaces[0], "u1", {"v": count}),
                        PutOp(spaces[2], "s0", {"v": count}),
                        PutOp(spaces[2], "s1", {"v": f"turn {count}"}),
                    ]
                )

            return await rates(users, turns, concurrency, turn)
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


async def _fill_langgraph(admin: Any, schema: str, users: int) -> None:
    """The same rows in LangGraph's ``store`` table, one JSON document per variable."""
    statements = [
        f"""INSERT INTO "{schema}".store (prefix, key, value)
        SELECT '{BOT}.user.user' || n, 'u' || i, jsonb_build_object('v', i, 's', 'xxxxxxxxxx')
        FROM generate_series(0, $1 - 1) AS n, generate_series(0, 9) AS i""",
        f"""INSERT INTO "{schema}".store (prefix, key, value)
        SELECT '{BOT}.session.user' || n || '-session', 's' || i, jsonb_build_object('v', i)
        FROM generate_series(0, $1 - 1) AS n, generate_series(0, 5) AS i""",
        f"""INSERT INTO "{schema}".store (prefix, key, value)
        SELECT '{BOT}.temp.user' || n || '-session', 't' || i, jsonb_build_object('v', i)
        FROM generate_series(0, $1 - 1) AS n, generate_series(0, 2) AS i""",
        f"""INSERT INTO "{schema}".store (prefix, key, value)
        SELECT '{BOT}.bot', 'b' || i, jsonb_build_object('v', i)
        FROM generate_series(0, 19 + 0 * $1) AS i""",
        f'ANALYZE "{schema}".store',
    ]
    for statement in statements:
        if "$1" in statement:
            await admin.execute(statement, users)
        else:
            await admin.execute(statement)


def fresh_schema(url: str) -> str:
    """Return ``url`` with a schema of the bench's own (see ``drop_schema``)."""
    options = parse_postgres_url(url)
    separator = "&" if "?" in url else "?"
    schema = f"bm_bench_{uuid.uuid4().hex[:8]}"
    return (
        url.replace(f"schema={options.schema}", f"schema={schema}")
        if "schema=" in url
        else (f"{url}{separator}schema={schema}")
    )


async def drop_schema(url: str) -> None:
    options = parse_postgres_url(url)
    conn = await asyncpg.connect(options.dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{options.schema}" CASCADE')
    finally:
        await conn.close()


async def compare(
    url: str, users: int, turns: int, concurrency: int
) -> dict[str, tuple[float, float]]:
    """The floor's and LangGraph's rows of the table, for botmemory's run on ``url``."""
    rows = {"postgres floor": await floor(url, users, turns, concurrency)}
    if users > LANGGRAPH_USERS:
        print(f"LangGraph's store is measured with at most {LANGGRAPH_USERS:,} users")
        return rows
    try:
        rows["LangGraph PgStore"] = await langgraph(url, users, turns, concurrency)
    except ImportError:
        print("LangGraph's PostgreSQL store is not installed: pip install -e '.[bench]'")
    return rows
