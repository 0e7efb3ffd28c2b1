"""Draining: a stopping server finishes what it started and turns new requests away.

:class:`DrainGuard` is the outermost middleware of the app. It counts the HTTP requests
in progress in the app's :class:`Drain`. Once :meth:`Drain.start` was called
(``botmemory serve`` calls it on SIGTERM or Ctrl-C), every new request is answered 503
with ``Retry-After`` and ``Connection: close`` (a load balancer sends it elsewhere),
except ``/healthz``: the process is alive until it exits. The push streams (server-sent
events) end as the drain starts. The server stops once nothing is in progress, or when
its grace is over.

:func:`server_class` is the uvicorn server that does this on a signal, for
``botmemory serve`` and for each worker of ``botmemory serve --workers``.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from starlette.types import ASGIApp, Receive, Scope, Send

from botmemory.durations import Seconds, parse_duration
from botmemory.server.errors import error_response

if TYPE_CHECKING:
    import uvicorn

    from botmemory.server.state import ServerState

__all__ = ["DRAIN_GRACE", "Drain", "DrainGuard", "server_class"]

DRAIN_GRACE: Final = parse_duration("30s")
"""How long a stopping server lets requests in progress finish (``serve --grace``)."""
_ALIVE = "/healthz"
_STOPS: Final = (signal.SIGINT, signal.SIGTERM)


class Drain:
    """What a draining server needs to know: requests in progress, and whether to refuse."""

    def __init__(self) -> None:
        self.in_progress = 0
        self.draining = False

    def start(self) -> None:
        """From now on, refuse new requests (in progress ones finish)."""
        self.draining = True

    @property
    def idle(self) -> bool:
        """Whether no request is in progress."""
        return self.in_progress == 0


class DrainGuard:
    """ASGI middleware: counts requests in progress in ``drain``, refuses new ones once
    it drains."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        drain = self.drain
        if drain.draining and scope["path"] != _ALIVE:
            response = error_response(503, "the server is stopping: send this request again")
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        drain.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            drain.in_progress -= 1


def server_class(
    base: type[uvicorn.Server], grace: Seconds = DRAIN_GRACE, *, supervised: bool = False
) -> type[uvicorn.Server]:
    """uvicorn's server that drains on SIGTERM or Ctrl-C, ends the push streams when it
    stops, and does not re-raise the signal once it has stopped.

    Draining: new requests are answered 503 while those in progress finish, for
    ``grace`` at most; then the server stops. A second signal stops it at once.

    A ``supervised`` server (a worker of ``serve --workers``) drains on SIGTERM, however
    many come (its supervisor passes one on, and a service manager may signal the whole
    process group too), stops at once on SIGQUIT (the supervisor's second signal), and
    ignores Ctrl-C, which reaches the whole process group and which the supervisor
    passes on.

    uvicorn re-raises the signal after a graceful shutdown, which would kill the process
    before the engine is closed (and make Ctrl-C an error): here both simply stop it.
    """

    class Server(base):  # type: ignore[misc,valid-type]
        _drain_until = 0.0

        def _state(self) -> ServerState | None:
            return app_state(self.config.app)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            """The first signal drains; a second one stops at once (supervised: SIGTERM
            drains, SIGQUIT stops)."""
            state = self._state()
            drain = None if state is None else state.drain
            if supervised and sig == signal.SIGTERM and drain is not None and drain.draining:
                return  # the same stop, heard twice
            stop_now = supervised and sig == signal.SIGQUIT
            if stop_now or drain is None or drain.draining or self.should_exit:  # type: ignore[has-type]
                super().handle_exit(sig, frame)
                return
            drain.start()
            self._drain_until = time.monotonic() + grace

        async def on_tick(self, counter: int) -> bool:
            state = self._state()
            drain = None if state is None else state.drain
            if state is not None and drain is not None and drain.draining:
                # the push streams end as the drain starts (a client's EventSource
                # reconnects, elsewhere): they are no work in progress to wait for
                state.events.close()
                if not self.should_exit:  # type: ignore[has-type]
                    self.should_exit = drain.idle or time.monotonic() >= self._drain_until
            return bool(await super().on_tick(counter))

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            state = self._state()
            if state is not None:  # end the push streams, else stopping waits for them
                state.events.close()
            await super().shutdown(sockets)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGTERM, signal.SIGQUIT) if supervised else _STOPS
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            if supervised:
                previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server


def app_state(app: Any) -> ServerState | None:
    """The botmemory state of a served app (``create_app``'s, or the ASGI module's once
    started), or None."""
    return getattr(getattr(app, "state", None), "botmemory", None)
