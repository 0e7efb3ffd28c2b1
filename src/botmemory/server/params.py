"""Path and query parameters that several routes share.

Ids are checked by botmemory itself (``InvalidIdError``, answered 400); the schema
states the same rules so that clients and the OpenAPI page know them. A ``/`` inside
an id, a variable name or a key is sent percent-encoded (``a%2Fb``); see
:class:`EncodedSlashes`.
"""

from __future__ import annotations

from typing import Annotated, Final
from urllib.parse import unquote, unquote_to_bytes

from fastapi import Depends, Path, Query
from starlette.types import ASGIApp, Receive, Scope, Send

from botmemory.server.errors import error_response

__all__ = [
    "SLASH",
    "Channel",
    "EncodedSlashes",
    "OwnerId",
    "ThreadId",
    "UserId",
    "VariableName",
    "decoded",
]

SLASH: Final = "\x00"
"""What an encoded slash (``%2F``) inside one path segment becomes until a parameter reads it.

No id, name or key may contain a NUL, so the stand-in is never ambiguous."""


def decoded(value: str) -> str:
    """Return a path parameter with its encoded slashes (``%2F``) as ``/``."""
    return value.replace(SLASH, "/")


def _user_id(
    user_id: Annotated[
        str,
        Path(
            alias="userId",
            min_length=1,
            max_length=255,
            description="A user id: 1 to 255 characters, no control characters; write '/' as %2F.",
            examples=["user-42"],
        ),
    ],
) -> str:
    return decoded(user_id)


def _owner_id(
    owner_id: Annotated[
        str,
        Path(
            alias="ownerId",
            min_length=1,
            max_length=255,
            description="The user id (user, session, temp), or the bot id (bot); write '/' as %2F.",
            examples=["user-42"],
        ),
    ],
) -> str:
    return decoded(owner_id)


def _variable_name(
    name: Annotated[
        str,
        Path(alias="name", min_length=1, max_length=255, examples=["name"]),
    ],
) -> str:
    return decoded(name)


UserId = Annotated[str, Depends(_user_id)]
"""The ``{userId}`` path parameter."""
OwnerId = Annotated[str, Depends(_owner_id)]
"""The ``{ownerId}`` path parameter of the variable routes."""
VariableName = Annotated[str, Depends(_variable_name)]
"""The ``{name}`` path parameter of the variable routes."""

Channel = Annotated[
    str,
    Query(
        min_length=1,
        max_length=255,
        description="The user's channel: user memory is per bot and channel.",
    ),
]
"""The ``?channel=`` query parameter (default ``api``)."""

ThreadId = Annotated[
    str | None,
    Query(
        alias="threadId",
        min_length=1,
        max_length=255,
        description="A thread with a session of its own.",
    ),
]
"""The ``?threadId=`` query parameter."""


# -- '/' inside a path parameter ------------------------------------------------------------


class EncodedSlashes:
    """ASGI middleware: ``%2F`` inside a path segment stays inside that segment.

    The ASGI server decodes ``/api/v1/bots/b/users/a%2Fb/memory`` into a path of more
    segments than it has, and no route matches it. Rebuilt from ``raw_path``, each
    encoded slash becomes :data:`SLASH` for routing, and the parameter types of this
    module turn it back into ``/``. A path with an encoded NUL (``%00``), or whose
    bytes, percent-escapes decoded, are not UTF-8, is refused: the server would
    otherwise read each wrong byte as U+FFFD, and two different ids as one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if isinstance(raw, bytes):
            raw_path = raw.decode("latin-1").partition("?")[0]
            lowered = raw_path.lower()
            if "%00" in lowered:
                message = "the path contains an encoded NUL (%00): no id, name or key has one"
                await error_response(400, message)(scope, receive, send)
                return
            if not _utf8(raw.partition(b"?")[0]):
                message = "the path is not UTF-8 once its percent-escapes are decoded"
                await error_response(400, message)(scope, receive, send)
                return
            if "%2f" in lowered:
                segments = (unquote(part).replace("/", SLASH) for part in raw_path.split("/"))
                scope = {**scope, "path": "/".join(segments)}
        await self.app(scope, receive, send)


def _utf8(raw_path: bytes) -> bool:
    """Whether ``raw_path``, its percent-escapes decoded, is UTF-8."""
    try:
        unquote_to_bytes(raw_path).decode()
    except UnicodeDecodeError:
        return False
    return True
