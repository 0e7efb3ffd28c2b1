"""Converse requests per second with 1 and 2 server workers, on SQLite, PostgreSQL and Redis.

    python bench/scale.py [--requests 2000] [--users 32] [--runs 3]
                          [--backends sqlite,postgres,redis]

Each case serves a copy of the example data folder with ``uvicorn
botmemory.server.asgi:app --workers N`` (the documented way to run several workers)
and loads it from a client in a process of its own: ``--users`` users at once, each on
one kept-alive connection, sending the welcome bot's conversation in turn (every
request is a whole turn). The table gives requests per second and p99 latency, median
and range over the runs, and each rate as a ratio of the 1-worker SQLite rate of the
same run. PostgreSQL and Redis come from ``BOTMEMORY_TEST_POSTGRES_URL`` and
``BOTMEMORY_TEST_REDIS_URL`` (default: this machine's servers), in a schema or key
prefix of their own, removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from converse import EXAMPLE, Sample, Target, free_port, measure, wait_until_up

POSTGRES_URL = os.environ.get(
    "BOTMEMORY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("BOTMEMORY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WORKERS = (1, 2)


def database_url(backend: str, tag: str) -> str | None:
    """The URL of a fresh database for ``backend`` (None: the data folder's SQLite)."""
    if backend == "postgres":
        return f"{POSTGRES_URL}?schema=bm_scale_{tag}"
    if backend == "redis":
        return f"{REDIS_URL}?prefix=bm-scale-{tag}:"
    return None


def drop(url: str | None) -> None:
    """Remove what a case stored in PostgreSQL or Redis."""
    if url is None:
        return
    if url.startswith("postgresql"):
        schema = url.partition("schema=")[2]
        subprocess.run(
            ["psql", POSTGRES_URL, "-qc", f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'], check=True
        )
    else:
        import redis

        prefix = url.partition("prefix=")[2]
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)


def _client(port: int, requests: int, users: int, out: multiprocessing.Queue[Sample]) -> None:
    target = Target("botmemory", port, os.getpid())
    out.put(asyncio.run(measure(target, requests, users, "raw")))


def one_case(backend: str, workers: int, args: argparse.Namespace) -> Sample:
    """Serve a fresh copy of the example data, load it from another process, stop it."""
    tag = uuid.uuid4().hex[:8]
    url = database_url(backend, tag)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(EXAMPLE, data, ignore=shutil.ignore_patterns("memory.db*"))
        metrics = Path(tmp) / "metrics"
        metrics.mkdir()
        env = {**os.environ, "BOTMEMORY_DATA_DIR": str(data)}
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
        if url:
            env["BOTMEMORY_DATABASE_URL"] = url
            subprocess.run(
                [sys.executable, "-m", "botmemory", "migrate", str(data)], env=env, check=True
            )
        port = free_port()
        command = [sys.executable, "-m", "uvicorn", "botmemory.server.asgi:app"]
        command += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
        server = subprocess.Popen(command, env=env)
        try:
            asyncio.run(wait_until_up(port))
            spawn = multiprocessing.get_context("spawn")
            out: multiprocessing.Queue[Sample] = spawn.Queue()
            client = spawn.Process(target=_client, args=(port, args.requests, args.users, out))
            client.start()
            try:
                return out.get(timeout=600)
            finally:
                client.kill()
                client.join()
        finally:
            server.terminate()
            server.wait(timeout=60)
            drop(url)


def cell(values: list[float], digits: str) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:{digits}} ({low:{digits}}–{high:{digits}})"


def arguments() -> argparse.ArgumentParser:
    """The command line of this benchmark (``bench/run.py`` passes its quick and full ones)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres,redis")
    return parser


def main() -> None:
    args = arguments().parse_args()
    backends = args.backends.split(",")
    cases = [(b, w) for b in backends for w in WORKERS]
    found: dict[tuple[str, int], list[Sample]] = {case: [] for case in cases}
    base: list[float] = []
    print(f"load average before: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    for run in range(args.runs):
        for case in cases:
            found[case].append(one_case(*case, args))
        if ("sqlite", 1) in found:
            base.append(found[("sqlite", 1)][run].rate)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"\n{args.users} users at once, {args.requests} requests, {args.runs} runs")
    print("| backend | workers | requests/s | p99 ms | vs SQLite, 1 worker |")
    print("|---|---|---|---|---|")
    for backend, workers in cases:
        samples = found[(backend, workers)]
        rates = [s.rate for s in samples]
        ratios = [s.rate / b for s, b in zip(samples, base, strict=False)] if base else []
        ratio = cell(ratios, ".2f") if ratios else "-"
        print(
            f"| {backend} | {workers} | {cell(rates, ',.0f')} | "
            f"{cell([s.p99_ms for s in samples], '.1f')} | {ratio} |"
        )


if __name__ == "__main__":
    main()
