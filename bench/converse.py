"""Requests per second on the converse route, next to the HTTP floor of the same stack.

    python bench/converse.py [--requests 2000] [--concurrency 16] [--runs 3] [--client raw]

Against real server processes on loopback, in the same run:

- ``botmemory serve`` on a copy of the example data folder (embedded SQLite): every
  request is a whole turn of the welcome bot (hooks, flows, four memories, persist),
  without and with ``?include=state``;
- the floor: a bare FastAPI app whose converse route answers a constant, served the way
  ``botmemory serve`` serves (its socket, uvicorn, the same event loop and HTTP parser),
  so the difference is what botmemory itself costs;
- ``DialogEngine.process`` called in-process, without HTTP, for reference.

Each user keeps one connection (keep-alive). The client writes HTTP/1.1 by hand, so that
it costs the shared cores little (``--client raw``, the default), or is httpx
(``--client httpx``): a real client's own cost makes every server look closer to the
floor. Each run measures every server once, one after
the other; the table gives the median and the range over the runs, the latency
percentiles, and the server's CPU time per request (user + system, all threads), which
other load on the machine disturbs less than requests per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from botmemory.dialog import DialogEngine
from botmemory.server.stack import server_stack

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "botmemory" / "example_data"
MESSAGES = ("hi", "Ada", "great", "ada@example.com", "billing", "thanks")
FLOOR_APP = """
import sys

import uvicorn
from fastapi import FastAPI

from botmemory.cli.common import run
from botmemory.cli.serve import _listen
from botmemory.server.stack import server_stack

app = FastAPI()


@app.post("/api/v1/bots/{bot_id}/converse/{user_id}")
async def converse(bot_id: str, user_id: str, body: dict) -> dict:
    return {"responses": [{"type": "text", "text": "Hello!"}]}


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


if __name__ == "__main__":  # served as `botmemory serve` serves
    stack = server_stack()
    listener = _listen("127.0.0.1", int(sys.argv[1]))
    config = uvicorn.Config(
        app, log_level="warning", server_header=False, loop=stack.loop, http=stack.http
    )
    run(uvicorn.Server(config).serve(sockets=[listener]), stack.loop_factory())
"""


@dataclass(frozen=True)
class Sample:
    """One measurement: requests per second, latency percentiles, server CPU a request."""

    rate: float
    p50_ms: float
    p99_ms: float
    cpu_us: float


@dataclass
class Target:
    """A server process and the query its requests carry."""

    name: str
    port: int
    pid: int
    query: str = ""

    def path(self, n: int) -> str:
        """The converse path of user ``n``."""
        return f"/api/v1/bots/welcome/converse/u{n}{self.query}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_until_up(port: int) -> None:
    for _ in range(600):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


async def raw_user(target: Target, n: int, count: int, latencies: list[float]) -> None:
    """One user on one kept-alive connection, sending ``count`` messages in turn."""
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
    try:
        for i in range(count):
            body = orjson.dumps({"type": "text", "text": MESSAGES[i % len(MESSAGES)]})
            head = (
                f"POST {target.path(n)} HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            started = time.perf_counter()
            writer.write(head.encode() + body)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.partition(b":")[2])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if b" 200 " not in status:
                raise RuntimeError(f"{target.name} answered {status!r}")
    finally:
        writer.close()


async def httpx_user(target: Target, n: int, count: int, latencies: list[float]) -> None:
    """The same user, through an httpx client of its own."""
    url = f"http://127.0.0.1:{target.port}{target.path(n)}"
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=30) as client:
        for i in range(count):
            started = time.perf_counter()
            response = await client.post(url, json={"text": MESSAGES[i % len(MESSAGES)]})
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()


CLIENTS = {"raw": raw_user, "httpx": httpx_user}


async def measure(target: Target, requests: int, concurrency: int, client: str) -> Sample:
    """``requests`` messages from ``concurrency`` users at once."""
    user = CLIENTS[client]
    await user(target, 10_000, 20, [])  # warm up
    share = requests // concurrency
    latencies: list[float] = []
    cpu = cpu_seconds(target.pid)
    started = time.perf_counter()
    await asyncio.gather(*(user(target, n, share, latencies) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(target.pid) - cpu
    latencies.sort()
    done = len(latencies)
    return Sample(
        done / elapsed,
        latencies[done // 2] * 1000,
        latencies[min(done - 1, done * 99 // 100)] * 1000,
        cpu / done * 1e6,
    )


async def in_process(data_dir: Path, args: argparse.Namespace) -> list[tuple[float, float]]:
    """Turns per second and CPU µs per turn, one user then ``args.concurrency``."""
    async with await DialogEngine.from_data_dir(data_dir) as engine:

        async def one_user(n: int, count: int) -> None:
            for i in range(count):
                await engine.process("welcome", f"p{n}", text=MESSAGES[i % len(MESSAGES)])

        results = []
        for concurrency, requests in ((1, args.requests // 4), (args.concurrency, args.requests)):
            share = requests // concurrency
            cpu, started = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one_user(n, share) for n in range(concurrency)))
            turns = share * concurrency
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            results.append((turns / elapsed, cpu / turns * 1e6))
        return results


def cell(values: list[float], digits: str = ",.0f") -> str:
    """Median and range: ``412 (380–431)``."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:{digits}} ({low:{digits}}–{high:{digits}})"


