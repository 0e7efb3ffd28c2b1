"""``botmemory serve --workers N``: several server processes on one port.

This process supervises N workers on the port ``serve`` took. Each worker serves
``botmemory.server.asgi``'s app with the same draining server as a single ``serve``, and
opens the data folder itself (its own database connection); turns of all of them are
as exact as one's, and one janitor runs at a time. The workers count their metrics in
one folder (``PROMETHEUS_MULTIPROC_DIR``, a temporary folder unless you set one), so
that ``/metrics`` answers for the whole server.

Stopping: the first SIGTERM or Ctrl-C drains every worker (requests in progress finish
for up to ``--grace``, new ones get 503); a second one stops them at once. Workers drain
on SIGTERM, which they may get twice (from this process and from a service manager that
signals the whole group) and stop at once on SIGQUIT; they ignore Ctrl-C, which this
process passes on. A worker that dies is replaced, after a wait that grows while
replacements die soon after their start; one that cannot start at first stops the
server. A worker that leaves the supervisor's heartbeat unanswered for 10 s (stopped,
stuck) is killed, which frees its connections and locks, and replaced.

No worker outlives this process, however it ends (SIGKILL skips every cleanup): a worker
sees it gone when its end of the heartbeat pipe closes, which the system does, and
drains as on SIGTERM; one whose drain has not ended 10 s after its grace kills itself.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Final

import click

from botmemory.durations import Seconds

if TYPE_CHECKING:
    import uvicorn

__all__ = ["serve_workers"]

_SPAWN: Final = multiprocessing.get_context("spawn")
_TICK: Final = 0.2
"""Seconds between two looks at the workers."""
_STARTUP_FAILURE: Final = 3
"""The status of a uvicorn server whose app failed to start."""
_QUICK_DEATH: Final = 10.0
"""A worker that dies sooner than this after its start is replaced after a wait..."""
_BACKOFF_FIRST: Final = 0.5
_BACKOFF_MAX: Final = 30.0
"""...which doubles with each such death in a row, from 0.5 s up to 30 s."""
_HEARTBEAT: Final = 5.0
"""Seconds between two questions to a worker: are you there?"""
_HEARTBEAT_TIMEOUT: Final = 10.0
"""A worker that leaves a question this long unanswered (stopped, stuck) is killed."""


@dataclass(frozen=True)
class _Worker:
    """What a worker process runs: the draining server on the shared listener."""

    config: uvicorn.Config
    grace: Seconds

    def __call__(self, listener: socket.socket, heartbeat: Connection) -> None:
        import uvicorn

        from botmemory.server.drain import server_class

        threading.Thread(target=_answer, args=(heartbeat, self.grace), daemon=True).start()
        self.config.configure_logging()
        server = server_class(uvicorn.Server, self.grace, supervised=True)(self.config)
        server.run(sockets=[listener])
        if not server.started:  # uvicorn before 0.53 returns, instead of exiting so
            sys.exit(_STARTUP_FAILURE)


def _answer(heartbeat: Connection, grace: Seconds) -> None:
    """Answer the supervisor's questions, from a thread of the worker, until it is gone;
    then stop the worker, which nothing else would stop.

    While the worker runs, the supervisor's end of the pipe closes only when the
    supervisor exits, and it waits for its workers first: an end of file here means it
    died without its cleanup (SIGKILL). The worker then drains as on the supervisor's
    SIGTERM (one already draining goes on), and kills itself if that has not ended
    ``_HEARTBEAT_TIMEOUT`` after its grace (its event loop stuck): a second signal would
    have stopped it, and none will come.
    """
    try:
        while True:
            heartbeat.recv()
            heartbeat.send(b"!")
    except (EOFError, OSError):
        pass
    os.kill(os.getpid(), signal.SIGTERM)  # before the server started: stops it at once
    deadline = time.monotonic() + grace + _HEARTBEAT_TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, _HEARTBEAT))  # bounded: a grace may be 1000 years long
    os.kill(os.getpid(), signal.SIGKILL)


class _Heartbeat:
    """The supervisor's side: a question every ``_HEARTBEAT`` seconds, and its answer."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.asked_at: float | None = None
        self.next_at = time.monotonic() + _HEARTBEAT

    def stalled(self, now: float) -> bool:
        """Ask, or read the answer; True once a question went unanswered too long."""
        try:
            if self.asked_at is None:
                if now >= self.next_at:
                    self.conn.send(b"?")
                    self.asked_at = now
            elif self.conn.poll():
                self.conn.recv()
                self.asked_at, self.next_at = None, now + _HEARTBEAT
            elif now - self.asked_at > _HEARTBEAT_TIMEOUT:
                return True
        except (EOFError, OSError):
            pass  # the worker is gone: its exit code tells the rest
        return False


