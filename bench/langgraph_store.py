"""botmemory's LangGraph store next to LangGraph's SqliteStore and PostgresStore.

    python bench/langgraph_store.py [--items 1000] [--searches 200] [--rounds 3]

Every store is driven through the same blocking ``BaseStore`` API, one operation at a
time: N puts of a small JSON object (100 namespaces ``("users", "u<n>")``, a TTL of an
hour), N gets in random order, then searches of one user's namespace with a filter
(``limit=10``). Contenders run in turn, round after round (alternating, so that load
on the machine spreads over all of them); each line gives the median and the min–max
of the rounds, in operations per second. PostgreSQL is read from
``BOTMEMORY_TEST_POSTGRES_URL`` (default: this machine's server); each contender gets a
schema of its own, dropped afterwards. Peers are optional (pip install
'botmemory[bench]'): one that cannot be imported or reached is shown as unavailable.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from botmemory import SyncMemory
from botmemory.integrations.langgraph import BotMemoryStore

POSTGRES_URL = os.environ.get(
    "BOTMEMORY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
TTL_MINUTES = 60
Rates = tuple[float, float, float]
"""Operations per second: puts, gets, searches."""
Opener = Callable[[Path], contextlib.AbstractContextManager[Any]]


def value(i: int) -> dict[str, Any]:
    return {"name": f"user {i}", "visits": i % 7, "tags": ["a", "b"], "ok": True}


def where(i: int) -> tuple[tuple[str, ...], str]:
    return ("users", f"u{i % 100}"), f"k{i}"


def run(store: Any, items: int, searches: int, seed: int) -> Rates:
    order = list(range(items))
    random.Random(seed).shuffle(order)
    start = time.perf_counter()
    for i in range(items):
        store.put(*where(i), value(i), ttl=TTL_MINUTES)
    puts = items / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in order:
        assert store.get(*where(i)) is not None
    gets = items / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(searches):
        store.search(("users", f"u{i % 100}"), filter={"visits": {"$gte": 3}}, limit=10)
    return puts, gets, searches / (time.perf_counter() - start)


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh schema on the PostgreSQL server, dropped afterwards."""
    import psycopg

    schema = f"bm_bench_lg_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def botmemory_on(url: str) -> Iterator[BotMemoryStore]:
    with SyncMemory.open(url) as memory:
        yield BotMemoryStore(memory, ttl={"default_ttl": TTL_MINUTES})


@contextlib.contextmanager
def botmemory_sqlite(folder: Path) -> Iterator[BotMemoryStore]:
    with botmemory_on(f"sqlite:///{folder}/memory.db") as store:
        yield store


@contextlib.contextmanager
def botmemory_postgres(folder: Path) -> Iterator[BotMemoryStore]:
    with pg_schema() as schema, botmemory_on(f"{POSTGRES_URL}?schema={schema}") as store:
        yield store


@contextlib.contextmanager
def langgraph_sqlite(folder: Path) -> Iterator[Any]:
    from langgraph.store.sqlite import SqliteStore

    with SqliteStore.from_conn_string(str(folder / "lg.db")) as store:
        store.conn.execute("PRAGMA journal_mode = WAL")
        store.conn.execute("PRAGMA synchronous = NORMAL")
        store.setup()
        yield store


@contextlib.contextmanager
def langgraph_postgres(folder: Path) -> Iterator[Any]:
    from langgraph.store.postgres import PostgresStore

    with pg_schema() as schema:
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        with PostgresStore.from_conn_string(url) as store:
            store.setup()
            yield store


CONTENDERS: dict[str, Opener] = {
    "botmemory store, SQLite": botmemory_sqlite,
    "LangGraph SqliteStore": langgraph_sqlite,
    "botmemory store, PostgreSQL": botmemory_postgres,
    "LangGraph PostgresStore": langgraph_postgres,
}


def measure(name: str, items: int, searches: int, seed: int) -> Rates | str:
    try:
        with tempfile.TemporaryDirectory() as tmp, CONTENDERS[name](Path(tmp)) as store:
            return run(store, items, searches, seed)
    except ImportError as exc:
        return f"unavailable ({exc.name} not installed)"
    except Exception as exc:  # a server that is not there: say so, measure the rest
        return f"unavailable ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})"


def summary(rates: list[float]) -> str:
    return f"{statistics.median(rates):8.0f} ({min(rates):.0f}–{max(rates):.0f})"


def arguments() -> argparse.ArgumentParser:
    """The command line of this benchmark (``bench/run.py`` passes its quick and full ones)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    return parser


def main() -> None:
    args = arguments().parse_args()
    results: dict[str, list[Rates]] = {name: [] for name in CONTENDERS}
    failures: dict[str, str] = {}
    for round_ in range(args.rounds):
        for name in CONTENDERS:
            if name in failures:
                continue
            got = measure(name, args.items, args.searches, seed=round_)
            if isinstance(got, str):
                failures[name] = got
            else:
                results[name].append(got)
    print(f"LangGraph stores: {args.items} puts, {args.items} gets, {args.searches} searches,")
    print(f"ops/s, median (min–max) of {args.rounds} rounds; load average {os.getloadavg()[0]:.1f}")
    print(f"{'':30} {'put':>22} {'get':>22} {'search':>22}")
    for name, runs in results.items():
        if name in failures:
            print(f"{name:30} {failures[name]}")
            continue
        columns = [summary([r[k] for r in runs]) for k in range(3)]
        print(f"{name:30} {columns[0]:>22} {columns[1]:>22} {columns[2]:>22}")


if __name__ == "__main__":
    main()
