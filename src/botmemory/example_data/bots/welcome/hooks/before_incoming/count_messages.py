"""Count the messages the welcome bot receives, in its key-value store (outside flows)."""

from __future__ import annotations

from botmemory.dialog import Event
from botmemory.kvs import KeyValueStore
from botmemory.turns import TurnState


async def hook(event: Event | None, state: TurnState, kvs: KeyValueStore) -> None:
    """Add one to ``stats/messages``: a delta added at commit, so that turns of several
    users counting at once never conflict (``incr`` would read and check the count)."""
    await kvs.add("stats/messages")
