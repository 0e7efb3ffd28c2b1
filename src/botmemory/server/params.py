"""Path and query parameters that several routes share.

Ids are checked by botmemory itself (``InvalidIdError``, answered 400); the schema
states the same rules so that clients and the OpenAPI page know them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

__all__ = ["Channel", "ThreadId", "UserId"]

UserId = Annotated[
    str,
    Path(
        alias="userId",
        min_length=1,
        max_length=255,
        description="A user id: 1 to 255 characters, no control characters, no '/'.",
        examples=["user-42"],
    ),
]
"""The ``{userId}`` path parameter."""

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
