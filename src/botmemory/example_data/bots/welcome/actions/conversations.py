"""The welcome bot's own action: count every user's conversations in bot memory."""

from __future__ import annotations

from botmemory.dialog import Event, action
from botmemory.kvs import KeyValueStore
from botmemory.turns import TurnState
from botmemory.values import JsonValue


@action("welcome.countConversation")
def count_conversation(
    event: Event, state: TurnState, args: dict[str, JsonValue], kvs: KeyValueStore
) -> None:
    """Add one to ``bot.conversations``: shared by every user of the bot.

    An increment, added at commit time: conversations that start at once never conflict
    (reading the count, then writing it plus one, would make them run again).
    """
    state.bot.incr("conversations")