def report(
    samples: dict[str, dict[str, list[Sample]]], args: argparse.Namespace, loads: list[float]
) -> None:
    floor = samples["FastAPI floor"]
    print(
        f"converse route, {args.requests:,} requests, {args.runs} runs, {args.client} client, "
        f"{server_stack()}, load average {min(loads):.1f}–{max(loads):.1f}"
    )
    print("median (min–max) over the runs; vs floor: the ratio of the same run")
    for case in ("one user", f"{args.concurrency} users"):
        print(f"\n{case}")
        print(
            f"{'':<18}{'req/s':>20}{'vs floor':>16}{'p50 ms':>20}{'p99 ms':>22}{'CPU µs/req':>22}"
        )
        for name, cases in samples.items():
            runs = cases[case]
            ratios = [s.rate / f.rate for s, f in zip(runs, floor[case], strict=True)]
            print(
                f"{name:<18}{cell([s.rate for s in runs]):>20}{cell(ratios, '.0%'):>16}"
                f"{cell([s.p50_ms for s in runs], '.2f'):>20}"
                f"{cell([s.p99_ms for s in runs], '.1f'):>22}"
                f"{cell([s.cpu_us for s in runs]):>22}"
            )


def arguments() -> argparse.ArgumentParser:
    """The command line of this benchmark (``bench/run.py`` passes its quick and full ones)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw")
    return parser


async def main() -> None:
    args = arguments().parse_args()
    with tempfile.TemporaryDirectory(prefix="botmemory-bench-") as folder:
        work = Path(folder)
        shutil.copytree(EXAMPLE, work / "data", ignore=shutil.ignore_patterns("memory.db*"))
        (work / "floor_app.py").write_text(FLOOR_APP)
        serve_port, floor_port = free_port(), free_port()
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": work}
        serve = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "botmemory", "serve", str(work / "data")),
            *("--port", str(serve_port), "--log-level", "warning"),
            **quiet,
        )
        floor = await asyncio.create_subprocess_exec(
            sys.executable, "floor_app.py", str(floor_port), **quiet
        )
        try:
            await wait_until_up(serve_port)
            await wait_until_up(floor_port)
            targets = [
                Target("botmemory serve", serve_port, serve.pid),
                Target("  ?include=state", serve_port, serve.pid, "?include=state"),
                Target("FastAPI floor", floor_port, floor.pid),
            ]
            samples, loads = await run_all(targets, args)
        finally:
            for process in (serve, floor):
                process.terminate()
                await asyncio.wait_for(process.wait(), 30)
        report(samples, args, loads)
        (one, one_cpu), (many, many_cpu) = await in_process(work / "data", args)
        print(
            f"\nengine, no HTTP: one user {one:,.0f} turns/s, {one_cpu:,.0f} CPU µs a turn; "
            f"{args.concurrency} users {many:,.0f} turns/s, {many_cpu:,.0f} CPU µs a turn"
        )


async def run_all(
    targets: list[Target], args: argparse.Namespace
) -> tuple[dict[str, dict[str, list[Sample]]], list[float]]:
    """Every target in turn, ``args.runs`` times; and the load average before each run."""
    samples: dict[str, dict[str, list[Sample]]] = {t.name: {} for t in targets}
    loads: list[float] = []
    for _ in range(args.runs):
        loads.append(os.getloadavg()[0])
        for target in targets:
            for case, requests, concurrency in (
                ("one user", args.requests // 4, 1),
                (f"{args.concurrency} users", args.requests, args.concurrency),
            ):
                sample = await measure(target, requests, concurrency, args.client)
                samples[target.name].setdefault(case, []).append(sample)
    return samples, loads


if __name__ == "__main__":
    asyncio.run(main())
