"""The converse route's thin path: the common request answered without FastAPI's machinery.

A chat sends one converse request per message, so that route's own cost is what a user
waits for. FastAPI resolves a route's dependencies, validates and re-serialises its
answer on every request; for an ordinary message this path does the same checks by
hand: the path, ``?include=state`` or nothing, a JSON body, the token, then the
turn (:func:`~botmemory.server.routes_converse.converse_response`).

Anything else goes to the declared route, which answers exactly as it always did: a
body that is not a valid message, a refused token, another query, another content
type. So this path never answers an error of its own, and the declared route stays
the one definition of the route's behaviour and of its OpenAPI schema. Errors raised
by the turn itself reach the app's error handlers, as from the declared route. It
sits inside every middleware (local mode's guard, the body limit, encoded slashes).
"""

from __future__ import annotations

import json
import re
from typing import Final

from pydantic import ValidationError
from starlette.datastructures import URLPath
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Message, Receive, Scope, Send

from botmemory.ids import BOT_ID_PATTERN
from botmemory.server.auth import request_grant
from botmemory.server.errors import ApiError
from botmemory.server.models import ConverseRequest
from botmemory.server.params import decoded
from botmemory.server.routes_converse import converse_response
from botmemory.server.state import ServerState

__all__ = ["ConverseFastPath"]

PATH: Final = re.compile(r"/api/v1/bots/([^/]+)/converse/([^/]+)")
"""The declared route's path, with Starlette's ``str`` convertor for both parameters."""
QUERIES: Final = {b"": False, b"include=state": True}
"""The query strings this path answers, and whether they ask for the state."""
HANDED_OVER: Final = "botmemory.converse.full"
"""The scope key that sends a request on to the declared route."""


class ConverseFastPath(BaseRoute):
    """A route in front of the declared converse route, for the common request."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """Match a ``POST`` of a JSON body to a well-formed converse path."""
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope.get("root_path")
            or HANDED_OVER in scope
            or scope.get("query_string", b"") not in QUERIES
            or not _json_body(scope)
        ):
            return Match.NONE, {}
        found = PATH.fullmatch(scope["path"])
        if found is None:
            return Match.NONE, {}
        bot_id, user_id = found.groups()
        if BOT_ID_PATTERN.fullmatch(bot_id) is None or len(user_id) > 255:
            return Match.NONE, {}
        return Match.FULL, {"path_params": {"botId": bot_id, "userId": user_id}}

    def url_path_for(self, name: str, /, **path_params: object) -> URLPath:
        """Name no URL: the declared route has the name."""
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the message, or hand the request to the declared route."""
        body, ended = await _read_body(receive)
        if not ended:
            return  # the client went away
        request = Request(scope, receive)
        state: ServerState = scope["app"].state.botmemory
        message = _message(body)
        bot_id, user_id = scope["path_params"]["botId"], scope["path_params"]["userId"]
        with_state = QUERIES[scope.get("query_string", b"")]
        if message is None or not await _allowed(request, state, bot_id, with_state):
            await _hand_over(scope, body, receive, send)
            return
        response = await converse_response(
            state.engine, bot_id, decoded(user_id), message, with_state=with_state
        )
        await response(scope, receive, send)


def _json_body(scope: Scope) -> bool:
    """Whether the body is sent as JSON (``application/json``); FastAPI reads no other
    body, nor one without a ``Content-Type``, as JSON: the declared route refuses those."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media: bytes = value.partition(b";")[0].strip().lower()
            return media == b"application/json"
    return False


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body (the body limit already read it); False if the client left."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _message(body: bytes) -> ConverseRequest | None:
    """The message, when the body is one; ``None`` lets the declared route say what is wrong.

    The body is parsed by ``json``, as the declared route parses it: a faster parser that
    reads an integer beyond 64 bits as a float would change a payload's number instead
    of refusing it.
    """
    try:
        data = json.loads(body)
        return ConverseRequest.model_validate(data) if isinstance(data, dict) else None
    except (ValueError, RecursionError, ValidationError):
        return None


async def _allowed(request: Request, state: ServerState, bot_id: str, with_state: bool) -> bool:
    """Whether the request may talk to ``bot_id``, and see its memories ``with_state``
    (a token of the bot, even on a public bot); the declared route explains a refusal."""
    try:
        grant = await request_grant(request)
    except ApiError:
        return False
    return grant.allows(bot_id) or (not with_state and state.converse_public(bot_id))


async def _hand_over(scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
    """Route the request again, to the declared route, with the body already read."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    await scope["router"]({**scope, HANDED_OVER: True}, replay, send)
