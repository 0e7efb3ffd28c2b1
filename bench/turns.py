"""Turns per second for a standard turn, per backend, next to a raw sqlite3 floor.

The standard turn: load the four memories of one of 10,000 users (10 user, 6 session,
20 bot and 3 temp variables), change 2 user and 2 session variables, persist. The floor
runs the same reads and writes by hand with the sqlite3 module on a copy of the same
database, in the same run. Target: botmemory on SQLite at 60% of the floor or better.

    python bench/turns.py [--users 10000] [--turns 3000] [--backends memory,sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from botmemory import ManualClock, Memory
from botmemory.ids import Identity
from botmemory.storage.base import SessionRecord, StoredVar, TurnWrite, VarKey
from botmemory.storage.sqlite import sqlite_path
from botmemory.values import dumps

BOT = "bench"
START = time.time()


def user_rows(ident: Identity) -> TurnWrite:
    """The stored state of one user: 10 user, 6 session and 3 temp variables."""
    now = START

    def var(scope: str, owner: str, name: str, value: object) -> StoredVar:
        return StoredVar(VarKey(scope, BOT, owner, name), dumps(value), now)  # type: ignore[arg-type]

    upserts = [var("user", ident.user_key, f"u{i}", {"v": i, "s": "x" * 20}) for i in range(10)]
    upserts += [var("session", ident.session_key, f"s{i}", f"session value {i}") for i in range(6)]
    upserts += [var("temp", ident.session_key, f"t{i}", i) for i in range(3)]
    session = SessionRecord(
        BOT, ident.session_key, ident.user_key, now, now, now + 10 * 365 * 86400, now + 86400 * 365
    )
    return TurnWrite(session, upserts=upserts)


async def populate(mem: Memory, users: int) -> None:
    bot = [StoredVar(VarKey("bot", BOT, "", f"b{i}"), dumps(i), START) for i in range(20)]
    first = Identity.of(BOT, "user0")
    await mem.storage.commit_turn(
        TurnWrite(user_rows(first).session, upserts=[*user_rows(first).upserts, *bot])
    )
    for n in range(1, users):
        await mem.storage.commit_turn(user_rows(Identity.of(BOT, f"user{n}")))


async def standard_turn(mem: Memory, user: str, n: int) -> None:
    async with mem.turn(BOT, user) as state:
        assert (len(state.user), len(state.bot), len(state.temp)) == (10, 20, 3)
        state.user["u0"] = {"v": n, "s": "changed"}
        state.user["u1"] = n
        state.session["s0"] = n
        state.session["s1"] = f"turn {n}"


async def run_turns(mem: Memory, users: int, turns: int, concurrency: int) -> float:
    """Run ``turns`` standard turns from ``concurrency`` conversations; return turns/s."""
    picks = [f"user{random.randrange(users)}" for _ in range(turns)]

    async def conversation(share: list[str]) -> None:
        for n, user in enumerate(share):
            await standard_turn(mem, user, n)

    started = time.perf_counter()
    await asyncio.gather(*(conversation(picks[i::concurrency]) for i in range(concurrency)))
    return turns / (time.perf_counter() - started)


async def bench_backend(
    url: str, users: int, turns: int, concurrency: int
) -> tuple[float, float, Memory]:
    clock = ManualClock(START + 1)
    mem = await Memory.open(url, clock=clock)
    await populate(mem, users)
    await run_turns(mem, users, 200, 1)  # warm up
    sequential = await run_turns(mem, users, turns, 1)
    concurrent = await run_turns(mem, users, turns, concurrency)
    return sequential, concurrent, mem


def sqlite_floor(path: str, users: int, turns: int) -> float:
    """The same reads and writes as a standard turn, by hand, on the same schema."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA secure_delete = ON")
    picks = [Identity.of(BOT, f"user{random.randrange(users)}") for _ in range(turns)]
    load = """
        SELECT name, value FROM variables WHERE bot_id = ?1 AND scope = 'user' AND owner = ?2
        UNION ALL SELECT name, value FROM variables WHERE bot_id = ?1 AND scope = 'bot'
        UNION ALL SELECT name, value FROM variables WHERE bot_id = ?1 AND scope = 'session'
            AND owner = ?3
        UNION ALL SELECT name, value FROM variables WHERE bot_id = ?1 AND scope = 'temp'
            AND owner = ?3"""
    upsert = (
        "INSERT OR REPLACE INTO variables (bot_id, scope, owner, name, value, changed_at, "
        "expires_at, field_times) VALUES (?,?,?,?,?,?,NULL,NULL)"
    )
    started = time.perf_counter()
    for n, ident in enumerate(picks):
        db.execute("BEGIN")
        rows = db.execute(load, (BOT, ident.user_key, ident.session_key)).fetchall()
        db.execute(
            "SELECT * FROM sessions WHERE bot_id = ? AND key = ?", (BOT, ident.session_key)
        ).fetchone()
        db.execute("COMMIT")
        assert len(rows) == 39
        now = START + n
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            upsert,
            [
                (BOT, "user", ident.user_key, "u0", '{"s":"changed","v":1}', now),
                (BOT, "user", ident.user_key, "u1", str(n), now),
                (BOT, "session", ident.session_key, "s0", str(n), now),
                (BOT, "session", ident.session_key, "s1", f'"turn {n}"', now),
            ],
        )
        db.execute(
            "UPDATE sessions SET last_seen = ?, expires_at = ? WHERE bot_id = ? AND key = ?",
            (now, now + 1800, BOT, ident.session_key),
        )
        db.execute("COMMIT")
    rate = turns / (time.perf_counter() - started)
    db.close()
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=3_000)
    parser.add_argument("--backends", default="memory,sqlite")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    random.seed(7)
    workdir = Path(tempfile.mkdtemp(prefix="botmemory-bench-"))
    results: dict[str, tuple[float, float]] = {}
    try:
        for backend in args.backends.split(","):
            url = {"memory": "memory://", "sqlite": f"sqlite:///{workdir}/bench.db"}.get(
                backend, backend
            )
            sequential, concurrent, mem = await bench_backend(
                url, args.users, args.turns, args.concurrency
            )
            results[backend] = (sequential, concurrent)
            await mem.close()
            if backend == "sqlite":
                floor_path = workdir / "floor.db"
                shutil.copy(sqlite_path(url), floor_path)
                rate = sqlite_floor(str(floor_path), args.users, args.turns)
                results["sqlite3 floor"] = (rate, rate)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, args)


def report(results: dict[str, tuple[float, float]], args: argparse.Namespace) -> None:
    """Print the table and the verdict on the target."""
    floor = results.get("sqlite3 floor", (0.0, 0.0))[0]
    print(f"standard turn, {args.users:,} users, {args.turns:,} turns")
    print(f"{'':<16}{'one conversation':>22}{f'{args.concurrency} at once':>22}")
    print(f"{'backend':<16}{'turns/s':>12}{'vs floor':>10}{'turns/s':>12}{'vs floor':>10}")
    for name, (sequential, concurrent) in results.items():
        cells = ""
        for rate in (sequential, concurrent):
            ratio = f"{rate / floor:.0%}" if floor else "-"
            cells += f"{rate:>12,.0f}{ratio:>10}"
        print(f"{name:<16}{cells}")
    if floor and "sqlite" in results:
        best = max(results["sqlite"])
        verdict = "meets" if best >= 0.6 * floor else "misses"
        print(f"botmemory on SQLite {verdict} the target of 60% of the raw sqlite3 floor")


if __name__ == "__main__":
    asyncio.run(main())
