"""A stopping ``botmemory serve`` drains: what it started finishes, new requests get 503;
with ``--workers``, every worker does, and the supervisor keeps them running until then.

Real server processes; the echo bot gets a hook that holds a message named ``slow``
until the test lets it go (a marker file), so a request is in progress for sure when
the signal arrives. Waiting on real processes and files is the only waiting here.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import ADMIN, CONFIG, bearer, write_data_dir
from tests.server.live import Served, free_port, serving

WITHIN = 60.0
ORPHANS_STOP = 10.0
"""Seconds the workers of a killed supervisor get to stop (they stop within about one)."""
SLOW_HOOK = """
import asyncio
import contextlib
import os
from pathlib import Path


async def hook(event, state, kvs):
    if event is not None and event.text == "slow":
        folder = Path(os.environ["BOTMEMORY_DRAIN_TEST"])
        (folder / "started").write_text("1")
        for _ in range(1200):
            if (folder / "go").exists():
                return
            await asyncio.sleep(0.05)
"""


def wait_for(check: Callable[[], bool], what: str, within: float = WITHIN) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {within}s"
        time.sleep(0.05)  # a real process working


@dataclass
class Held:
    """A served data folder whose echo bot holds a ``slow`` message until :meth:`release`."""

    served: Served
    folder: Path
    answers: list[httpx.Response | Exception]
    sender: threading.Thread

    def release(self) -> None:
        (self.folder / "go").write_text("1")
        self.sender.join(WITHIN)

    def answer(self) -> httpx.Response | Exception:
        return self.answers[0]


def slow_data_dir(tmp_path: Path) -> Path:
    data = write_data_dir(tmp_path / "data", CONFIG)
    hooks = data / "bots" / "echo" / "hooks" / "before_incoming"
    hooks.mkdir(parents=True)
    (hooks / "slow.py").write_text(SLOW_HOOK)
    return data


@contextlib.contextmanager
def holding(tmp_path: Path, *args: str, own_group: bool = False) -> Iterator[Held]:
    """Serve with ``args``, and hold one ``slow`` request in progress."""
    env = {"BOTMEMORY_DRAIN_TEST": str(tmp_path)}
    with serving(slow_data_dir(tmp_path), *args, env=env, own_group=own_group) as served:
        answers: list[httpx.Response | Exception] = []

        def slow() -> None:
            try:
                answers.append(
                    httpx.post(f"{served.url}/api/v1/bots/echo/converse/u1",
                               json={"text": "slow"}, timeout=WITHIN)
                )  # fmt: skip
            except httpx.HTTPError as exc:
                answers.append(exc)

        sender = threading.Thread(target=slow)
        sender.start()
        held = Held(served, tmp_path, answers, sender)
        try:
            wait_for((tmp_path / "started").exists, "the slow request's start")
            yield held
        finally:
            held.release()


def assert_draining(served: Served) -> None:
    """New requests get 503 (each one on a new connection); alive still.

    With several workers, those with nothing in progress stop at once (a connection one
    accepts as it stops is closed unanswered, as with any server that stops): the test
    waits until only the worker holding the request is left.
    """
    if worker_pids(served.process.pid):
        wait_for(lambda: len(worker_pids(served.process.pid)) == 1, "the idle worker's stop")
    with httpx.Client(base_url=served.url, headers=bearer(ADMIN), timeout=10) as http:
        wait_for(lambda: http.get("/readyz").status_code == 503, "the drain")
    for user in ("u2", "u3"):
        with httpx.Client(base_url=served.url, headers=bearer(ADMIN), timeout=10) as http:
            refused = http.post(f"/api/v1/bots/echo/converse/{user}", json={"text": "hi"})
            assert refused.status_code == 503
            assert refused.headers["Retry-After"] == "5"
            assert http.get("/healthz").status_code == 200  # alive until it exits


def assert_echoed(answer: httpx.Response | Exception) -> None:
    assert isinstance(answer, httpx.Response), answer
    assert answer.status_code == 200
    assert answer.json()["responses"] == [{"type": "text", "text": "echo: slow"}]


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("grace", ["30s", "3s"])
def test_sigterm_finishes_requests_in_progress_and_refuses_new_ones(
    tmp_path: Path, grace: str, workers: str
) -> None:
    with holding(tmp_path, "--grace", grace, "--workers", workers) as held:
        server = held.served.process
        server.send_signal(signal.SIGTERM)
        assert_draining(held.served)
        if grace == "30s":
            held.release()
            assert_echoed(held.answer())
        else:  # the grace ends first: the request in progress is cut off, then it stops
            held.sender.join(WITHIN)
        assert server.wait(timeout=WITHIN) == 0


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c-on-a-terminal", "a-service-manager"]
)
def test_a_signal_to_the_whole_group_drains_the_workers_once(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """A terminal's Ctrl-C, and a service manager's SIGTERM (systemd's default), reach
    every process of the group: a worker must not take what its supervisor passes on as
    a second signal, which would stop it at once."""
    with holding(tmp_path, "--workers", "2", own_group=True) as held:
        server = held.served.process
        os.killpg(server.pid, sig)
        assert_draining(held.served)
        assert server.poll() is None  # still draining: the request is held
        held.release()
        assert_echoed(held.answer())
        assert server.wait(timeout=WITHIN) == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_signal_stops_at_once(tmp_path: Path, workers: str) -> None:
    with holding(tmp_path, "--grace", "10m", "--workers", workers) as held:
        server = held.served.process
        server.send_signal(signal.SIGTERM)
        assert_draining(held.served)
        server.send_signal(signal.SIGTERM)
        # within WITHIN, far less than the 10 minutes of grace: the held request is cut off
        assert server.wait(timeout=WITHIN) == 0
        held.sender.join(WITHIN)
        cut_off = held.answer()
        assert not isinstance(cut_off, httpx.Response) or cut_off.status_code == 500
    with serving(tmp_path / "data") as served:  # the cut-off turn stored nothing
        answer = httpx.get(
            f"{served.url}/api/v1/bots/echo/users/u1/memory", headers=bearer(ADMIN), timeout=10
        )
        assert answer.json()["scopes"]["session"] == {}


def worker_pids(supervisor: int) -> set[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return {int(pid) for pid in children if b"spawn_main" in command_line(int(pid))}


def opened(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open."""
    try:
        return any(fd.resolve() == path.resolve() for fd in Path(f"/proc/{pid}/fd").iterdir())
    except (FileNotFoundError, PermissionError):  # the process or a descriptor just ended
        return False


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:  # it just ended
        return b""


def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data", CONFIG)
    with serving(data, "--workers", "2") as served:
        supervisor = served.process.pid
        wait_for(lambda: len(worker_pids(supervisor)) == 2, "two workers")
        first = worker_pids(supervisor)
        killed = min(first)
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: len(worker_pids(supervisor) - first) == 1, "a new worker")
        assert killed not in worker_pids(supervisor)
        for i in range(6):  # new connections: both workers answer
            with httpx.Client(base_url=served.url, headers=bearer(ADMIN), timeout=10) as http:
                wait_for(lambda: http.get("/readyz").status_code == 200, "the new worker")
                answer = http.post("/api/v1/bots/echo/converse/u1", json={"text": f"m{i}"})
                assert answer.json()["responses"] == [{"type": "text", "text": f"echo: m{i}"}]
    # 0.5s if it died young, within 10s of its start (a loaded machine may start slower)
    assert re.search(r"stopped \(-9\): a new one starts in (0\.5|0\.0)s", served.output)
    assert "Exception in 'lifespan'" not in served.output  # each worker closed cleanly


