"""Turns per second for a standard turn, per backend, next to a raw sqlite3 floor.

The standard turn: load the four memories of one of 10,000 users (10 user, 6 session,
20 bot and 3 temp variables), change 2 user and 2 session variables, persist. The floor
runs the same reads and writes by hand with the sqlite3 module on a copy of the same
database, in the same run; so does LangGraph's blocking SqliteStore (bench/langgraph_turns.py).
On SQLite the floor and botmemory alternate, ``--rounds`` times (5): each round times
the floor, then botmemory with one conversation, then with many, and each ratio is
taken within its round, so that the machine's drift moves both sides of it alike; the
table gives the medians and the range of the rounds' ratios.
Targets: botmemory on SQLite at 60% of the floor or better with one conversation, 70%
with 32 at once, twice LangGraph's rate. While the turns run, a task that sleeps 1 ms
records how late the event loop wakes it: the loop's stalls (target: p99 under 2 ms); the
turns are run again for that, so that the probe costs the timed runs nothing. Once a
backend is filled and warm, the objects made so far leave the garbage collector's sight
(``gc.freeze``), as ``serve`` does once started: else each full collection of the
modules this script imports (LangGraph's among them) stalls the loop about 20 ms.

Then, per backend, 64 users at once each run turns through ``Memory.run_turn`` that add
one to one bot variable: by read-modify-write (``state.bot["visits"] = ... + 1``, which
conflicts and retries) and by ``state.bot.incr("visits")`` (a delta, no conflicts). It
reports turns/s, the final count (which must equal the number of turns, else the bench
exits with status 1), and conflicts and retries per turn.

    python bench/turns.py [--users 10000] [--turns 3000] [--backends memory,sqlite]
                          [--concurrency 32] [--rounds 5] [--rmw-users 64] [--rmw-turns 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import turns_postgres  # next to this file
from langgraph_turns import langgraph_turn_rate

from botmemory import ManualClock, Memory
from botmemory.errors import ConflictError
from botmemory.ids import Identity
from botmemory.server.heap import freeze_started
from botmemory.storage.base import SessionRecord, StoredVar, TurnWrite, VarKey
from botmemory.storage.sqlite import sqlite_path
from botmemory.turns import TurnState
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


@dataclass
class Stalls:
    """How late the event loop woke a task sleeping 1 ms, over a run: p99 and max, in ms."""

    p99: float
    max: float


@contextlib.asynccontextmanager
async def loop_stalls() -> AsyncIterator[list[float]]:
    """Record, while the block runs, how late each 1 ms sleep of a probe task ends (s)."""
    lags: list[float] = []
    sleeping_since = [time.perf_counter()]

    async def probe() -> None:
        while True:
            sleeping_since[0] = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - sleeping_since[0] - 0.001)

    task = asyncio.create_task(probe())
    try:
        yield lags
    finally:
        lags.append(max(0.0, time.perf_counter() - sleeping_since[0] - 0.001))  # the last sleep
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def stalls(lags: list[float]) -> Stalls:
    ordered = sorted(lags) or [0.0]
    return Stalls(ordered[int(0.99 * (len(ordered) - 1))] * 1000, ordered[-1] * 1000)


async def run_turns(mem: Memory, users: int, turns: int, concurrency: int) -> float:
    """Run ``turns`` standard turns from ``concurrency`` conversations; return turns/s."""
    picks = [f"user{random.randrange(users)}" for _ in range(turns)]

    async def conversation(share: list[str]) -> None:
        for n, user in enumerate(share):
            await standard_turn(mem, user, n)

    started = time.perf_counter()
    await asyncio.gather(*(conversation(picks[i::concurrency]) for i in range(concurrency)))
    return turns / (time.perf_counter() - started)


async def stalls_during_turns(mem: Memory, users: int, turns: int, concurrency: int) -> Stalls:
    """Run turns as :func:`run_turns` does, with the probe (not while turns/s are timed)."""
    async with loop_stalls() as lags:
        await run_turns(mem, users, turns, concurrency)
    return stalls(lags)


@dataclass
class BackendResult:
    """Turns/s and the loop's stalls with one conversation and with many at once."""

    sequential: float
    concurrent: float
    stalls: tuple[Stalls, Stalls] | None = None
    ratios: tuple[list[float], list[float]] | None = None
    """Each round's ratio to the floor measured just before it (SQLite)."""


