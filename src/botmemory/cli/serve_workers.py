"""``botmemory serve --workers N``: several server processes on one port.

This process supervises N workers on the port ``serve`` took. Each worker serves
``botmemory.server.asgi``'s app with the same draining server as a single ``serve``, and
opens the data folder itself (its own database connection); turns of all of them are
as exact as one's, and one janitor runs at a time. The workers count their metrics in
one folder (``PROMETHEUS_MULTIPROC_DIR``, a temporary folder unless you set one), so
that ``/metrics`` answers for the whole server.

Stopping: the first SIGTERM or Ctrl-C drains every worker (requests in progress finish
for up to ``--grace``, new ones get 503); a second one stops them at once. A worker that
dies is replaced; one that cannot start stops the server.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Worker:
    """What a worker process runs: the draining server on the shared listener."""

    config: uvicorn.Config
    grace: Seconds

    def __call__(self, listener: socket.socket) -> None:
        import uvicorn

        from botmemory.server.drain import server_class

        self.config.configure_logging()
        server = server_class(uvicorn.Server, self.grace, supervised=True)(self.config)
        server.run(sockets=[listener])


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


class _Supervisor:
    """Keeps ``count`` workers running until a signal; passes each signal on as SIGTERM."""

    def __init__(self, worker: _Worker, listener: socket.socket, count: int) -> None:
        self.worker = worker
        self.listener = listener
        self.count = count
        self.processes: list[SpawnProcess] = []
        self.signals = 0
        self.failed = False

    def _start(self) -> SpawnProcess:
        process = _SPAWN.Process(target=self.worker, args=(self.listener,), daemon=False)
        process.start()
        return process

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.signals += 1
        self._stop_workers()

    def _stop_workers(self) -> None:
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGTERM)

    def run(self) -> bool:
        """Supervise until every worker stopped; False if one failed to start."""
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            self.processes = [self._start() for _ in range(self.count)]
            if self.signals:  # one came while they started
                self._stop_workers()
            while True:
                if not self.signals:
                    self._replace_dead()
                if all(process.exitcode is not None for process in self.processes):
                    break
                time.sleep(_TICK)  # a signal runs its handler during the sleep
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        for process in self.processes:
            process.join()
        return not self.failed

    def _replace_dead(self) -> None:
        for index, process in enumerate(self.processes):
            if process.exitcode is None:
                continue
            if process.exitcode == _STARTUP_FAILURE:
                click.echo(f"botmemory: worker {process.pid} could not start: stopping", err=True)
                self.failed = True
                self.signals += 1
                self._stop_workers()
                return
            click.echo(f"botmemory: worker {process.pid} stopped ({process.exitcode}): replaced")
            self.processes[index] = self._start()
