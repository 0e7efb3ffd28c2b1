"""Before a dialog times out, note in user memory that the user left in the middle."""

from __future__ import annotations

from botmemory.dialog import Event
from botmemory.kvs import KeyValueStore
from botmemory.turns import TurnState


def hook(event: Event | None, state: TurnState, kvs: KeyValueStore) -> None:
    """Count the user's unfinished dialogs in ``user.timeouts``."""
    count = state.user.get("timeouts", 0)
    state.user["timeouts"] = (count if isinstance(count, int) else 0) + 1