async def bench_backend(
    url: str, users: int, turns: int, concurrency: int
) -> tuple[BackendResult, Memory]:
    clock = ManualClock(START + 1)
    mem = await Memory.open(url, clock=clock)
    if url.startswith("postgres"):
        await turns_postgres.fill(url, users, START)
    else:
        await populate(mem, users)
    await run_turns(mem, users, 200, 1)  # warm up
    freeze_started()  # what start-up made stays out of full collections, as in `serve`
    sequential = await run_turns(mem, users, turns, 1)
    concurrent = await run_turns(mem, users, turns, concurrency)
    alone = await stalls_during_turns(mem, users, turns, 1)
    together = await stalls_during_turns(mem, users, turns, concurrency)
    return BackendResult(sequential, concurrent, (alone, together)), mem


@dataclass
class CounterResult:
    """One run of the 64-user counter case."""

    backend: str
    how: str
    turns: int
    rate: float
    final: int
    conflicts: int
    retries: int
    gave_up: int
    max_attempts: int

    @property
    def exact(self) -> bool:
        return self.final == self.turns and self.gave_up == 0


async def read_modify_write(state: TurnState) -> None:
    visits = state.bot.get("visits", 0)  # the README's state.bot["visits"] = ... + 1
    assert isinstance(visits, int)
    state.bot["visits"] = visits + 1


async def increment(state: TurnState) -> None:
    state.bot.incr("visits")


async def counter_case(
    mem: Memory, backend: str, how: str, users: int, turns_per_user: int
) -> CounterResult:
    """``users`` conversations at once, each running ``turns_per_user`` counting turns."""
    body = read_modify_write if how == "read-modify-write" else increment
    bot = f"count{secrets.token_hex(4)}"  # a fresh bot: the count starts at 0
    conflicts, retries = mem.stats.conflicts, mem.stats.retries
    gave_up = 0

    async def conversation(user: str) -> None:
        nonlocal gave_up
        for _ in range(turns_per_user):
            try:
                await mem.run_turn(body, bot, user)
            except ConflictError:
                gave_up += 1

    started = time.perf_counter()
    await asyncio.gather(*(conversation(f"user{u}") for u in range(users)))
    rate = users * turns_per_user / (time.perf_counter() - started)

    async def read(state: TurnState) -> int:
        visits = state.bot.get("visits", 0)
        assert isinstance(visits, int)
        return visits

    final = await mem.run_turn(read, bot, "reader")
    return CounterResult(
        backend,
        how,
        users * turns_per_user,
        rate,
        final,
        mem.stats.conflicts - conflicts,
        mem.stats.retries - retries,
        gave_up,
        mem.settings.max_attempts,
    )


class SqliteFloor:
    """The same reads and writes as a standard turn, by hand, on a copy of the database."""

    LOAD: Final = """
        SELECT name, value FROM variables WHERE bot_id = ?1 AND scope = 'user' AND owner = ?2
        UNION ALL SELECT name, value FROM variables WHERE bot_id = ?1 AND scope = 'bot'
        UNION ALL SELECT name, value FROM variables WHERE bot_id = ?1 AND scope = 'session'
            AND owner = ?3
        UNION ALL SELECT name, value FROM variables WHERE bot_id = ?1 AND scope = 'temp'
            AND owner = ?3"""
    UPSERT: Final = (
        "INSERT OR REPLACE INTO variables (bot_id, scope, owner, name, value, changed_at, "
        "expires_at, field_times) VALUES (?,?,?,?,?,?,NULL,NULL)"
    )

    def __init__(self, path: str, users: int) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("PRAGMA secure_delete = ON")
        self.users = users
        self.done = 0

    def run(self, turns: int) -> float:
        """Run ``turns`` turns of random users, one at a time; return turns/s."""
        db = self.db
        picks = [Identity.of(BOT, f"user{random.randrange(self.users)}") for _ in range(turns)]
        started = time.perf_counter()
        for ident in picks:
            n = self.done = self.done + 1
            db.execute("BEGIN")
            rows = db.execute(self.LOAD, (BOT, ident.user_key, ident.session_key)).fetchall()
            db.execute(
                "SELECT * FROM sessions WHERE bot_id = ? AND key = ?", (BOT, ident.session_key)
            ).fetchone()
            db.execute("COMMIT")
            assert len(rows) == 39
            now = START + n
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                self.UPSERT,
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
        return turns / (time.perf_counter() - started)

    def close(self) -> None:
        self.db.close()


