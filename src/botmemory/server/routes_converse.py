"""``POST /api/v1/bots/{botId}/converse/{userId}``: one user message, the bot's replies.

The route declared here gives the OpenAPI schema and validates every request the
thin path of :mod:`~botmemory.server.converse_fast` hands over; both answer through
:func:`converse_response`.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from botmemory.dialog import DialogEngine
from botmemory.server.auth import GrantDep, check_bot, converse_access
from botmemory.server.errors import ApiError, error_responses
from botmemory.server.models import ConverseRequest, ConverseResponse, Scopes
from botmemory.server.params import UserId
from botmemory.server.state import server_state

__all__ = ["JsonBytesResponse", "converse_response", "router"]

router = APIRouter(prefix="/api/v1/bots/{botId}", tags=["converse"])

INCLUDES: Final = ("state",)


@router.post(
    "/converse/{userId}",
    response_model=ConverseResponse,
    response_model_exclude_unset=True,
    responses=error_responses(400, 401, 403, 404, 413),
    summary="Send a user's message to a bot",
)
async def converse(
    request: Request,
    bot_id: Annotated[str, Depends(converse_access)],
    grant: GrantDep,
    user_id: UserId,
    message: ConverseRequest,
    include: Annotated[
        str | None,
        Query(
            description="Comma-separated extras: 'state' adds the four memories after the turn.",
            examples=["state"],
        ),
    ] = None,
) -> Response:
    """Run one turn of the bot's flows and return its replies, in order.

    Without a token only bots with ``converse.public: true`` answer, and
    ``?include=state`` (the user's memory) needs a token of the bot even then, as the
    memory routes do. A failure inside
    the bot's flow still answers 200, with the bot's error reply, and saves nothing.
    A message with an ``id`` its session already processed answers the same replies
    without running again. 503 when the storage is down, or when concurrent turns kept
    changing what this one read (retry).
    """
    extras = _includes(include)
    if "state" in extras:  # the memories are not public, even where talking is
        check_bot(grant, bot_id)
    engine = server_state(request).engine
    return await converse_response(engine, bot_id, user_id, message, with_state="state" in extras)


class JsonBytesResponse(Response):
    """A JSON answer rendered by orjson (``application/json``, as FastAPI's own)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def converse_response(
    engine: DialogEngine,
    bot_id: str,
    user_id: str,
    message: ConverseRequest,
    *,
    with_state: bool,
) -> Response:
    """Run the turn of ``message`` and answer its replies (and the memories it left)."""
    answer = await engine.answer(
        bot_id,
        user_id,
        text=message.text,
        payload=message.payload,
        channel=message.channel,
        thread_id=message.thread_id,
        message_type=message.type,
        message_id=message.id,
        memories=with_state,
    )
    body: dict[str, Any] = {"responses": [{"type": "text", "text": r} for r in answer.replies]}
    if with_state:
        memories = answer.memories
        if memories is None:  # nothing was written (a repeated id, a failed turn): as stored
            view = await engine.memory.peek(bot_id, user_id, message.channel, message.thread_id)
            memories = Scopes.plain(view).model_dump()
        body["state"] = memories
    return JsonBytesResponse(body)


def _includes(include: str | None) -> set[str]:
    parts = {part.strip() for part in (include or "").split(",") if part.strip()}
    unknown = sorted(parts - set(INCLUDES))
    if unknown:
        allowed = ", ".join(INCLUDES)
        raise ApiError(400, f"include={','.join(unknown)} is not known: use {allowed}")
    return parts
