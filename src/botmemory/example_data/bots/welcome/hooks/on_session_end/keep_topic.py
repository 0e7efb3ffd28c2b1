"""When a session ends, keep its topic for 30 days in the user's storage."""

from __future__ import annotations

from botmemory.dialog import Event
from botmemory.kvs import KeyValueStore, user_storage_key
from botmemory.turns import TurnState


async def hook(event: Event | None, state: TurnState, kvs: KeyValueStore) -> None:
    """Store ``session.topic`` under ``storage/users/<userId>/lastTopic``."""
    topic = state.session.get("topic")
    if topic is not None:
        await kvs.set(user_storage_key(state.user_id, "lastTopic"), topic, expiry="30d")