async def bench_sqlite(
    url: str, workdir: Path, args: argparse.Namespace
) -> tuple[dict[str, BackendResult], Memory]:
    """botmemory on SQLite and the floor, in alternating rounds: each round times the
    floor, then botmemory with one conversation, then with many, so that the machine's
    drift (other work, CPU clocks) moves both sides of each round's ratio alike."""
    users, turns, concurrency = args.users, args.turns, args.concurrency
    mem = await Memory.open(url, clock=ManualClock(START + 1))
    await populate(mem, users)
    await mem.close()  # its WAL goes into the file, which the floor's copy then has
    shutil.copy(sqlite_path(url), workdir / "floor.db")
    floor = SqliteFloor(str(workdir / "floor.db"), users)
    mem = await Memory.open(url, clock=ManualClock(START + 1))
    await run_turns(mem, users, 200, 1)  # warm up
    floor.run(200)
    freeze_started()  # what start-up made stays out of full collections, as in `serve`
    floors: list[float] = []
    alone: list[float] = []
    together: list[float] = []
    try:
        for _ in range(args.rounds):
            floors.append(floor.run(turns))
            alone.append(await run_turns(mem, users, turns, 1))
            together.append(await run_turns(mem, users, turns, concurrency))
    finally:
        floor.close()
    stalls = (
        await stalls_during_turns(mem, users, turns, 1),
        await stalls_during_turns(mem, users, turns, concurrency),
    )
    ratios = (
        [a / f for a, f in zip(alone, floors, strict=True)],
        [t / f for t, f in zip(together, floors, strict=True)],
    )
    median = statistics.median
    return {
        "sqlite": BackendResult(median(alone), median(together), stalls, ratios),
        "sqlite3 floor": BackendResult(median(floors), median(floors)),
    }, mem


def arguments() -> argparse.ArgumentParser:
    """The command line of this benchmark (``bench/run.py`` passes its quick and full ones)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=3_000)
    parser.add_argument("--backends", default="memory,sqlite")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=5, help="SQLite: rounds of floor, one, many (median)"
    )
    parser.add_argument("--rmw-users", type=int, default=64)
    parser.add_argument(
        "--rmw-turns", type=int, default=10, help="counting turns per user (0: skip the case)"
    )
    return parser


async def main() -> None:
    args = arguments().parse_args()
    random.seed(7)
    workdir = Path(tempfile.mkdtemp(prefix="botmemory-bench-"))
    results: dict[str, BackendResult] = {}
    counters: list[CounterResult] = []
    try:
        for backend in args.backends.split(","):
            url = {"memory": "memory://", "sqlite": f"sqlite:///{workdir}/bench.db"}.get(
                backend, backend
            )
            if url.startswith("postgres"):
                url, backend = turns_postgres.fresh_schema(url), "postgres"
            if backend == "sqlite":
                rows, mem = await bench_sqlite(url, workdir, args)
                results |= rows
            else:
                results[backend], mem = await bench_backend(
                    url, args.users, args.turns, args.concurrency
                )
            try:
                if args.rmw_turns > 0 and args.rmw_users > 0:
                    for how in ("read-modify-write", "incr"):
                        counters.append(
                            await counter_case(mem, backend, how, args.rmw_users, args.rmw_turns)
                        )
            finally:
                await mem.close()
            if backend == "postgres":
                try:
                    rows = await turns_postgres.compare(
                        url, args.users, args.turns, args.concurrency
                    )
                    results |= {name: BackendResult(*rates) for name, rates in rows.items()}
                finally:
                    await turns_postgres.drop_schema(url)
            if backend == "sqlite":
                peer = langgraph_turn_rate(workdir, args.users, args.turns)
                if peer is not None:
                    results["LangGraph SqliteStore"] = BackendResult(peer, peer)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, args)
    if counters and not report_counters(counters, args):
        sys.exit(1)


def report_counters(counters: list[CounterResult], args: argparse.Namespace) -> bool:
    """Print the counter table; say which runs lost or dropped a turn. True if none did."""
    print()
    print(
        f"{args.rmw_users} users at once, {args.rmw_turns} turns each, "
        "adding 1 to one bot variable with run_turn"
    )
    print(
        f"{'backend':<16}{'how':<20}{'turns/s':>9}{'turns':>8}{'final':>8}"
        f"{'conflicts/turn':>16}{'retries/turn':>14}{'gave up':>9}"
    )
    for c in counters:
        print(
            f"{c.backend:<16}{c.how:<20}{c.rate:>9,.0f}{c.turns:>8,}{c.final:>8,}"
            f"{c.conflicts / c.turns:>16.2f}{c.retries / c.turns:>14.2f}{c.gave_up:>9,}"
        )
    exact = True
    for c in counters:
        if not c.exact:
            exact = False
            acknowledged = c.turns - c.gave_up
            print(
                f"error: {c.backend} {c.how}: final count {c.final:,} after {c.turns:,} turns:"
                f" {c.gave_up:,} gave up with ConflictError after {c.max_attempts} attempts,"
                f" {acknowledged - c.final:,} of the {acknowledged:,} that returned were lost",
                file=sys.stderr,
            )
    return exact


def spread(ratios: list[float]) -> str:
    """A ratio's median and range over the rounds, as percentages: ``62% (55–70)``."""
    low, mid, high = min(ratios), statistics.median(ratios), max(ratios)
    return f"{mid:.0%} ({low * 100:.0f}–{high * 100:.0f})"


