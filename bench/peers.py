"""botmemory next to its peers and a raw floor, all measured in the same run.

    python bench/peers.py [--keys 10000] [--users 10000] [--turns 10000]

Two measurements:

- KVS with expiry on SQLite: botmemory's KVS, LangGraph's AsyncSqliteStore and
  SqliteStore (langgraph-checkpoint-sqlite) and a raw sqlite3 floor, each on a fresh
  file with WAL and synchronous=NORMAL. The same work for each, one operation at a
  time, each its own transaction: N puts of a small JSON object that expires in an
  hour, N gets in random order, N updates. The floor writes and reads the same rows
  by hand on botmemory's schema: no JSON, no validation, no event loop.
- Turn state in memory: botmemory on memory://, Bot Framework's UserState and
  ConversationState on MemoryStorage (botbuilder-core) with one property accessor per
  variable, and a floor of plain dicts copied out and written back. A turn reads one
  of 10,000 users' 10 user and 6 session variables, changes 2 of each and saves. The
  memory is what tracemalloc counts as held once every user is stored.

Peers are optional (pip install langgraph-checkpoint-sqlite botbuilder-core aiohttp):
one that cannot be imported is shown as unavailable, never replaced.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from botmemory import ManualClock, Memory
from botmemory.values import JsonValue

BOT = "bench"
USER_VARS = tuple(f"u{i}" for i in range(10))
SESSION_VARS = tuple(f"s{i}" for i in range(6))
Rates = tuple[float, float, float]
"""Operations per second for the puts, the gets and the updates."""
Turn = Callable[[str, int], Awaitable[None]]
Contender = Callable[[int], AbstractAsyncContextManager[Turn]]


def kvs_value(i: int, version: int) -> dict[str, JsonValue]:
    return {"name": f"user {i}", "visits": version, "tags": ["a", "b"], "ok": True}


def fast_sqlite(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")


async def phases(
    put: Callable[[int, int], Awaitable[object]],
    get: Callable[[int], Awaitable[object]],
    order: list[int],
) -> Rates:
    """Time N puts, N gets and N updates, one at a time; return each one's rate."""
    rates = []
    for op in (lambda i: put(i, 0), get, lambda i: put(i, 1)):
        started = time.perf_counter()
        for i in order:
            await op(i)
        rates.append(len(order) / (time.perf_counter() - started))
    return rates[0], rates[1], rates[2]


def phases_sync(
    put: Callable[[int, int], object], get: Callable[[int], object], order: list[int]
) -> Rates:
    """:func:`phases` for a blocking API, so that no event loop is counted."""
    rates = []
    for op in (lambda i: put(i, 0), get, lambda i: put(i, 1)):
        started = time.perf_counter()
        for i in order:
            op(i)
        rates.append(len(order) / (time.perf_counter() - started))
    return rates[0], rates[1], rates[2]


# -- KVS with expiry on SQLite -------------------------------------------------------
async def kvs_botmemory(folder: Path, order: list[int]) -> Rates:
    async with await Memory.open(f"sqlite:///{folder}/botmemory.db") as mem:
        kvs = mem.kvs.for_bot(BOT)

        async def put(i: int, version: int) -> None:
            await kvs.set(f"key{i}", kvs_value(i, version), expiry="1h")

        async def get(i: int) -> None:
            assert await kvs.get(f"key{i}") is not None

        return await phases(put, get, order)


async def kvs_langgraph_async(folder: Path, order: list[int]) -> Rates | None:
    try:
        from langgraph.store.sqlite.aio import AsyncSqliteStore
    except ImportError:
        return None
    ttl = {"refresh_on_read": False}  # botmemory does not extend an expiry on reads
    async with AsyncSqliteStore.from_conn_string(f"{folder}/lg-async.db", ttl=ttl) as store:
        await store.conn.execute("PRAGMA journal_mode = WAL")
        await store.conn.execute("PRAGMA synchronous = NORMAL")
        await store.setup()

        async def put(i: int, version: int) -> None:
            await store.aput((BOT,), f"key{i}", kvs_value(i, version), ttl=60)  # minutes

        async def get(i: int) -> None:
            assert await store.aget((BOT,), f"key{i}") is not None

        return await phases(put, get, order)


