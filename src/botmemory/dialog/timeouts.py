"""Dialog timeouts and session ends, fired by the janitor.

When ``dialog.timeoutInterval`` passes while a user is inside a flow, the janitor's
``on_dialog_timeout`` runs, for each such session, one resumed turn that: skips the
session if a message came first; runs the ``before_session_timeout`` hooks; runs the
first timeout target found (the node's ``timeout``, a node named ``timeout``, the flow's
``timeoutNode``, ``timeout.flow.json``); then discards temp and the position. What it
changes in user or session memory is persisted. When the janitor drops a timed-out
session, ``on_session_end`` runs the ``on_session_end`` hooks first.

Both run inside :meth:`Memory.turn`, whose session lock keeps a timeout and a message
of the same session from ever running at once.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from botmemory.dialog.events import Event
from botmemory.dialog.hooks import before_outgoing, run_hooks
from botmemory.ids import Identity
from botmemory.storage.base import SessionRecord, TurnKeys
from botmemory.turns import TurnState

if TYPE_CHECKING:
    from botmemory.dialog.bots import Bot
    from botmemory.dialog.engine import DialogEngine

__all__ = ["DialogTimeouts", "handle_timeout"]

log = logging.getLogger("botmemory.dialog")


class DialogTimeouts:
    """The janitor hooks of one engine, added with ``Janitor.add_hooks``: the janitor's
    own ``on_dialog_timeout`` and ``on_session_end`` still run, after these."""

    def __init__(self, engine: DialogEngine) -> None:
        self._engine = engine
        self._registration = engine.memory.janitor.add_hooks(
            on_dialog_timeout=self.on_dialog_timeout, on_session_end=self.on_session_end
        )

    def detach(self) -> None:
        """Stop handling the janitor's timed-out dialogs and sessions."""
        self._registration.remove()

    async def on_dialog_timeout(self, sessions: list[SessionRecord]) -> None:
        """Handle the dialog timeout of each session whose temp memory expired."""
        for record in sessions:
            await self._dialog_timeout(record)

    async def on_session_end(self, sessions: list[SessionRecord]) -> None:
        """Run the ``on_session_end`` hooks of each session about to be dropped."""
        for record in sessions:
            await self._session_end(record)

    async def end_late(self, record: SessionRecord) -> list[str]:
        """End a timed-out session that a message reached before the janitor did, as
        the janitor would: its dialog timeout (whose replies are returned, for the
        message's answer), the ``on_session_end`` hooks of the janitor (the bot's, the
        event stream's, the library's), then its deletion. Whoever else in this process is
        ending it (a janitor run, another message) is waited for first; then, if the
        session is no longer stored as it was, there is nothing to end."""
        memory = self._engine.memory
        async with memory.janitor.claiming([record]):
            keys = TurnKeys(record.bot_id, record.user_key, record.key)
            stored = (await memory.storage.load_turn(keys)).session
            if stored is None or stored.last_seen != record.last_seen:
                return []  # ended meanwhile (a janitor run, another message), or revived
            replies = await self._timeout_replies(record) if record.temp_expires_at else []
            ended = [replace(record, temp_expires_at=None)]
            await memory.janitor.end_sessions(ended, claimed=True)
        return replies

    async def late_timeout(self, event: Event) -> list[str]:
        """Handle the dialog timeout of the session of ``event``, a message that found it
        timed out before the janitor did, in a turn of its own; return its replies (none
        if it failed: the failure is logged, as in the janitor)."""
        return await self._timeout_turn(_timeout_of(event))

    async def deliver_late(self, event: Event, replies: list[str]) -> None:
        """Send a late dialog timeout's replies, which a message could not answer, where
        the janitor's go (``engine.on_timeout_replies``)."""
        await self._deliver(_timeout_of(event), replies)

    async def _dialog_timeout(self, record: SessionRecord) -> None:
        await self._deliver(_event("timeout", record), await self._timeout_replies(record))

    async def _timeout_replies(self, record: SessionRecord) -> list[str]:
        """Handle the dialog timeout of one session in a turn; return its replies."""
        return await self._timeout_turn(_event("timeout", record))

    async def _timeout_turn(self, event: Event) -> list[str]:
        """Handle the dialog timeout of ``event``'s session in a turn; return its replies."""
        engine = self._engine
        bot = engine.bots.get(event.bot_id)
        if bot is None:
            return []

        async def body(state: TurnState) -> list[str]:
            if not state.temp_expired:
                return []
            return await handle_timeout(engine, bot, event, state)

        try:
            replies = await engine.memory.run_turn(
                body, event.bot_id, event.user_id, event.channel, event.thread_id, resume=True
            )
        except Exception as exc:
            engine.log_failure("timeout", event, None, exc)
            return []
        return replies

    async def _deliver(self, event: Event, replies: list[str]) -> None:
        sink = self._engine.on_timeout_replies
        if not replies or sink is None:
            return
        try:
            await sink(event, replies)
        except Exception:
            log.exception("delivering the timeout replies of %s failed", event.user_id)

    async def _session_end(self, record: SessionRecord) -> None:
        engine = self._engine
        bot = engine.bots.get(record.bot_id)
        hooks = bot.hooks.get("on_session_end", ()) if bot is not None else ()
        if not hooks:
            return
        event = _event("session_end", record)

        async def body(state: TurnState) -> None:
            # is_new_session: nothing stored to resume (another run ended it already)
            if state.session_expired and not state.is_new_session:
                await run_hooks(hooks, None, state, state.kvs)

        try:
            await engine.memory.run_turn(
                body, event.bot_id, event.user_id, event.channel, event.thread_id, resume=True
            )
        except Exception as exc:
            engine.log_failure("session end", event, None, exc)


async def handle_timeout(
    engine: DialogEngine, bot: Bot, event: Event, state: TurnState
) -> list[str]:
    """Handle the dialog timeout of a turn whose ``temp`` shows the timed-out dialog.

    Runs the ``before_session_timeout`` hooks and the first timeout target when the user
    was inside a flow, then discards temp and the position; returns the replies.
    """
    runner = engine.runner(bot, event, state)
    if not runner.restore():
        state.end_flow()
        return []
    kvs = runner.kvs
    await run_hooks(bot.hooks.get("before_session_timeout", ()), event, state, kvs)
    await runner.on_timeout()
    return await before_outgoing(bot.hooks, event, runner.replies, state, kvs)


def _timeout_of(event: Event) -> Event:
    """The timeout event of the conversation of ``event``."""
    return Event("timeout", event.bot_id, event.user_id, event.channel, event.thread_id)


def _event(kind: str, record: SessionRecord) -> Event:
    who = Identity.from_key(record.bot_id, record.key)
    return Event(kind, who.bot_id, who.user_id, who.channel, who.thread_id)
