"""A soak: concurrent HTTP clients against ``botmemory serve``, with the janitor running.

    python bench/soak.py [--backend sqlite|postgres|redis ...] [--duration 60] [--clients 64]

For each backend it starts ``botmemory serve`` as a real process on a free loopback port,
over a fresh data folder whose two bots count every message and keep data that expires
every few seconds: the full janitor runs every 2 s, the session sweep every 1 s, user
variables named ``tmp_*`` expire 2 s after each change, KVS keys under ``tmp/`` 2 s after
they are written, and every session of the bot ``brief`` 2 s after its last message.

Each client sends messages with unique ids (and resends an id it got no answer for);
every message's turn does read-modify-write on user, session and bot memory, a
conflict-free ``incr`` in bot memory, two KVS increments inside the turn, and writes
expiring data. Some messages are sent again with the same id, one after the other or both
at once; some requests read the memory and KVS routes. It fails (exit 1) when:

- any answer is a 5xx, or a 4xx other than a 404 for an expired KVS key;
- a counter differs from the number of acknowledged turns that touched it (a lost update,
  or a message id that ran twice), or a repeated id is answered with other replies;
- a read shows a variable or key whose expiry had passed when the request was sent;
- at the end, storage still holds a record that expired more than one janitor interval
  (plus 1 s for the run itself) before the scan, read straight from the database;
- the janitor logged a failed run;
- the server's resident memory (``VmRSS``) grew more than 10% between the first and the
  last 20 s of load (a third of the run when it is shorter than 60 s).

It prints p50 / p99 latency and requests per second. PostgreSQL and Redis come from
``BOTMEMORY_TEST_POSTGRES_URL`` and ``BOTMEMORY_TEST_REDIS_URL`` (default: this machine's
servers), each run in a schema or key prefix of its own, removed afterwards; ``--url``
gives one explicitly. The clock is real: this is a soak, not a unit test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

POSTGRES_URL = os.environ.get(
    "BOTMEMORY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("BOTMEMORY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
JANITOR_INTERVAL = 2.0  # dataRetention.janitorInterval: the longest of the two sweeps
EXPIRY = "2s"
BOTS = ("soak", "brief")  # brief: sessions of 2 s, so sessions expire throughout

GLOBAL_CONFIG = {
    "dialog": {"janitorInterval": "1s", "timeoutInterval": "5m", "sessionTimeoutInterval": "30m"},
    "dataRetention": {"janitorInterval": f"{JANITOR_INTERVAL:g}s", "policies": {"tmp_*": EXPIRY}},
    "concurrency": {"maxAttempts": 1000},
}
BRIEF_CONFIG = {"dialog": {"sessionTimeoutInterval": EXPIRY, "timeoutInterval": "1s"}}
FLOW = {
    "startNode": "count",
    "nodes": [{"name": "count", "onEnter": [{"action": "soak.count"}, {"say": "{{temp.reply}}"}]}],
}
ACTION = f'''"""Count the message everywhere, and leave data that expires soon."""

import time

from botmemory.dialog import action


@action("soak.count")
async def count(event, state, args, kvs):
    """Read-modify-write user, session and bot counters; incr; KVS; expiring data."""
    user = state.user.get("count", 0) + 1
    state.user["count"] = user
    session = state.session.get("count", 0) + 1
    state.session["count"] = session
    bot = 0
    if event.text.endswith("-b"):  # one message in 8: every such turn conflicts with the others
        bot = state.bot.get("rmw", 0) + 1
        state.bot["rmw"] = bot
    state.bot.incr("hits")
    await kvs.incr("counters/user/" + event.user_id)
    await kvs.incr("counters/all")
    state.user["tmp_seen"] = time.time()
    await kvs.set("tmp/" + event.user_id + "/" + event.text, event.text, expiry="{EXPIRY}")
    state.temp["reply"] = f"{{event.text}} user={{user}} session={{session}} bot={{bot}}"
'''


def write_data_folder(folder: Path) -> None:
    """Write the soak's configuration, flow and action into ``folder``."""
    (folder / "global").mkdir(parents=True)
    (folder / "global" / "botmemory.config.json").write_text(json.dumps(GLOBAL_CONFIG))
    for bot in BOTS:
        (folder / "bots" / bot / "flows").mkdir(parents=True)
        (folder / "bots" / bot / "actions").mkdir()
        (folder / "bots" / bot / "flows" / "main.flow.json").write_text(json.dumps(FLOW))
        (folder / "bots" / bot / "actions" / "soak.py").write_text(ACTION)
    (folder / "bots" / "brief" / "bot.config.json").write_text(json.dumps(BRIEF_CONFIG))