def report(results: dict[str, BackendResult], args: argparse.Namespace) -> None:
    """Print the table and the verdict on the targets."""
    floor = results["sqlite3 floor"].sequential if "sqlite3 floor" in results else 0.0
    pg_floor = results.get("postgres floor", BackendResult(0.0, 0.0))
    print(f"standard turn, {args.users:,} users, {args.turns:,} turns a measure")
    sqlite = results.get("sqlite")
    if sqlite is not None and sqlite.ratios is not None:
        print(
            f"SQLite: {args.rounds} rounds of the floor, then botmemory with one conversation,"
            " then many; rates are medians, ratios each round's, median (min–max)"
        )
    print(f"{'':<22}{'one conversation':>26}{f'{args.concurrency} at once':>26}")
    print(f"{'backend':<22}" + f"{'turns/s':>10}{'vs floor':>16}" * 2 + "   loop stalls, ms")
    for name, result in results.items():
        cells = ""
        on_pg = name.startswith(("postgres", "LangGraph PgStore"))
        of = (pg_floor.sequential, pg_floor.concurrent) if on_pg else (floor, floor)
        for i, (rate, base) in enumerate(
            zip((result.sequential, result.concurrent), of, strict=True)
        ):
            if result.ratios is not None:
                ratio = spread(result.ratios[i])
            else:
                ratio = f"{rate / base:.0%}" if base else "-"
            cells += f"{rate:>10,.0f}{ratio:>16}"
        if result.stalls is not None:
            cells += "   " + " / ".join(f"p99 {s.p99:.2f} max {s.max:.1f}" for s in result.stalls)
        print(f"{name:<22}{cells}")
    peer = results.get("LangGraph SqliteStore")
    if floor and sqlite is not None:
        alone, together = sqlite.ratios or (
            [sqlite.sequential / floor],
            [sqlite.concurrent / floor],
        )
        met = statistics.median(alone) >= 0.6 and statistics.median(together) >= 0.7
        print(
            f"botmemory on SQLite {'meets' if met else 'misses'} the targets of 60% and 70% "
            "of the sqlite3 floor (medians of the rounds)"
        )
    if sqlite is not None and peer is not None:
        print(
            f"botmemory on SQLite, one conversation: {sqlite.sequential / peer.sequential:.1f}x "
            "LangGraph's SqliteStore (target: 2x)"
        )


if __name__ == "__main__":
    asyncio.run(main())
