"""``GET /api/v1/bots/{botId}/users/{userId}/events``: the push channel, as server-sent events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from botmemory.ids import Identity
from botmemory.server.auth import converse_access
from botmemory.server.errors import ApiError, error_responses
from botmemory.server.params import Channel, ThreadId, UserId
from botmemory.server.state import server_state

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/bots/{botId}", tags=["converse"])


@router.get(
    "/users/{userId}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **error_responses(400, 401, 403, 404, 503, by_reference=True),
    },
    summary="Receive what the bot says without a user message",
)
async def events(
    request: Request,
    bot_id: Annotated[str, Depends(converse_access)],
    user_id: UserId,
    channel: Channel = "api",
    thread_id: ThreadId = None,
) -> StreamingResponse:
    """Server-sent events of one conversation, as they happen: ``replies`` (a dialog
    timeout's replies: ``{"reason": "timeout", "responses": [...]}``) and
    ``sessionEnded`` (a timed-out session was ended, by the janitor or a late message).
    Who may talk to the bot may listen; a comment every 15 s keeps an idle stream open.
    An unknown bot is a 404 and an invalid id a 400, as on the converse route. A server
    process holds 512 streams at most, 8 of one conversation: past them, 503."""
    state = server_state(request)
    state.require_bot(bot_id)
    Identity.of(bot_id, user_id, channel, thread_id)  # raises InvalidIdError (400)
    hub = state.events
    key = (bot_id, user_id, channel, thread_id)
    if (refused := hub.refusal(key)) is not None:
        raise ApiError(503, refused, headers={"Retry-After": "30"})
    return StreamingResponse(
        hub.stream(key),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
