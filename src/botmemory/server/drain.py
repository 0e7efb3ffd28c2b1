"""Draining: a stopping server finishes what it started and turns new requests away.

:class:`DrainGuard` is the outermost middleware of the app. It counts the HTTP requests
in progress in the app's :class:`Drain`. Once :meth:`Drain.start` was called
(``botmemory serve`` calls it on SIGTERM or Ctrl-C), every new request is answered 503
with ``Retry-After`` and ``Connection: close`` (a load balancer sends it elsewhere),
except ``/healthz``: the process is alive until it exits. The server stops once nothing
is in progress, or when its grace is over.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from botmemory.server.errors import error_response

__all__ = ["Drain", "DrainGuard"]

_ALIVE = "/healthz"


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
