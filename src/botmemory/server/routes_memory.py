"""The four memories of a user: look, change one variable, end the session, export, erase.

Changes go through :meth:`Memory.edit`, an administrator's edit: it neither starts nor
prolongs a session, so changing the session memory of a session that is not alive, or
the temp memory of a dialog that timed out, answers 409. ``{ownerId}`` is the user id
for the user, session and temp scopes (with ``?channel=`` and ``?threadId=`` picking the
session), and the bot id for the bot scope.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from botmemory.ids import validate_id
from botmemory.server.auth import bot_access
from botmemory.server.errors import ApiError, error_responses
from botmemory.server.models import (
    ForgetResult,
    MemoryPut,
    MemoryView,
    SessionEnd,
    UserExport,
    VariableRef,
    iso_or_none,
)
from botmemory.server.params import Channel, OwnerId, ThreadId, UserId, VariableName
from botmemory.server.state import server_state
from botmemory.storage.base import Scope

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/bots/{botId}", tags=["memory"])

BotAccess = Annotated[str, Depends(bot_access)]
ScopeName = Annotated[
    Scope,
    Path(description="user, session, temp or bot."),
]
_READ = error_responses(400, 401, 403, 404)
_WRITE = error_responses(400, 401, 403, 404, 409, 413)
_ERASE = error_responses(400, 401, 403, 404, 503)


@router.get("/users/{userId}/memory", response_model=MemoryView, responses=_READ)
async def get_memory(
    request: Request,
    bot_id: BotAccess,
    user_id: UserId,
    channel: Channel = "api",
    thread_id: ThreadId = None,
) -> MemoryView:
    """The four memories of a user's session, each variable with when it expires.

    Reading changes nothing and does not keep the session alive. ``now`` is the
    server's clock: count expiries down from it.
    """
    memory = server_state(request).memory
    return MemoryView.of(await memory.peek(bot_id, user_id, channel, thread_id))


@router.put("/memory/{scope}/{ownerId}/{name}", response_model=VariableRef, responses=_WRITE)
async def put_variable(
    request: Request,
    bot_id: BotAccess,
    scope: ScopeName,
    owner_id: OwnerId,
    name: VariableName,
    body: MemoryPut,
    channel: Channel = "api",
    thread_id: ThreadId = None,
) -> VariableRef:
    """Set one variable; a user variable's retention policy counts from now."""
    user_id = _user_of(bot_id, scope, owner_id)
    memory = server_state(request).memory
    async with memory.edit(bot_id, user_id, channel, thread_id) as state:
        getattr(state, scope)[validate_id(name, "variable name")] = body.value
    view = await memory.peek(bot_id, user_id, channel, thread_id)
    found = view.scopes[scope].get(name)
    if found is None:  # deleted again by a concurrent change
        return VariableRef(scope=scope, owner_id=owner_id, name=name, value=None)
    return VariableRef(
        scope=scope,
        owner_id=owner_id,
        name=name,
        value=found.value,
        expires_at=found.expires_at,
        expires_at_iso=iso_or_none(found.expires_at),
    )


@router.delete("/memory/{scope}/{ownerId}/{name}", response_model=VariableRef, responses=_WRITE)
async def delete_variable(
    request: Request,
    bot_id: BotAccess,
    scope: ScopeName,
    owner_id: OwnerId,
    name: VariableName,
    channel: Channel = "api",
    thread_id: ThreadId = None,
) -> VariableRef:
    """Delete one variable; 404 when it does not exist (or has expired)."""
    user_id = _user_of(bot_id, scope, owner_id)
    memory = server_state(request).memory
    async with memory.edit(bot_id, user_id, channel, thread_id) as state:
        variables = getattr(state, scope)
        if name not in variables:
            raise ApiError(404, f"{scope} variable {name!r} of {owner_id!r} does not exist")
        del variables[name]
    return VariableRef(scope=scope, owner_id=owner_id, name=name, deleted=True)


@router.delete(
    "/users/{userId}/session",
    response_model=SessionEnd,
    responses=error_responses(400, 401, 403, 404, 409),
)
async def end_session(
    request: Request,
    bot_id: BotAccess,
    user_id: UserId,
    channel: Channel = "api",
    thread_id: ThreadId = None,
) -> SessionEnd:
    """End a live session now, as its timeout would (the flow starts over).

    ``ended`` is false when the session was not alive. User and bot memory stay.
    """
    memory = server_state(request).memory
    return SessionEnd(ended=await memory.end_session(bot_id, user_id, channel, thread_id))


@router.get("/users/{userId}/export", response_model=UserExport, responses=_READ)
async def export_user(
    request: Request, bot_id: BotAccess, user_id: UserId, channel: Channel = "api"
) -> UserExport:
    """Everything still stored for a user: user memory, live sessions, the bot's keys of
    the user and of their conversations (ended ones included)."""
    exported = await server_state(request).memory.export_user(bot_id, user_id, channel)
    return UserExport.of(exported)


@router.delete("/users/{userId}", response_model=ForgetResult, responses=_ERASE)
async def forget_user(
    request: Request, bot_id: BotAccess, user_id: UserId, channel: Channel = "api"
) -> ForgetResult:
    """Erase everything stored for a user; answer how much of each kind was removed.

    The user's variables, sessions and the bot's keys of the user and of their
    conversations. 503 on SQLite while another connection is in the middle of a
    transaction: the data is erased, its bytes not yet; send the request again to finish.
    """
    counts = await server_state(request).memory.forget_user(bot_id, user_id, channel)
    return ForgetResult.of(counts)


def _user_of(bot_id: str, scope: str, owner_id: str) -> str:
    """The user whose edit reaches the variable: the owner, or for bot memory any user."""
    if scope == "bot" and owner_id != bot_id:
        raise ApiError(400, f"the owner of bot memory is the bot: use {bot_id!r}, not {owner_id!r}")
    return owner_id
