"""Local mode's guard against other web sites: loopback ``Host`` names, same-origin writes.

With no token configured, the server trusts any request from this machine. A web page
in the user's browser runs on this machine too: through DNS rebinding it can reach the
server under its own host name (``Host: evil.example``), and any page can send a
``POST`` to ``http://127.0.0.1:3000``. So in local mode every request must name the
server by a loopback host (``localhost``, ``127.0.0.1``, ``[::1]``, with or without a
port), else 421; and a request that changes something (``POST``, ``PUT``, ``PATCH``,
``DELETE``) whose ``Origin`` is another origin than the server's own is refused with 403.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from botmemory.server.errors import error_response

__all__ = ["LocalGuard", "host_name"]

STATE_CHANGING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})


def host_name(host: str) -> str | None:
    """The name in a ``Host`` header (``[::1]:3000`` gives ``::1``); ``None`` if malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, port = host[1:].partition("]")
        if not bracket or (port and not (port.startswith(":") and port[1:].isdigit())):
            return None
        return name
    name, colon, port = host.partition(":")
    if colon and not port.isdigit():
        return None
    return name


class LocalGuard:
    """ASGI middleware for local mode: refuse other host names and cross-origin writes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name: value.decode("latin-1") for name, value in scope.get("headers", ())}
        host = headers.get(b"host", "")
        if host_name(host) not in LOOPBACK_NAMES:
            message = (
                f"this server runs in local mode (no token configured) and answers only "
                f"to localhost, 127.0.0.1 or [::1], not to the host {host[:100]!r}: "
                "open it as http://127.0.0.1:<port>/, or set auth.adminTokens"
            )
            await error_response(421, message)(scope, receive, send)
            return
        origin = headers.get(b"origin")
        if scope["method"] in STATE_CHANGING and origin is not None and not _same(origin, host):
            message = (
                f"a {scope['method']} from another origin ({origin[:100]!r}) is refused in "
                "local mode: only the server's own pages may change something"
            )
            await error_response(403, message)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _same(origin: str, host: str) -> bool:
    """Whether ``origin`` (``http://127.0.0.1:3000``) is the server named by ``host``."""
    parts = urlsplit(origin.strip().lower())
    return parts.scheme in ("http", "https") and parts.netloc == host.strip().lower()
