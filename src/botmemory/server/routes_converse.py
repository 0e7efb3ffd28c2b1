"""``POST /api/v1/bots/{botId}/converse/{userId}``: one user message, the bot's replies."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Query, Request

from botmemory.server.auth import converse_access
from botmemory.server.errors import ApiError, error_responses
from botmemory.server.models import ConverseRequest, ConverseResponse, Reply
from botmemory.server.params import UserId
from botmemory.server.state import server_state
from botmemory.server.views import memory_view, plain_scopes

__all__ = ["router"]

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
    user_id: UserId,
    message: ConverseRequest,
    include: Annotated[
        str | None,
        Query(
            description="Comma-separated extras: 'state' adds the four memories after the turn.",
            examples=["state"],
        ),
    ] = None,
) -> ConverseResponse:
    """Run one turn of the bot's flows and return its replies, in order.

    Without a token only bots with ``converse.public: true`` answer. A failure inside
    the bot's flow still answers 200, with the bot's error reply, and saves nothing.
    A message with an ``id`` its session already processed answers the same replies
    without running again. 503 when the storage is down, or when concurrent turns kept
    changing what this one read (retry).
    """
    extras = _includes(include)
    engine = server_state(request).engine
    replies = await engine.process(
        bot_id,
        user_id,
        text=message.text,
        payload=message.payload,
        channel=message.channel,
        thread_id=message.thread_id,
        message_type=message.type,
        message_id=message.id,
    )
    # every field set explicitly: the response leaves out what is unset (``state``)
    response = ConverseResponse(responses=[Reply(type="text", text=reply) for reply in replies])
    if "state" in extras:
        view = await memory_view(engine.memory, bot_id, user_id, message.channel, message.thread_id)
        response.state = plain_scopes(view)
    return response


def _includes(include: str | None) -> set[str]:
    parts = {part.strip() for part in (include or "").split(",") if part.strip()}
    unknown = sorted(parts - set(INCLUDES))
    if unknown:
        allowed = ", ".join(INCLUDES)
        raise ApiError(400, f"include={','.join(unknown)} is not known: use {allowed}")
    return parts