def kvs_langgraph_sync(folder: Path, order: list[int]) -> Rates | None:
    try:
        from langgraph.store.sqlite import SqliteStore
    except ImportError:
        return None
    ttl = {"refresh_on_read": False}  # as above
    with SqliteStore.from_conn_string(f"{folder}/lg-sync.db", ttl=ttl) as store:
        fast_sqlite(store.conn)
        store.setup()

        def put(i: int, version: int) -> None:
            store.put((BOT,), f"key{i}", kvs_value(i, version), ttl=60)

        def get(i: int) -> None:
            assert store.get((BOT,), f"key{i}") is not None

        return phases_sync(put, get, order)


def kvs_floor(folder: Path, order: list[int]) -> Rates:
    """The same rows by hand, on botmemory's schema and settings."""
    db = sqlite3.connect(folder / "floor.db", isolation_level=None)
    fast_sqlite(db)
    db.execute("PRAGMA secure_delete = ON")
    texts = [[json.dumps(kvs_value(i, v)) for v in (0, 1)] for i in range(len(order))]

    def put(i: int, version: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT OR REPLACE INTO kvs (namespace, key, value, expires_at) VALUES (?,?,?,?)",
            (BOT, f"key{i}", texts[i][version], time.time() + 3600),
        )
        db.execute("COMMIT")

    def get(i: int) -> None:
        row = db.execute(
            "SELECT value, expires_at FROM kvs WHERE namespace = ? AND key = ? "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (BOT, f"key{i}", time.time()),
        ).fetchone()
        assert row is not None

    rates = phases_sync(put, get, order)
    db.close()
    return rates


async def bench_kvs(keys: int) -> dict[str, Rates | None]:
    order = random.sample(range(keys), keys)
    with tempfile.TemporaryDirectory(prefix="botmemory-bench-") as name:
        folder = Path(name)
        await (await Memory.open(f"sqlite:///{folder}/floor.db")).close()  # the same schema
        return {
            "botmemory sqlite://": await kvs_botmemory(folder, order),
            "LangGraph AsyncSqliteStore": await kvs_langgraph_async(folder, order),
            "LangGraph SqliteStore (sync)": kvs_langgraph_sync(folder, order),
            "sqlite3 floor": kvs_floor(folder, order),
        }


# -- Turn state in memory ------------------------------------------------------------
def fresh_user() -> dict[str, JsonValue]:
    """A user's 10 variables as first stored."""
    return {name: {"v": i, "s": "x" * 20} for i, name in enumerate(USER_VARS)}


def fresh_session() -> dict[str, JsonValue]:
    """A session's 6 variables as first stored."""
    return {name: f"value {i}" for i, name in enumerate(SESSION_VARS)}


@asynccontextmanager
async def botmemory_turns(users: int) -> AsyncIterator[Turn]:
    async with await Memory.open("memory://", clock=ManualClock(time.time())) as mem:
        for n in range(users):
            async with mem.turn(BOT, f"user{n}") as state:
                state.user.update(fresh_user())
                state.session.update(fresh_session())

        async def turn(user: str, n: int) -> None:
            async with mem.turn(BOT, user) as state:
                seen = [state.user[name] for name in USER_VARS]
                seen += [state.session[name] for name in SESSION_VARS]
                assert None not in seen
                state.user["u0"] = {"v": n, "s": "changed"}
                state.user["u1"] = n
                state.session["s0"] = n
                state.session["s1"] = f"turn {n}"

        yield turn


