"""How the janitor scales: rows removed per second, and the cost of a large live table.

    python bench/janitor.py [--expired 1000000] [--live 1000000]

Rows are inserted straight into an embedded SQLite database, then one janitor run
removes the expired ones in batches. The second measurement adds the same number of
live rows: with the expiry index, the run's time follows the expired rows, not the
table's size.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from botmemory import ManualClock, Memory

NOW = 1_700_000_000.0


def insert(path: Path, expired: int, live: int) -> None:
    db = sqlite3.connect(path)
    rows = ((f"b{i % 10}", f"k{i}", "1", NOW - 1) for i in range(expired))
    db.executemany("INSERT INTO kvs (namespace, key, value, expires_at) VALUES (?,?,?,?)", rows)
    rows = ((f"b{i % 10}", f"live{i}", "1", NOW + 3600) for i in range(live))
    db.executemany("INSERT INTO kvs (namespace, key, value, expires_at) VALUES (?,?,?,?)", rows)
    db.commit()
    db.close()


async def run(folder: Path, name: str, expired: int, live: int) -> None:
    path = folder / f"{name}.db"
    url = f"sqlite:///{path}"
    await (await Memory.open(url)).close()  # create the schema
    insert(path, expired, live)
    async with await Memory.open(url, clock=ManualClock(NOW)) as mem:
        started = time.perf_counter()
        report = await mem.janitor.run_once()
        seconds = time.perf_counter() - started
    assert report.kvs == expired, report
    print(
        f"{expired:>10,} expired among {live:>10,} live: removed in {seconds:6.2f}s "
        f"({expired / seconds:,.0f} rows/s)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expired", type=int, default=1_000_000)
    parser.add_argument("--live", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="botmemory-bench-") as folder:
        await run(Path(folder), "small", args.expired // 100, 0)
        await run(Path(folder), "small-in-large", args.expired // 100, args.live)
        await run(Path(folder), "large", args.expired, 0)


if __name__ == "__main__":
    asyncio.run(main())
