"""The push channel: what a bot says or does with no user message waiting for it.

:class:`EventHub` takes the dialog engine's timeout replies and the janitor's session
ends, and hands each to the streams open for that conversation (server-sent events,
``GET /api/v1/bots/{botId}/users/{userId}/events``). Nothing is stored: a conversation
without an open stream misses nothing it could not read from memory later.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

from botmemory.dialog import DialogEngine, Event
from botmemory.janitor import SessionHook
from botmemory.storage.base import SessionRecord
from botmemory.values import JsonValue

__all__ = [
    "KEEP_ALIVE",
    "MAX_CONVERSATION_STREAMS",
    "MAX_STREAMS",
    "Conversation",
    "EventHub",
    "Pushed",
]

KEEP_ALIVE: Final = 15.0
"""Seconds between comments on an idle stream, so that proxies keep it open."""
QUEUE_SIZE: Final = 100
"""Events kept for a stream that reads too slowly; older ones are dropped."""
MAX_STREAMS: Final = 512
"""Streams one server process holds open at most (each holds a connection)."""
MAX_CONVERSATION_STREAMS: Final = 8
"""Streams of one conversation at most (a user's tabs)."""

Conversation = tuple[str, str, str, str | None]
"""Bot, user, channel and thread of a conversation."""


@dataclass(frozen=True)
class Pushed:
    """One event of the push channel: its name and its JSON data."""

    name: str
    data: dict[str, JsonValue]

    def encode(self) -> str:
        """The event in the ``text/event-stream`` format."""
        return f"event: {self.name}\ndata: {json.dumps(self.data)}\n\n"


@dataclass
class EventHub:
    """The open streams of one server, by conversation."""

    streams: dict[Conversation, set[asyncio.Queue[Pushed]]] = field(default_factory=dict)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def attach(self, engine: DialogEngine) -> None:
        """Receive ``engine``'s timeout replies and its janitor's session ends."""
        engine.on_timeout_replies = self.replies
        janitor = engine.memory.janitor
        janitor.on_session_end = _chained(janitor.on_session_end, self.session_ends)

    async def replies(self, event: Event, replies: list[str]) -> None:
        """Push a dialog timeout's replies to the conversation's streams."""
        data: dict[str, JsonValue] = {"reason": event.type, "responses": list(replies)}
        self.publish(_conversation(event), Pushed("replies", data))

    async def session_ends(self, sessions: list[SessionRecord]) -> None:
        """Push the end of each timed-out session to its streams."""
        for record in sessions:
            channel, user_id, thread_id = json.loads(record.key)
            key = (record.bot_id, user_id, channel, thread_id)
            self.publish(key, Pushed("sessionEnded", {"reason": "timeout"}))

    def refusal(self, key: Conversation) -> str | None:
        """Why a new stream of ``key`` would be one too many, or None: streams hold a
        connection each, so anyone who may talk to a bot could otherwise hold them all."""
        if sum(len(queues) for queues in self.streams.values()) >= MAX_STREAMS:
            return f"this server holds {MAX_STREAMS} event streams already: try again later"
        if len(self.streams.get(key, ())) >= MAX_CONVERSATION_STREAMS:
            return (
                f"this conversation has {MAX_CONVERSATION_STREAMS} event streams open already: "
                "close one first"
            )
        return None

    def publish(self, key: Conversation, pushed: Pushed) -> None:
        """Hand ``pushed`` to every stream of ``key`` (a slow stream loses its oldest)."""
        for queue in self.streams.get(key, ()):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(pushed)

    async def stream(self, key: Conversation) -> AsyncIterator[str]:
        """The ``text/event-stream`` of one conversation, until :meth:`close` or disconnect."""
        queue: asyncio.Queue[Pushed] = asyncio.Queue(QUEUE_SIZE)
        self.streams.setdefault(key, set()).add(queue)
        try:
            yield ": connected\n\n"
            while not self.closed.is_set():
                pushed = await self._next(queue)
                yield ": keep-alive\n\n" if pushed is None else pushed.encode()
        finally:
            self.streams[key].discard(queue)
            if not self.streams[key]:
                del self.streams[key]

    async def _next(self, queue: asyncio.Queue[Pushed]) -> Pushed | None:
        """The next event, or None after :data:`KEEP_ALIVE` seconds or on :meth:`close`."""
        getting = asyncio.ensure_future(queue.get())
        closing = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait(
                (getting, closing), timeout=KEEP_ALIVE, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            closing.cancel()
            if not getting.done():
                getting.cancel()
        return getting.result() if getting.done() and not getting.cancelled() else None

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        self.closed.set()


def _conversation(event: Event) -> Conversation:
    return (event.bot_id, event.user_id, event.channel, event.thread_id)


def _chained(first: SessionHook | None, then: SessionHook) -> SessionHook:
    async def both(sessions: list[SessionRecord]) -> None:
        if first is not None:
            await first(sessions)
        await then(sessions)

    return both