@asynccontextmanager
async def botbuilder_turns(users: int) -> AsyncIterator[Turn]:
    from botbuilder.core import ConversationState, MemoryStorage, TurnContext, UserState
    from botbuilder.core.adapters import TestAdapter
    from botbuilder.schema import Activity, ChannelAccount, ConversationAccount

    storage = MemoryStorage()
    user_state, conversation_state = UserState(storage), ConversationState(storage)
    props = {name: user_state.create_property(name) for name in USER_VARS}
    props |= {name: conversation_state.create_property(name) for name in SESSION_VARS}
    adapter = TestAdapter()

    def context(user: str) -> TurnContext:
        """What the adapter hands a bot for a message: the activity says who and where."""
        activity = Activity(
            type="message",
            channel_id="api",
            from_property=ChannelAccount(id=user),
            recipient=ChannelAccount(id=BOT),
            conversation=ConversationAccount(id=f"conversation-{user}"),
        )
        return TurnContext(adapter, activity)

    async def save(ctx: TurnContext) -> None:
        await user_state.save_changes(ctx)
        await conversation_state.save_changes(ctx)

    for n in range(users):
        ctx = context(f"user{n}")
        for name, value in (fresh_user() | fresh_session()).items():
            await props[name].set(ctx, value)
        await save(ctx)

    async def turn(user: str, n: int) -> None:
        ctx = context(user)
        seen = [await prop.get(ctx) for prop in props.values()]
        assert None not in seen
        await props["u0"].set(ctx, {"v": n, "s": "changed"})
        await props["u1"].set(ctx, n)
        await props["s0"].set(ctx, n)
        await props["s1"].set(ctx, f"turn {n}")
        await save(ctx)

    yield turn


@asynccontextmanager
async def dict_floor_turns(users: int) -> AsyncIterator[Turn]:
    """A dict per user and per session, copied out and written back: no JSON, no checks."""
    user_store = {f"user{n}": fresh_user() for n in range(users)}
    session_store = {f"user{n}": fresh_session() for n in range(users)}

    async def turn(user: str, n: int) -> None:
        user_vars, session_vars = dict(user_store[user]), dict(session_store[user])
        seen = [*user_vars.values(), *session_vars.values()]
        assert None not in seen
        user_vars["u0"] = {"v": n, "s": "changed"}
        user_vars["u1"] = n
        session_vars["s0"] = n
        session_vars["s1"] = f"turn {n}"
        user_store[user], session_store[user] = user_vars, session_vars

    yield turn


async def bench_turns(contender: Contender, users: int, turns: int) -> tuple[float, float]:
    """Return turns per second, and the MB that tracemalloc counts as held for ``users``."""
    gc.collect()
    tracemalloc.start()
    async with contender(users):
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    picks = [f"user{random.randrange(users)}" for _ in range(turns)]
    async with contender(users) as turn:
        for n, user in enumerate(picks[:200]):  # warm up
            await turn(user, n)
        started = time.perf_counter()
        for n, user in enumerate(picks):
            await turn(user, n)
        rate = turns / (time.perf_counter() - started)
    return rate, held


async def bench_turn_state(users: int, turns: int) -> dict[str, tuple[float, float] | None]:
    try:
        import botbuilder.core  # noqa: F401  (it needs aiohttp without declaring it)
    except ImportError:
        builder = None
    else:
        builder = await bench_turns(botbuilder_turns, users, turns)
    return {
        "botmemory memory://": await bench_turns(botmemory_turns, users, turns),
        "botbuilder User+ConversationState": builder,
        "dict floor": await bench_turns(dict_floor_turns, users, turns),
    }


# -- Report --------------------------------------------------------------------------
def section(
    title: str, heads: tuple[str, ...], rows: Mapping[str, tuple[float, ...] | None], floor: str
) -> None:
    """Print rows of numbers, each next to its share of the floor's."""
    print(f"{title:<40}" + "".join(f"{head:>12}{'vs floor':>10}" for head in heads))
    for name, values in rows.items():
        cells = f"{'unavailable':>12}"
        if values is not None:
            cells = "".join(
                f"{v:>12,.{0 if v >= 100 else 1}f}{v / base:>10.0%}"
                for v, base in zip(values, rows[floor] or (), strict=True)
            )
        print(f"{name:<40}{cells}")


def arguments() -> argparse.ArgumentParser:
    """The command line of this benchmark (``bench/run.py`` passes its quick and full ones)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=10_000)
    return parser


async def main() -> None:
    args = arguments().parse_args()
    random.seed(7)
    kvs = await bench_kvs(args.keys)
    turns = await bench_turn_state(args.users, args.turns)
    heads = ("puts/s", "gets/s", "updates/s")
    section(f"KVS with expiry on SQLite, {args.keys:,} keys", heads, kvs, "sqlite3 floor")
    title = f"turn state, {args.users:,} users, {args.turns:,} turns"
    section(title, ("turns/s", "MB held"), turns, "dict floor")


if __name__ == "__main__":
    asyncio.run(main())
