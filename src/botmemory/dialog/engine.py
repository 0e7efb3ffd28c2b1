"""The dialog engine: runs bots written as files, one turn per user message.

::

    engine = await DialogEngine.from_data_dir("data")
    replies = await engine.process("welcome", "u1", text="hi")
    await engine.close()

Each message runs in one :meth:`Memory.run_turn <botmemory.memory.Memory.run_turn>`:
memory is loaded, the ``before_incoming`` and ``after_incoming`` hooks run, the flow
runs, each reply passes ``before_outgoing``, and what changed is persisted in one
transaction, key-value store writes included. When a concurrent turn changed what this
one read, the whole turn runs again from a fresh load (hooks and actions included, so
they must be safe to run again). If anything fails, nothing is persisted, the failure
is logged with the bot, flow and node, and the reply is the bot's error reply. Dialog
timeouts and session ends come from the janitor (see :mod:`botmemory.dialog.timeouts`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from botmemory.clock import Clock
from botmemory.config import load_data_dir
from botmemory.config.files import DEFAULT_ERROR_REPLY
from botmemory.dialog.bots import Bot, load_bots
from botmemory.dialog.errors import BotLoadError, DialogError, UnknownBotError
from botmemory.dialog.events import MESSAGE_TYPES, Event
from botmemory.dialog.hooks import before_outgoing, run_hooks
from botmemory.dialog.runner import DEFAULT_MAX_STEPS, POSITION_KEY, FlowRunner
from botmemory.dialog.timeouts import DialogTimeouts
from botmemory.errors import (
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    DuplicateMessageError,
    InvalidValueError,
    LockTimeoutError,
    TurnAbandonedError,
)
from botmemory.ids import Identity, unknown_bot
from botmemory.memory import Memory, check_message_size
from botmemory.storage.base import SessionRecord
from botmemory.turns import TurnState
from botmemory.values import JsonValue, to_json_text

__all__ = ["DEFAULT_ERROR_REPLY", "Answer", "DialogEngine", "ReplySink"]

log = logging.getLogger("botmemory.dialog")

ReplySink = Callable[[Event, list[str]], Awaitable[None]]
"""Receives the replies of timeout handling (no user message waits for them)."""


@dataclass(frozen=True)
class Answer:
    """What one user message got: the bot's replies, and the memories the turn left."""

    replies: list[str]
    memories: dict[str, dict[str, JsonValue]] | None = None
    """Plain values of ``user``, ``session``, ``temp`` and ``bot`` memory as the turn
    committed them (``None`` when the turn wrote nothing: a repeated message id, a
    failed turn); only with ``DialogEngine.answer(..., memories=True)``."""