# -- the database of one run ----------------------------------------------------------


def _with_query(url: str, name: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{name}={value}"


def database_url(backend: str, folder: Path) -> str:
    """A fresh database for ``backend``: a file, a schema or a key prefix of its own."""
    if backend == "sqlite":
        return f"sqlite:///{folder}/memory.db"
    if backend == "postgres":
        return _with_query(POSTGRES_URL, "schema", f"bm_soak_{uuid.uuid4().hex[:12]}")
    if backend == "redis":
        return _with_query(REDIS_URL, "prefix", f"bm-soak-{uuid.uuid4().hex[:12]}:")
    raise SystemExit(f"unknown backend {backend!r}: use sqlite, postgres or redis")


def _query_value(url: str, name: str, default: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(url).query).get(name, [default])[0]


def _base(url: str) -> str:
    return url.split("?", 1)[0]


async def overdue_in_storage(url: str, cutoff: float) -> dict[str, int]:
    """Count the records stored with an expiry before ``cutoff``, bypassing botmemory."""
    if url.startswith("sqlite"):
        return _overdue_sqlite(url.removeprefix("sqlite:///"), cutoff)
    if url.startswith("postgres"):
        return await _overdue_postgres(url, cutoff)
    return await _overdue_redis(url, cutoff)


_SQL_COUNTS = {
    "variables": "SELECT count(*) FROM {s}variables WHERE expires_at <= {p}",
    "sessions": "SELECT count(*) FROM {s}sessions WHERE expires_at <= {p}",
    "temp": "SELECT count(*) FROM {s}sessions WHERE temp_expires_at <= {p}",
    "kvs": "SELECT count(*) FROM {s}kvs WHERE expires_at <= {p}",
}


def _overdue_sqlite(path: str, cutoff: float) -> dict[str, int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return {
            kind: int(db.execute(sql.format(s="", p="?"), (cutoff,)).fetchone()[0])
            for kind, sql in _SQL_COUNTS.items()
        }


async def _overdue_postgres(url: str, cutoff: float) -> dict[str, int]:
    import asyncpg

    schema = _query_value(url, "schema", "public")
    conn = await asyncpg.connect(_base(url))
    try:
        return {
            kind: int(await conn.fetchval(sql.format(s=f'"{schema}".', p="$1"), cutoff))
            for kind, sql in _SQL_COUNTS.items()
        }
    finally:
        await conn.close()


async def _overdue_redis(url: str, cutoff: float) -> dict[str, int]:
    """Count entries of the expiry indexes (``due:*``) scored before ``cutoff``."""
    import redis.asyncio as aioredis

    prefix = _query_value(url, "prefix", "botmemory:")
    client = aioredis.Redis.from_url(_base(url))
    counts: Counter[str] = Counter()
    try:
        async for key in client.scan_iter(match=f"{prefix}*due:*", count=1000):
            kind = key.decode().rsplit("due:", 1)[1]
            counts[kind] += int(await client.zcount(key, "-inf", cutoff))
    finally:
        await client.aclose()
    return dict(counts)


async def drop_database(url: str) -> None:
    """Remove the schema or key prefix of a PostgreSQL or Redis run."""
    if url.startswith("postgres"):
        import asyncpg

        conn = await asyncpg.connect(_base(url))
        try:
            schema = _query_value(url, "schema", "")
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
    elif url.startswith("redis"):
        import redis.asyncio as aioredis

        prefix = _query_value(url, "prefix", "")
        client = aioredis.Redis.from_url(_base(url))
        try:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
            for start in range(0, len(keys), 1000):
                await client.delete(*keys[start : start + 1000])
        finally:
            await client.aclose()


# -- the server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data: Path, url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start ``botmemory serve`` on ``port`` with ``url`` as its database."""
    command = [sys.executable, "-m", "botmemory", "serve", str(data), "--port", str(port)]
    env = {**os.environ, "BOTMEMORY_DATABASE_URL": url}
    with log.open("wb") as out:
        return subprocess.Popen(
            [*command, "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT, env=env
        )


async def wait_until_up(base: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}")
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not start within 60 s")


def cpu_seconds(pid: int) -> float:
    """The CPU time process ``pid`` has used so far (user and system), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """The resident memory of process ``pid``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# -- the clients --------------------------------------------------------------------------


@dataclass
class Tally:
    """What the clients saw: acknowledged turns, failures, latencies, RSS samples."""

    acked: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """Acknowledged unique messages per (bot, user, thread)."""
    acked_rmw: Counter[str] = field(default_factory=Counter)
    """Acknowledged unique messages per bot that read-modify-write ``bot.rmw``."""
    failures: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    duplicates_checked: int = 0
    expiry_reads: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)

    def fail(self, message: str) -> None:
        if len(self.failures) < 1000:
            self.failures.append(message)


@dataclass(frozen=True)
class Who:
    """One client's conversation: bot, user and thread."""

    bot: str
    user: str
    thread: str

    @staticmethod
    def of(client: int) -> Who:
        # 4 clients per user, 2 per session (user u, thread t): user and session
        # counters are shared; every 8th client talks to the brief bot.
        bot = "brief" if client % 8 == 7 else "soak"
        return Who(bot, f"u{client % 16}", f"t{client % 32}")


class Client:
    """One of the concurrent clients."""

    def __init__(self, number: int, base: str, tally: Tally) -> None:
        self.number = number
        # a connection pool of its own: one pool of 64 clients costs the client more CPU
        # than the server spends on the turns. Idle connections are dropped after 2 s,
        # before uvicorn closes them (5 s): reusing one it is closing is a ReadError.
        limits = httpx.Limits(keepalive_expiry=2.0)
        self.http = httpx.AsyncClient(base_url=base, timeout=30, limits=limits)
        self.tally = tally
        self.who = Who.of(number)
        self.sent = 0
        self.last: tuple[str, Any] | None = None  # (id, replies) of the last acked message
        self.rng = random.Random(number)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            self.tally.fail(f"{method} {path}: {type(exc).__name__}: {exc}")
            return None
        self.tally.latencies.append(time.perf_counter() - started)
        self.tally.statuses[response.status_code] += 1
        return response

    async def converse(self, message_id: str) -> Any:
        """Send message ``message_id`` until it is answered; return the replies."""
        who = self.who
        body = {"text": message_id, "id": message_id, "threadId": who.thread}
        for _ in range(20):
            response = await self.request(
                "POST", f"/api/v1/bots/{who.bot}/converse/{who.user}", json=body
            )
            if response is not None and response.status_code == 200:
                return response.json()["responses"]
            if response is not None:
                self.tally.fail(f"converse {message_id}: {response.status_code} {response.text}")
            await asyncio.sleep(0.2)
        raise RuntimeError(f"message {message_id} was never answered")

    def next_id(self) -> str:
        """A new message id; one in 8 ends in ``-b``: its turn also changes ``bot.rmw``."""
        self.sent += 1
        return f"c{self.number}-{self.sent}" + ("-b" if self.rng.random() < 0.125 else "")

    def acknowledge(self, message_id: str) -> None:
        self.tally.acked[(self.who.bot, self.who.user, self.who.thread)] += 1
        if message_id.endswith("-b"):
            self.tally.acked_rmw[self.who.bot] += 1

    async def new_message(self) -> None:
        message_id = self.next_id()
        replies = await self.converse(message_id)
        self.acknowledge(message_id)
        if not replies or not replies[0]["text"].startswith(f"{message_id} "):
            self.tally.fail(f"message {message_id} answered {replies!r}")
        self.last = (message_id, replies)

    async def resend(self, at_once: bool) -> None:
        """Send the last message again (twice at once when ``at_once``), same id.

        Not to the brief bot: its sessions end 2 s after their last message, and the ids
        a session remembers go with it (docs/memory.md, "Message ids").
        """
        if self.last is None or self.who.bot == "brief":
            return
        message_id, replies = self.last
        copies = 2 if at_once else 1
        answers = await asyncio.gather(*(self.converse(message_id) for _ in range(copies)))
        self.tally.duplicates_checked += copies
        for answer in answers:
            if answer != replies:
                self.tally.fail(f"message {message_id} ran again: {answer!r} != {replies!r}")

    async def new_pair_at_once(self) -> None:
        """Send a new message twice at the same time: it must run once."""
        if self.who.bot == "brief":
            return await self.new_message()
        message_id = self.next_id()
        first, second = await asyncio.gather(self.converse(message_id), self.converse(message_id))
        self.acknowledge(message_id)
        self.tally.duplicates_checked += 1
        if first != second:
            self.tally.fail(f"message {message_id} ran twice: {first!r} != {second!r}")
        self.last = (message_id, first)

    async def read_expiring(self) -> None:
        """Read memory and a KVS key: nothing whose expiry passed before the request."""
        who = self.who
        sent_at = time.time()
        response = await self.request(
            "GET",
            f"/api/v1/bots/{who.bot}/users/{who.user}/memory",
            params={"threadId": who.thread},
        )
        if response is not None:
            if response.status_code != 200:
                self.tally.fail(f"memory of {who}: {response.status_code} {response.text}")
            else:
                self.check_memory(response.json(), sent_at)
        if self.last is None:
            return
        key = f"tmp/{who.user}/{self.last[0]}"
        sent_at = time.time()
        response = await self.request("GET", f"/api/v1/bots/{who.bot}/kvs/{key}")
        if response is None or response.status_code == 404:
            return
        if response.status_code != 200:
            self.tally.fail(f"kvs {key}: {response.status_code} {response.text}")
            return
        self.tally.expiry_reads += 1
        expires_at = response.json()["expiresAt"]
        if expires_at is None or expires_at <= sent_at:
            self.tally.fail(f"kvs {key} read after its expiry {expires_at} (sent {sent_at})")

    def check_memory(self, memory: dict[str, Any], sent_at: float) -> None:
        for scope, variables in memory["scopes"].items():
            for name, variable in variables.items():
                self.tally.expiry_reads += 1
                expires_at = variable["expiresAt"]
                if expires_at is not None and expires_at <= sent_at:
                    self.tally.fail(f"{scope}.{name} of {self.who} read after its expiry")
        if memory["session"]["alive"] and memory["session"]["expiresAt"] <= sent_at:
            self.tally.fail(f"session of {self.who} read alive after its expiry")

    async def run(self, until: float) -> None:
        async with self.http:
            while time.monotonic() < until:
                await self.step()

    async def step(self) -> None:
        """Do one thing: a new message (mostly), a repeated id, or a read."""
        roll = self.rng.random()
        if roll < 0.80:
            await self.new_message()
        elif roll < 0.88:
            await self.resend(at_once=False)
        elif roll < 0.92:
            await self.resend(at_once=True)
        elif roll < 0.95:
            await self.new_pair_at_once()
        else:
            await self.read_expiring()


async def sample_rss(pid: int, tally: Tally, until: float) -> None:
    while time.monotonic() < until:
        tally.rss.append((time.monotonic(), rss_kib(pid)))
        await asyncio.sleep(0.5)


# -- the checks at the end ----------------------------------------------------------------


async def check_counters(http: httpx.AsyncClient, tally: Tally) -> None:
    """Every counter equals the acknowledged turns that touched it."""
    users: Counter[tuple[str, str]] = Counter()
    for (bot, user, thread), count in sorted(tally.acked.items()):
        users[(bot, user)] += count
        memory = (
            await http.get(f"/api/v1/bots/{bot}/users/{user}/memory", params={"threadId": thread})
        ).json()
        if bot == "soak":  # brief's sessions end every 2 s: their counts start over
            seen = memory["scopes"]["session"].get("count", {}).get("value")
            if seen != count:
                tally.fail(f"session count of {bot}/{user}/{thread}: {seen}, acknowledged {count}")
    for (bot, user), count in sorted(users.items()):
        memory = (await http.get(f"/api/v1/bots/{bot}/users/{user}/memory")).json()
        seen = memory["scopes"]["user"].get("count", {}).get("value")
        if seen != count:
            tally.fail(f"user count of {bot}/{user}: {seen}, acknowledged {count}")
        kvs = (await http.get(f"/api/v1/bots/{bot}/kvs/counters/user/{user}")).json()
        if kvs.get("value") != count:
            tally.fail(f"KVS count of {bot}/{user}: {kvs.get('value')}, acknowledged {count}")
    for bot in BOTS:
        count = sum(n for (b, _, _), n in tally.acked.items() if b == bot)
        memory = (await http.get(f"/api/v1/bots/{bot}/users/u0/memory")).json()["scopes"]["bot"]
        for name, expected in (("rmw", tally.acked_rmw[bot]), ("hits", count)):
            seen = memory.get(name, {}).get("value", 0)
            if seen != expected:
                tally.fail(f"bot.{name} of {bot}: {seen}, acknowledged {expected}")
        kvs = (await http.get(f"/api/v1/bots/{bot}/kvs/counters/all")).json()
        if kvs.get("value", 0) != count:
            tally.fail(f"KVS counters/all of {bot}: {kvs.get('value')}, acknowledged {count}")


async def check_janitor(http: httpx.AsyncClient, tally: Tally) -> int:
    """No janitor run failed; return how many runs the server remembers."""
    runs = (await http.get("/api/v1/janitor")).json()["runs"]
    for run in runs:
        if run["error"]:
            tally.fail(f"a janitor run failed: {run['error']}")
    return len(runs)


def check_rss(tally: Tally, started: float, ended: float, limit: float) -> tuple[int, int]:
    """Compare the peak RSS of the first and the last window (20 s, or a third)."""
    window = min(20.0, (ended - started) / 3)
    first = [kib for at, kib in tally.rss if at <= started + window]
    last = [kib for at, kib in tally.rss if at >= ended - window]
    if not first or not last:
        tally.fail("no RSS samples")
        return 0, 0
    before, after = max(first), max(last)
    if after > before * (1 + limit):
        tally.fail(f"server RSS grew from {before} KiB to {after} KiB (limit {limit:.0%})")
    return before, after


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


# -- one run ------------------------------------------------------------------------------


async def soak(backend: str, url: str | None, args: argparse.Namespace) -> bool:
    """Soak one backend; print the report; return whether every check held."""
    with tempfile.TemporaryDirectory(prefix="botmemory-soak-") as folder:
        data = Path(folder) / "data"
        write_data_folder(data)
        url = url or database_url(backend, data)
        try:
            return await soak_server(backend, data, url, args)
        finally:
            if not args.url:
                await drop_database(url)


async def soak_server(backend: str, data: Path, url: str, args: argparse.Namespace) -> bool:
    port = free_port()
    log = data.parent / "server.log"
    process = start_server(data, url, port, log)
    base = f"http://127.0.0.1:{port}"
    tally = Tally()
    try:
        await wait_until_up(base, process)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            clients = [Client(n, base, tally) for n in range(args.clients)]
            cpu_before = cpu_seconds(process.pid)
            started = time.monotonic()
            until = started + args.duration
            await asyncio.gather(
                sample_rss(process.pid, tally, until), *(c.run(until) for c in clients)
            )
            ended = time.monotonic()
            cpu = cpu_seconds(process.pid) - cpu_before
            requests = len(tally.latencies)
            # wait for the last expiries (2 s) and one janitor interval past them
            await asyncio.sleep(float(EXPIRY.rstrip("s")) + JANITOR_INTERVAL + 1.5)
            cutoff = time.time() - JANITOR_INTERVAL - 1.0
            overdue = await overdue_in_storage(url, cutoff)
            for kind, count in overdue.items():
                if count:
                    tally.fail(f"{count} {kind} records expired before {cutoff:.1f} still stored")
            await check_counters(http, tally)
            runs = await check_janitor(http, tally)
            rss = check_rss(tally, started, ended, args.rss_limit)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    if process.returncode != 0:
        tally.fail(f"the server exited with {process.returncode}")
    report(backend, tally, requests, ended - started, cpu, rss, runs, overdue)
    if tally.failures:
        sys.stdout.write("server log (last 40 lines):\n")
        sys.stdout.write("\n".join(log.read_text(errors="replace").splitlines()[-40:]) + "\n")
    return not tally.failures


def report(
    backend: str,
    tally: Tally,
    requests: int,
    seconds: float,
    cpu: float,
    rss: tuple[int, int],
    janitor_runs: int,
    overdue: dict[str, int],
) -> None:
    turns = sum(tally.acked.values())
    p50 = percentile(tally.latencies, 0.50) * 1000
    p99 = percentile(tally.latencies, 0.99) * 1000
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(tally.statuses.items()))
    lines = [
        f"{backend}: {requests:,} requests in {seconds:.1f} s = {requests / seconds:,.0f} req/s, "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; server CPU {cpu:.1f} s "
        f"({cpu / max(requests, 1) * 1000:.1f} ms a request)",
        f"  {turns:,} acknowledged turns, {tally.duplicates_checked:,} repeated ids checked, "
        f"{tally.expiry_reads:,} expiring values read; statuses {statuses}",
        f"  janitor runs remembered: {janitor_runs}; overdue in storage at the end: "
        f"{sum(overdue.values())}; RSS first window {rss[0]:,} KiB, last {rss[1]:,} KiB",
        f"  {'FAILED' if tally.failures else 'ok'}",
    ]
    lines += [f"  - {failure}" for failure in tally.failures[:30]]
    if len(tally.failures) > 30:
        lines.append(f"  ... and {len(tally.failures) - 30} more")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=("sqlite", "postgres", "redis"))
    parser.add_argument("--url", help="database URL (one backend only); kept afterwards")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rss-limit", type=float, default=0.10, help="allowed RSS growth")
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgres", "redis"]
    if args.url and len(backends) != 1:
        parser.error("--url needs exactly one --backend")
    ok = True
    for backend in backends:
        ok = asyncio.run(soak(backend, args.url, args)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
