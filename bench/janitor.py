"""How the janitor scales: its cost per expired row as the table grows, per backend.

    python bench/janitor.py [--sizes 100000,1000000] [--backends sqlite,postgresql://...]
                            [--runs 1] [--expired-share 0.1]

For each size N, a key-value table of N rows of which a share (10%) has expired, in two
layouts: *clustered*, the expired rows stored together (a batch import that expired at
once), and *spread*, every tenth row expired, each at its own time, in an order unrelated
to the keys (users expiring one by one: the real case). One janitor run removes them;
the bench reports expired rows removed per second and, per layout, the ratio of the
smallest size's rate to the largest's (the target: within 1.5x from 100k to 5M rows).
On PostgreSQL it also times the ``VACUUM`` that follows. Rows are made by one
``INSERT ... SELECT`` in the database, so a 5,000,000-row table takes seconds to fill.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from botmemory import ManualClock, Memory

NOW = 1_700_000_000.0
NAMESPACES = 100
LAYOUTS = ("clustered", "spread")

FILL_SQLITE = """
    WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
    INSERT INTO kvs (namespace, key, value, expires_at)
    SELECT 'b' || (i % {ns}), printf('k%09d', i), '{{"v":1}}',
        CASE WHEN {expired} THEN ?2 - 1 - {age} ELSE ?2 + 86400 END
    FROM n
"""
FILL_POSTGRES = """
    INSERT INTO kvs (namespace, key, value, expires_at)
    SELECT 'b' || (i % {ns}), 'k' || lpad(i::text, 9, '0'), '{{"v":1}}',
        CASE WHEN {expired} THEN $2::float8 - 1 - {age} ELSE $2 + 86400 END
    FROM generate_series(0, $1 - 1) AS i
"""


def expired_test(layout: str, every: int) -> str:
    """The SQL condition under which row ``i`` of ``N`` (``?1``/``$1``) has expired."""
    # Row i is key i // NAMESPACES of namespace i % NAMESPACES: "spread" expires every
    # ``every``-th key of each namespace, "clustered" the first keys of each.
    if layout == "spread":
        return f"(i / {NAMESPACES}) % {every} = 0"
    return f"i < {{n}} / {every}"


def fill_sql(template: str, layout: str, every: int, size: int) -> str:
    """The fill statement: spread rows expired each at its own random time, clustered
    ones all at the same instant (their expiry order is their key order)."""
    test = expired_test(layout, every).format(n=size)
    age = "0"
    if layout == "spread":
        age = "abs(random() % ?1)" if template is FILL_SQLITE else "floor(random() * $1)"
    return template.format(ns=NAMESPACES, expired=test, age=age)


async def measure(url: str, fill: str, size: int, vacuum: bool) -> tuple[int, float, float]:
    """Fill, run the janitor once; return rows removed, its seconds and VACUUM's."""
    async with await Memory.open(url) as mem:
        await _execute(mem, fill, size)
    async with await Memory.open(url, clock=ManualClock(NOW)) as mem:
        started = time.perf_counter()
        report = await mem.janitor.run_once()
        seconds = time.perf_counter() - started
        vacuumed = 0.0
        if vacuum:
            started = time.perf_counter()
            await _execute(mem, "VACUUM kvs", None)
            vacuumed = time.perf_counter() - started
    return report.kvs, seconds, vacuumed


async def _execute(mem: Memory, statement: str, size: int | None) -> None:
    """Run one statement on the memory's own database (the bench's fill or VACUUM)."""
    storage = mem.storage
    if hasattr(storage, "db") and hasattr(storage.db, "connection"):  # PostgreSQL
        async with storage.db.connection() as conn:
            args = () if size is None else (size, NOW)
            await conn.execute(statement, *args, timeout=3600)
        return
    path = storage.path  # type: ignore[attr-defined]
    db = sqlite3.connect(path)
    db.execute(statement, (size, NOW))
    db.commit()
    db.close()


def remove_files(folder: Path) -> None:
    for path in folder.glob("*.db*"):
        path.unlink()


def with_schema(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | {"schema": schema}
    return urlunsplit(parts._replace(query=urlencode(query)))


async def drop_schema(url: str) -> None:
    import asyncpg  # only for PostgreSQL runs

    schema = dict(parse_qsl(urlsplit(url).query))["schema"]
    dsn = urlunsplit(urlsplit(url)._replace(query=""))
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()


async def one_run(
    backend: str, folder: Path, layout: str, size: int, every: int
) -> tuple[int, float, float]:
    if backend == "sqlite":
        url = f"sqlite:///{folder / f'{uuid.uuid4().hex}.db'}"
        fill = fill_sql(FILL_SQLITE, layout, every, size)
        try:
            return await measure(url, fill, size, vacuum=False)
        finally:
            remove_files(folder)
    url = with_schema(backend, f"bm_bench_{uuid.uuid4().hex[:10]}")
    try:
        return await measure(url, fill_sql(FILL_POSTGRES, layout, every, size), size, True)
    finally:
        await drop_schema(url)


def arguments() -> argparse.ArgumentParser:
    """The command line of this benchmark (``bench/run.py`` passes its quick and full ones)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="table sizes, comma-separated")
    parser.add_argument("--backends", default="sqlite", help="sqlite and/or PostgreSQL URLs")
    parser.add_argument("--runs", type=int, default=1, help="runs per case (median, min-max)")
    parser.add_argument("--expired-share", type=float, default=0.1)
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="clustered and/or spread")
    return parser


async def main() -> None:
    args = arguments().parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    every = round(1 / args.expired_share)
    print(
        f"{'backend':<10}{'layout':<11}{'rows':>11}{'expired':>10}{'rows/s (min-max)':>28}"
        f"{'vacuum s':>10}"
    )
    with tempfile.TemporaryDirectory(prefix="botmemory-bench-") as folder:
        for backend in args.backends.split(","):
            name = "sqlite" if backend == "sqlite" else "postgres"
            for layout in args.layouts.split(","):
                rates: dict[int, float] = {}
                for size in sizes:
                    runs = [
                        await one_run(backend, Path(folder), layout, size, every)
                        for _ in range(args.runs)
                    ]
                    removed = runs[0][0]
                    assert removed == size // every, (removed, size)
                    speeds = [removed / seconds for _, seconds, _ in runs]
                    rates[size] = statistics.median(speeds)
                    vacuum = statistics.median(v for _, _, v in runs)
                    spread = f"{rates[size]:,.0f} ({min(speeds):,.0f}-{max(speeds):,.0f})"
                    print(
                        f"{name:<10}{layout:<11}{size:>11,}{removed:>10,}{spread:>28}"
                        f"{vacuum:>10.2f}"
                    )
                first, last = rates[sizes[0]], rates[sizes[-1]]
                print(f"{name:<10}{layout:<11}{'':>11}{'':>10}{first / last:>27.2f}x slower")


if __name__ == "__main__":
    asyncio.run(main())
