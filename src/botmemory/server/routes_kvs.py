"""A bot's key-value store: list keys, read, write (with an optional expiry), delete.

Keys may contain ``/`` (``storage/users/u1/lastTopic``): the rest of the path is the key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from botmemory import kvs
from botmemory.durations import to_timedelta
from botmemory.kvs import MAX_KEY_LENGTH, parse_expiry
from botmemory.memory import Memory
from botmemory.server.auth import bot_access
from botmemory.server.errors import ApiError, error_responses
from botmemory.server.models import KvsDeleted, KvsEntry, KvsKeys, KvsPut, iso_or_none
from botmemory.server.params import decoded
from botmemory.server.state import server_state

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/bots/{botId}/kvs", tags=["key-value store"])

BotAccess = Annotated[str, Depends(bot_access)]
Key = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="The key; it may contain '/'.",
        examples=["storage/global/motd"],
    ),
]
_READ = error_responses(400, 401, 403, 404)


@router.get("", response_model=KvsKeys, responses=_READ)
async def list_keys(
    request: Request,
    bot_id: BotAccess,
    prefix: Annotated[str, Query(max_length=MAX_KEY_LENGTH, description="Taken literally.")] = "",
) -> KvsKeys:
    """The bot's live keys that start with ``prefix``, sorted."""
    kvs = server_state(request).memory.kvs.for_bot(bot_id)
    return KvsKeys(keys=await kvs.keys(prefix))


@router.get("/{key:path}", response_model=KvsEntry, responses=_READ)
async def get_key(request: Request, bot_id: BotAccess, key: Key) -> KvsEntry:
    """A key's value and expiry; 404 when it does not exist or has expired."""
    key = decoded(key)
    entry = await _entry(server_state(request).memory, bot_id, key)
    if entry is None:
        raise ApiError(404, f"no key {key!r} in the key-value store of bot {bot_id!r}")
    return entry


@router.put(
    "/{key:path}", response_model=KvsEntry, responses=error_responses(400, 401, 403, 404, 413)
)
async def put_key(request: Request, bot_id: BotAccess, key: Key, body: KvsPut) -> KvsEntry:
    """Store a value; without ``expiry`` the key never expires (an earlier expiry is cleared)."""
    key = decoded(key)
    expiry = to_timedelta(parse_expiry(body.expiry))
    stored = (
        await server_state(request).memory.kvs.for_bot(bot_id).set(key, body.value, expiry=expiry)
    )
    return _model(stored)


@router.delete("/{key:path}", response_model=KvsDeleted, responses=_READ)
async def delete_key(request: Request, bot_id: BotAccess, key: Key) -> KvsDeleted:
    """Delete a key; 404 when it does not exist."""
    key = decoded(key)
    if not await server_state(request).memory.kvs.for_bot(bot_id).delete(key):
        raise ApiError(404, f"no key {key!r} in the key-value store of bot {bot_id!r}")
    return KvsDeleted(key=key, deleted=True)


async def _entry(memory: Memory, bot_id: str, key: str) -> KvsEntry | None:
    """A key with its expiry."""
    entry = await memory.kvs.for_bot(bot_id).entry(key)
    return None if entry is None else _model(entry)


def _model(entry: kvs.KvsEntry) -> KvsEntry:
    """The API's shape of a key with its expiry."""
    return KvsEntry(
        key=entry.key,
        value=entry.value,
        expires_at=entry.expires_at,
        expires_at_iso=iso_or_none(entry.expires_at),
    )
