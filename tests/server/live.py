"""A real uvicorn server on a free loopback port, in a thread with its own event loop.

The engine is built inside that loop (from a data folder, with an injected clock), so
the test thread only moves the clock and talks HTTP.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn

from botmemory import ManualClock
from botmemory.dialog import DialogEngine
from botmemory.server import create_app

__all__ = ["LiveServer"]


class LiveServer:
    """Serve a data folder at ``self.url`` until the ``with`` block ends."""

    def __init__(self, data_dir: Path, clock: ManualClock, *, run_janitor: bool = False) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.run_janitor = run_janitor
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
            app = create_app(self.engine, run_janitor=self.run_janitor)
            config = uvicorn.Config(app, log_level="warning", lifespan="on")
            self._server = uvicorn.Server(config)
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