class DialogEngine:
    """Runs the flows, actions and hooks of every bot folder over one :class:`Memory`."""

    def __init__(
        self,
        memory: Memory,
        bots: Mapping[str, Bot],
        *,
        error_reply: str | None = None,
        max_steps: int | None = None,
        owns_memory: bool = False,
    ) -> None:
        self.memory = memory
        self.bots: dict[str, Bot] = dict(bots)
        self.on_timeout_replies: ReplySink | None = None
        """Called with the replies of dialog-timeout handling, after they are persisted."""
        self._error_reply = error_reply
        self._max_steps = max_steps
        self._owns_memory = owns_memory
        self._timeouts = DialogTimeouts(self)

    @classmethod
    def open(
        cls,
        memory: Memory,
        data_dir: str | os.PathLike[str],
        *,
        error_reply: str | None = None,
        max_steps: int | None = None,
    ) -> DialogEngine:
        """Load the bots of ``data_dir/bots`` and run them over ``memory`` (left open on close)."""
        bots = load_bots(Path(data_dir))
        return cls(memory, bots, error_reply=error_reply, max_steps=max_steps)

    @classmethod
    async def from_data_dir(
        cls, path: str | os.PathLike[str], clock: Clock | None = None
    ) -> DialogEngine:
        """Load a data folder's bots and open its memory; :meth:`close` closes both.

        Raises one :class:`~botmemory.errors.ConfigError` with every problem of the
        configuration files and of the bots (a :class:`BotLoadError` when only bots
        have problems).
        """
        problems: list[str] = []
        try:
            load_data_dir(path)  # its problems and the bots', all at once
        except ConfigError as exc:
            problems += exc.problems
        try:
            bots = load_bots(Path(path))
        except BotLoadError as exc:
            if not problems:
                raise
            problems += exc.problems
        if problems:
            raise ConfigError(problems)
        memory = await Memory.from_data_dir(path, clock)
        return cls(memory, bots, owns_memory=True)

    async def close(self) -> None:
        """Detach from the janitor; close the memory if this engine opened it."""
        self._timeouts.detach()
        if self._owns_memory:
            await self.memory.close()

    async def __aenter__(self) -> DialogEngine:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- settings ----------------------------------------------------------------------
    def bot(self, bot_id: str) -> Bot:
        """Return the loaded bot ``bot_id``, or raise :class:`UnknownBotError`."""
        found = self.bots.get(bot_id)
        if found is None:
            raise UnknownBotError(
                unknown_bot(bot_id, self.bots, "with flows")
                + " (a bot is a folder bots/<botId>/ with flows/main.flow.json)"
            )
        return found

    def error_reply(self, bot_id: str) -> str:
        """The reply to a failed turn: the engine's, else ``dialog.errorReply``, else default."""
        if self._error_reply is not None:
            return self._error_reply
        configured = getattr(self.memory.settings.for_bot(bot_id), "error_reply", None)
        return configured if isinstance(configured, str) else DEFAULT_ERROR_REPLY

    def max_steps(self, bot_id: str) -> int:
        """Nodes one turn may visit without waiting: the engine's, ``dialog.maxSteps``, 100."""
        if self._max_steps is not None:
            return self._max_steps
        configured = getattr(self.memory.settings.for_bot(bot_id), "max_steps", None)
        return configured if isinstance(configured, int) else DEFAULT_MAX_STEPS

    # -- turns -------------------------------------------------------------------------
    async def process(
        self,
        bot_id: str,
        user_id: str,
        text: str | None = None,
        payload: JsonValue = None,
        channel: str = "api",
        thread_id: str | None = None,
        message_type: str | None = None,
        *,
        message_id: str | None = None,
    ) -> list[str]:
        """Handle one user message; return the bot's replies in order (see :meth:`answer`)."""
        answer = await self.answer(
            bot_id, user_id, text, payload, channel, thread_id, message_type, message_id=message_id
        )
        return answer.replies

    async def answer(
        self,
        bot_id: str,
        user_id: str,
        text: str | None = None,
        payload: JsonValue = None,
        channel: str = "api",
        thread_id: str | None = None,
        message_type: str | None = None,
        *,
        message_id: str | None = None,
        memories: bool = False,
    ) -> Answer:
        """Handle one user message: the bot's replies in order, and with ``memories``
        the four memories as this turn committed them, without loading them again.

        ``message_type`` is one of :data:`~botmemory.dialog.events.MESSAGE_TYPES`; by
        default ``"text"`` when there is a text, else ``"payload"``. Flows see it as
        ``event.type`` and ``session.lastMessages`` keeps it. With ``message_id``, a
        message its session already processed is not run again: the replies of its
        first run are returned.

        Raises only for a bad call (unknown bot, invalid id, no text and no payload, a
        message over ``limits.maxMessageBytes``: :class:`MessageTooLargeError`, or a text
        with half of a surrogate pair: :class:`InvalidValueError`, nothing stored), a
        storage outage, or a turn that kept conflicting
        (:class:`~botmemory.errors.ConflictError`); a failure inside the turn returns
        ``[error reply]`` with nothing persisted.
        """
        bot = self.bot(bot_id)
        event = _incoming(bot_id, user_id, channel, thread_id, text, payload, message_type)
        check_message_size(event.message(), self.memory.settings.for_bot(bot_id).max_message_bytes)
        runners: list[FlowRunner] = []
        ended_first: list[SessionRecord] = []
        timed_out_first: list[bool] = []
        late: list[str] = []  # a late dialog timeout's replies, committed: never lost

        async def body(state: TurnState) -> list[str]:
            if state.timed_out_session is not None and not ended_first:
                ended_first.append(state.timed_out_session)
                raise _EndSessionFirst  # before anything: the turn writes nothing
            if POSITION_KEY in state.expired_temp and not timed_out_first:
                timed_out_first.append(True)
                raise _TimeoutFirst  # the same
            runners.append(self.runner(bot, event, state))
            replies = await self._message(bot, runners[-1])
            state.replies = [*late, *replies]  # what a copy of the message is answered
            return replies

        async def turn() -> list[str]:
            return await self.memory.run_turn(
                body, bot_id, user_id, channel, thread_id, event.message(), message_id=message_id
            )

        try:
            while True:  # each of the two is handled once at most, before the message
                try:
                    replies = await turn()
                    break
                except _EndSessionFirst:
                    late += await self._timeouts.end_late(ended_first[0])
                except _TimeoutFirst:
                    late += await self._timeouts.late_timeout(event)
        except DuplicateMessageError as duplicate:
            return Answer(late + [str(reply) for reply in duplicate.replies])
        except (BackendUnavailableError, LockTimeoutError, ConflictError):
            if late:  # committed already: they go where the janitor's go
                await self._timeouts.deliver_late(event, late)
            raise  # the storage is down or busy: the caller retries (HTTP 503)
        except Exception as exc:
            self.log_failure("message", event, runners[-1] if runners else None, exc)
            return Answer([*late, self.error_reply(bot_id)])
        # the last attempt's state is what the commit wrote; nothing changes it any more
        return Answer(late + replies, _plain_memories(runners[-1].state) if memories else None)

    def runner(self, bot: Bot, event: Event, state: TurnState) -> FlowRunner:
        """Return a flow runner for one turn of ``bot``, over the turn's key-value store."""
        return FlowRunner(bot, event, state, state.kvs, self.max_steps(bot.bot_id))

    async def _message(self, bot: Bot, runner: FlowRunner) -> list[str]:
        event, state, kvs = runner.event, runner.state, runner.kvs
        await run_hooks(bot.hooks.get("before_incoming", ()), event, state, kvs)
        await run_hooks(bot.hooks.get("after_incoming", ()), event, state, kvs)
        await runner.on_message()
        return await before_outgoing(bot.hooks, event, runner.replies, state, kvs)

    def log_failure(
        self, what: str, event: Event, runner: FlowRunner | None, exc: BaseException
    ) -> None:
        """Log one line naming the bot, flow and node of a failed turn, with the traceback."""
        flow = exc.flow if isinstance(exc, DialogError) and exc.flow else None
        node = exc.node if isinstance(exc, DialogError) and exc.node else None
        if runner is not None:
            flow, node = flow or runner.flow, node or runner.node
        log.error(
            "dialog %s failed, nothing was saved: bot=%s flow=%s node=%s user=%s: %s: %s",
            what,
            event.bot_id,
            flow or "-",
            node or "-",
            event.user_id,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )


