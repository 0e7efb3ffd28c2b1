"""The request body limit (``server.maxBodyBytes``), enforced before any route runs.

A body whose ``Content-Length`` is over the limit is refused at once; a body sent
without one (chunked) is read up to the limit and refused as soon as it goes over.
Either way the answer is a JSON 413, and the route never sees the body.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from botmemory.server.errors import error_response

__all__ = ["BodyLimit"]


class _TooLargeError(Exception):
    """The body went over the limit while it was read."""


class BodyLimit:
    """ASGI middleware that answers 413 to a request body larger than ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await error_response(400, "the Content-Length header is not a number")(
                scope, receive, send
            )
            return
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        try:
            messages = await self._read_body(receive)
        except _TooLargeError:
            await self._refuse(scope, receive, send)
            return
        await self.app(scope, _replay(messages, receive), send)

    async def _read_body(self, receive: Receive) -> list[Message]:
        """Read the whole body, at most ``max_bytes``, as the messages that carried it."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                raise _TooLargeError
            if not message.get("more_body", False):
                return messages

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is larger than {self.max_bytes} bytes (server.maxBodyBytes)"
        await error_response(413, message)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared body size; ``None`` when absent, -1 when it is not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() else -1
    return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives the messages already read, then the real ones."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
