"""Real servers for the end-to-end tests.

:class:`LiveServer`: uvicorn on a free loopback port, in a thread with its own event loop.
The engine is built inside that loop (from a data folder, with an injected clock), so the
test thread only moves the clock and talks HTTP. :func:`serving`: ``botmemory serve`` as
a separate process, as a user runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx
import uvicorn

from botmemory import ManualClock
from botmemory.dialog import DialogEngine
from botmemory.server import create_app
from botmemory.server.drain import server_class

__all__ = ["LiveServer", "Served", "free_port", "serving"]


class LiveServer:
    """Serve a data folder at ``self.url`` until the ``with`` block ends."""

    def __init__(
        self,
        data_dir: Path,
        clock: ManualClock,
        *,
        run_janitor: bool = False,
        reload: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.run_janitor = run_janitor
        self.reload = reload
        self.engine: DialogEngine | None = None
        self._server: uvicorn.Server | None = None
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)
        self._error: BaseException | None = None
        self.janitor_ran_at_start = False

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by __enter__ or __exit__
            self._error = exc

    async def _serve(self) -> None:
        self.engine = await DialogEngine.from_data_dir(self.data_dir, self.clock)
        try:
            app = create_app(self.engine, run_janitor=self.run_janitor, reload=self.reload)
            config = uvicorn.Config(app, log_level="warning", lifespan="on")
            self._server = server_class(uvicorn.Server)(config)
            await self._server.serve(sockets=[self._socket])
        finally:
            await self.engine.close()

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not (self._server is not None and self._server.started):
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the server did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 30 s")
            time.sleep(0.02)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()
        if self._error is not None and exc is None:
            raise RuntimeError(f"the server failed: {self._error!r}") from self._error


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """A ``botmemory serve`` process: its URL, and its output once it stopped."""

    url: str
    process: subprocess.Popen[str]
    output: str = ""


@contextlib.contextmanager
def running(
    command: list[str], port: int, env: Mapping[str, str] | None = None, *, own_group: bool = False
) -> Iterator[Served]:
    """Run a server process that listens on ``port`` until ``/readyz`` answers; stop it
    with SIGTERM on exit (unless it stopped already), and check it ended with status 0.
    With ``own_group``, the process leads its own process group (as a terminal's job)."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=own_group,
    )
    served = Served(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{served.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)  # polls a real process starting up: no clock to move
        yield served
    finally:
        process.send_signal(signal.SIGTERM)  # nothing if it stopped already
        served.output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, served.output


@contextlib.contextmanager
def serving(
    data: Path, *args: str, env: Mapping[str, str] | None = None, own_group: bool = False
) -> Iterator[Served]:
    """Run ``botmemory serve`` on ``data`` (see :func:`running`)."""
    port = free_port()
    code = "import sys; from botmemory.cli.serve import serve; serve(prog_name='botmemory serve')"
    command = [sys.executable, "-c", code, str(data), "--port", str(port)]
    command += ["--log-level", "warning", *args]
    env = {"BOTMEMORY_DATABASE_URL": "", **(env or {})}
    with running(command, port, env, own_group=own_group) as served:
        yield served