class _EndSessionFirst(TurnAbandonedError):
    """A message found its session timed out and not dropped yet: end it first."""


class _TimeoutFirst(TurnAbandonedError):
    """A message found its dialog timed out and not swept yet: handle the timeout first,
    in a turn of its own, as the janitor would (a failure there is logged, and the
    message then goes on without the timed-out temp memory)."""


def _plain_memories(state: TurnState) -> dict[str, dict[str, JsonValue]]:
    """The plain values of the four memories of a finished turn."""
    return {
        "user": dict(state.user.items()),
        "session": dict(state.session.items()),
        "temp": dict(state.temp.items()),
        "bot": dict(state.bot.items()),
    }


def _incoming(
    bot_id: str,
    user_id: str,
    channel: str,
    thread_id: str | None,
    text: str | None,
    payload: JsonValue,
    message_type: str | None = None,
) -> Event:
    Identity.of(bot_id, user_id, channel, thread_id)
    if text is not None and not isinstance(text, str):
        raise InvalidValueError(f"text {text!r} must be a string")
    if text is None and payload is None:
        raise InvalidValueError("a message needs a text or a payload (or both)")
    to_json_text(payload, "payload", 1 << 30)
    kind = message_type or ("text" if text is not None else "payload")
    if kind not in MESSAGE_TYPES:
        raise InvalidValueError(
            f"message type {kind!r} is not known: use one of {', '.join(MESSAGE_TYPES)}"
        )
    if kind == "text" and text is None:
        raise InvalidValueError("a message of type 'text' needs a text")
    return Event(kind, bot_id, user_id, channel, thread_id, text, payload)