def test_a_stopped_worker_is_killed_and_replaced(tmp_path: Path) -> None:
    """SIGSTOP freezes a worker (its heartbeat thread too): the supervisor kills it once
    its question goes unanswered, which frees what it held, and starts another."""
    data = write_data_dir(tmp_path / "data", CONFIG)
    with serving(data, "--workers", "2") as served:
        supervisor = served.process.pid
        wait_for(lambda: len(worker_pids(supervisor)) == 2, "two workers")
        first = worker_pids(supervisor)
        stopped = min(first)
        os.kill(stopped, signal.SIGSTOP)
        wait_for(lambda: stopped not in worker_pids(supervisor), "the stopped worker's end")
        wait_for(lambda: len(worker_pids(supervisor) - first) == 1, "a new worker")
        for i in range(4):
            with httpx.Client(base_url=served.url, headers=bearer(ADMIN), timeout=10) as http:
                answer = http.post("/api/v1/bots/echo/converse/u1", json={"text": f"m{i}"})
                assert answer.status_code == 200
    assert f"worker {stopped} did not answer for 10s: killed" in served.output


def test_workers_dying_young_are_replaced_ever_more_slowly(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data", CONFIG)
    with serving(data, "--workers", "2") as served:
        supervisor = served.process.pid
        wait_for(lambda: len(worker_pids(supervisor)) == 2, "two workers")
        target = min(worker_pids(supervisor))
        for _ in range(3):  # the same slot each time: its replacement, killed as it starts
            before = worker_pids(supervisor)
            os.kill(target, signal.SIGKILL)
            wait_for(lambda: len(worker_pids(supervisor) - before) == 1, "a new worker")  # noqa: B023
            (target,) = worker_pids(supervisor) - before
    waits = re.findall(r"stopped \(-9\): a new one starts in ([0-9.]+)s", served.output)
    assert len(waits) == 3
    first, second, third = (float(w) for w in waits)  # the first is 0.0 if it died old
    assert (second, third) == (1.0, 2.0) if first else (second, third) == (0.5, 1.0)


def test_a_replacement_that_cannot_start_waits_and_the_others_serve_on(tmp_path: Path) -> None:
    """After the start, a replacement that fails to start (here: a broken configuration
    edit) does not stop the server: the other worker serves, and the slot is tried again
    until the configuration is fixed."""
    data = write_data_dir(tmp_path / "data", CONFIG)
    config = data / "global" / "botmemory.config.json"
    good = config.read_text()
    with serving(data, "--workers", "2") as served:
        supervisor = served.process.pid
        wait_for(lambda: len(worker_pids(supervisor)) == 2, "two workers")
        survivor, killed = sorted(worker_pids(supervisor))
        # both have read the configuration (else the one still starting fails on the edit)
        wait_for(lambda: all(opened(pid, data / "memory.db") for pid in (survivor, killed)),
                 "both workers' start")  # fmt: skip
        config.write_text("{ broken")
        os.kill(killed, signal.SIGKILL)
        seen: set[int] = set()

        def failed_replacement() -> bool:
            now = worker_pids(supervisor) - {survivor}
            gone = seen - now - {killed}
            seen.update(now)
            return bool(gone)

        wait_for(failed_replacement, "a replacement failing to start")
        for i in range(4):  # the survivor serves meanwhile
            with httpx.Client(base_url=served.url, headers=bearer(ADMIN), timeout=10) as http:
                answer = http.post("/api/v1/bots/echo/converse/u1", json={"text": f"m{i}"})
                assert answer.status_code == 200
        config.write_text(good)
        wait_for(lambda: len(worker_pids(supervisor)) == 2, "the slot's worker back")
    assert "could not start: stopping" not in served.output
    assert "stopped (3): a new one starts in" in served.output


def test_a_worker_that_cannot_start_stops_the_server(tmp_path: Path) -> None:
    """The folder is fine but its database cannot be reached: each worker's start fails,
    and the supervisor stops with status 1 instead of starting workers forever."""
    data = write_data_dir(tmp_path / "data", CONFIG)
    code = "from botmemory.cli.serve import serve; serve(prog_name='botmemory serve')"
    command = [sys.executable, "-c", code, str(data), "--port", str(free_port())]
    env = {**os.environ, "BOTMEMORY_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"}
    done = subprocess.run(
        [*command, "--workers", "2"], capture_output=True, text=True, env=env, timeout=WITHIN
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "could not start: stopping" in done.stderr


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    """SIGKILL skips the supervisor's cleanup: its workers see it gone all the same (their
    end of its heartbeat pipe closes), drain and stop. None keeps serving the port, nor
    the data folder, with nothing left to stop it."""
    data = write_data_dir(tmp_path / "data", CONFIG)
    port = free_port()
    code = "from botmemory.cli.serve import serve; serve(prog_name='botmemory serve')"
    command = [sys.executable, "-c", code, str(data), "--port", str(port), "--workers", "2"]
    env = {**os.environ, "BOTMEMORY_DATABASE_URL": ""}
    log = tmp_path / "serve.log"
    children: dict[int, str] = {}
    with log.open("w") as output:
        supervisor = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: ready(port) or supervisor.poll() is not None, "the server's start")
        assert supervisor.poll() is None, log.read_text()
        wait_for(lambda: len(worker_pids(supervisor.pid)) == 2, "two workers")
        # the workers, and multiprocessing's resource tracker: none may outlive it
        children = {pid: started_at(pid) for pid in child_pids(supervisor.pid)}
        supervisor.kill()
        assert supervisor.wait(timeout=WITHIN) == -signal.SIGKILL
        wait_for(lambda: not any(alive(pid, at) for pid, at in children.items()),
                 "the workers' stop", within=ORPHANS_STOP)  # fmt: skip
        wait_for(lambda: not accepts(port), "the port's close", within=ORPHANS_STOP)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(timeout=WITHIN)
        for pid, at in children.items():
            if alive(pid, at):
                os.kill(pid, signal.SIGKILL)
    assert "Traceback" not in log.read_text()  # they stopped as on SIGTERM


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def accepts(port: int) -> bool:
    """Whether something accepts connections on ``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def child_pids(pid: int) -> set[int]:
    """All the child processes of ``pid``, whichever of its threads started them."""
    return {
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    }


def started_at(pid: int) -> str:
    """When ``pid`` started (its identity with its pid: a pid is reused), or "" if it ended."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ""
    return stat.rpartition(")")[2].split()[19]


def alive(pid: int, at: str) -> bool:
    """Whether process ``pid``, started ``at``, still runs (a zombie waiting for a parent
    that reaps it has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    fields = stat.rpartition(")")[2].split()
    return fields[0] != "Z" and fields[19] == at


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_open_event_stream_does_not_hold_up_the_stop(tmp_path: Path, workers: str) -> None:
    """A web page keeps a push stream open: it ends as the drain starts, so a server with
    nothing else in progress stops at once, not at the end of its grace."""
    data = write_data_dir(tmp_path / "data", CONFIG)
    with serving(data, "--grace", "10m", "--workers", workers) as served:
        ended: list[float] = []

        def listen() -> None:
            url = f"{served.url}/api/v1/bots/echo/users/u1/events"
            with httpx.stream("GET", url, headers=bearer(ADMIN), timeout=WITHIN) as stream:
                opened.set()
                for _ in stream.iter_lines():
                    pass
            ended.append(time.monotonic())

        opened = threading.Event()
        listener = threading.Thread(target=listen)
        listener.start()
        assert opened.wait(WITHIN)
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=WITHIN) == 0  # far less than the 10 minutes
        listener.join(WITHIN)
        assert ended  # the stream ended, cleanly