def serve_workers(
    data_dir: str, listener: socket.socket, workers: int, log_level: str, grace: Seconds
) -> bool:
    """Run ``workers`` processes serving ``data_dir`` on ``listener`` until stopped; False
    if a worker could not start."""
    import uvicorn

    from botmemory.server.asgi import DATA_DIR_ENV, app
    from botmemory.server.metrics import MULTIPROCESS_ENV
    from botmemory.server.stack import server_stack

    os.environ[DATA_DIR_ENV] = str(Path(data_dir).resolve())
    own_metrics = not os.environ.get(MULTIPROCESS_ENV)
    if own_metrics:
        os.environ[MULTIPROCESS_ENV] = tempfile.mkdtemp(prefix="botmemory-metrics-")
    stack = server_stack()
    config = uvicorn.Config(
        app,
        log_level=log_level,
        server_header=False,
        lifespan="on",
        loop=stack.loop,
        http=stack.http,
        timeout_graceful_shutdown=1,  # what the drain's grace left running
    )
    host, port = listener.getsockname()[:2]
    click.echo(f"botmemory: serving with {workers} workers at http://{host}:{port}/ (API: /docs)")
    try:
        started = _Supervisor(_Worker(config, grace), listener, workers).run()
    finally:
        if own_metrics:
            shutil.rmtree(os.environ.pop(MULTIPROCESS_ENV), ignore_errors=True)
    click.echo("botmemory: stopped")
    return started


@dataclass
class _Slot:
    """One worker's place: its process, and how its restarts have gone."""

    process: SpawnProcess
    heartbeat: _Heartbeat
    started_at: float
    first: bool = True
    """Still the worker started with the server (not a replacement)."""
    quick_deaths: int = 0
    """Deaths in a row, each soon after its start."""
    restart_at: float | None = None
    """When to start a replacement (``monotonic``), once it died."""
    told: int = 0
    """How many of the supervisor's signals its process was given."""


class _Supervisor:
    """Keeps ``count`` workers running until a signal. The first SIGTERM or Ctrl-C
    reaches them as SIGTERM (drain), any later one as SIGQUIT (stop at once)."""

    def __init__(self, worker: _Worker, listener: socket.socket, count: int) -> None:
        self.worker = worker
        self.listener = listener
        self.count = count
        self.slots: list[_Slot] = []
        self.signals = 0
        self.failed = False

    def _start(self) -> tuple[SpawnProcess, _Heartbeat]:
        ours, theirs = _SPAWN.Pipe()
        process = _SPAWN.Process(target=self.worker, args=(self.listener, theirs), daemon=False)
        process.start()
        theirs.close()
        return process, _Heartbeat(ours)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.signals += 1
        self._pass_on()

    def _pass_on(self) -> None:
        """Give each worker the signals it has not had (also one started meanwhile)."""
        for slot in self.slots:
            process = slot.process
            if slot.told < self.signals and process.pid is not None and process.exitcode is None:
                slot.told = self.signals
                os.kill(process.pid, signal.SIGTERM if self.signals == 1 else signal.SIGQUIT)

    def run(self) -> bool:
        """Supervise until every worker stopped; False if one failed to start."""
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            for _ in range(self.count):
                self.slots.append(_Slot(*self._start(), time.monotonic()))
            while True:
                self._kill_stalled()
                if not self.signals:
                    self._replace_dead()
                self._pass_on()
                if all(slot.process.exitcode is not None for slot in self.slots):
                    break
                time.sleep(_TICK)  # a signal runs its handler during the sleep
        except BaseException:  # no worker outlives its supervisor
            self.signals = max(self.signals, 1) + 1
            self._pass_on()
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for slot in self.slots:
                slot.process.join()
        return not self.failed

    def _replace_dead(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.process.exitcode is None:
                continue
            if slot.restart_at is None and not self._died(slot, now):
                return
            if slot.restart_at is not None and now >= slot.restart_at:
                slot.heartbeat.conn.close()
                slot.process, slot.heartbeat = self._start()
                slot.started_at = time.monotonic()
                slot.first, slot.restart_at, slot.told = False, None, 0

    def _kill_stalled(self) -> None:
        """Kill a worker that no longer answers (stopped, stuck): its death replaces it,
        and frees what it held (its connections, its locks)."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.process.exitcode is None and slot.heartbeat.stalled(now):
                click.echo(
                    f"botmemory: worker {slot.process.pid} did not answer for "
                    f"{_HEARTBEAT_TIMEOUT:.0f}s: killed",
                    err=True,
                )
                slot.process.kill()
                slot.process.join()

    def _died(self, slot: _Slot, now: float) -> bool:
        """Plan the replacement of ``slot``'s dead worker; False if the server must stop
        instead (the first worker of a slot could not start: the app cannot)."""
        process = slot.process
        if process.exitcode == _STARTUP_FAILURE and slot.first:
            click.echo(f"botmemory: worker {process.pid} could not start: stopping", err=True)
            self.failed = True
            self._on_signal(signal.SIGTERM, None)
            return False
        quick = now - slot.started_at < _QUICK_DEATH
        slot.quick_deaths = slot.quick_deaths + 1 if quick else 0
        delay = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (slot.quick_deaths - 1)) if quick else 0
        slot.restart_at = now + delay
        click.echo(
            f"botmemory: worker {process.pid} stopped ({process.exitcode}): "
            f"a new one starts in {delay:.1f}s"
        )
        return True
