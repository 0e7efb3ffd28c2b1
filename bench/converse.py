"""Requests per second on the converse route, next to the HTTP floor of the same stack.

    python bench/converse.py [--requests 2000] [--concurrency 16]

Three measurements in one run, each against a real uvicorn process on loopback:

- ``botmemory serve`` on a copy of the example data folder (embedded SQLite): every
  request is a whole turn of the welcome bot (hooks, flows, four memories, persist);
- the floor: a bare FastAPI app on the same uvicorn with a converse route that answers
  a constant reply, so the difference is what botmemory itself costs;
- ``DialogEngine.process`` called in-process, without HTTP, for reference.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from botmemory.dialog import DialogEngine

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "botmemory" / "example_data"
MESSAGES = ("hi", "Ada", "great", "ada@example.com", "billing", "thanks")
FLOOR_APP = """
from fastapi import FastAPI

app = FastAPI()


@app.post("/api/v1/bots/{bot_id}/converse/{user_id}")
async def converse(bot_id: str, user_id: str, body: dict) -> dict:
    return {"responses": [{"type": "text", "text": "Hello!"}]}


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until_up(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


async def hammer(url: str, requests: int, concurrency: int) -> float:
    """Send ``requests`` converse requests from ``concurrency`` users; return requests/s."""

    async def user(n: int, count: int, client: httpx.AsyncClient) -> None:
        for i in range(count):
            body = {"type": "text", "text": MESSAGES[i % len(MESSAGES)]}
            response = await client.post(f"{url}/api/v1/bots/welcome/converse/u{n}", json=body)
            response.raise_for_status()

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await user(10_000, 20, client)  # warm up
        started = time.perf_counter()
        share = requests // concurrency
        await asyncio.gather(*(user(n, share, client) for n in range(concurrency)))
        return share * concurrency / (time.perf_counter() - started)


async def serve_and_measure(
    command: list[str], cwd: Path, port: int, args: argparse.Namespace
) -> tuple[float, float]:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_until_up(url)
        one = await hammer(url, args.requests // 4, 1)
        many = await hammer(url, args.requests, args.concurrency)
        return one, many
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def in_process(data_dir: Path, args: argparse.Namespace) -> tuple[float, float]:
    async with await DialogEngine.from_data_dir(data_dir) as engine:

        async def user(n: int, count: int) -> None:
            for i in range(count):
                await engine.process("welcome", f"p{n}", text=MESSAGES[i % len(MESSAGES)])

        rates = []
        for concurrency, requests in ((1, args.requests // 4), (args.concurrency, args.requests)):
            share = requests // concurrency
            started = time.perf_counter()
            await asyncio.gather(*(user(n, share) for n in range(concurrency)))
            rates.append(share * concurrency / (time.perf_counter() - started))
        return rates[0], rates[1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="botmemory-bench-") as folder:
        work = Path(folder)
        shutil.copytree(EXAMPLE, work / "data", ignore=shutil.ignore_patterns("memory.db*"))
        (work / "floor_app.py").write_text(FLOOR_APP)
        port = free_port()
        serve = [
            sys.executable,
            "-m",
            "botmemory",
            "serve",
            str(work / "data"),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        results = {"botmemory serve": await serve_and_measure(serve, work, port, args)}
        port = free_port()
        floor = [
            sys.executable,
            "-m",
            "uvicorn",
            "floor_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        results["FastAPI floor"] = await serve_and_measure(floor, work, port, args)
        results["engine, no HTTP"] = await in_process(work / "data", args)
    floor_one, floor_many = results["FastAPI floor"]
    print(f"converse route, {args.requests:,} requests")
    print(f"{'':<18}{'one user':>20}{f'{args.concurrency} users at once':>22}")
    print(f"{'':<18}{'req/s':>10}{'vs floor':>10}{'req/s':>12}{'vs floor':>10}")
    for name, (one, many) in results.items():
        cells = f"{one:>10,.0f}{one / floor_one:>10.0%}{many:>12,.0f}{many / floor_many:>10.0%}"
        print(f"{name:<18}{cells}")


if __name__ == "__main__":
    asyncio.run(main())
