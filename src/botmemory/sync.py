"""A thin synchronous facade over :class:`~botmemory.memory.Memory`, for scripts.

::

    with SyncMemory.open("sqlite:///data/memory.db") as mem:
        with mem.turn("welcome", "u1") as state:
            state.user["name"] = "Ada"
        print(mem.kvs("welcome").get("greeting"))

It runs its own event loop on a background thread; do not use it inside ``async`` code.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager
from types import TracebackType
from typing import Any, TypeVar

from botmemory.clock import Clock
from botmemory.errors import ConflictError
from botmemory.janitor import JanitorReport
from botmemory.kvs import Expiry, KeyValueStore
from botmemory.memory import Memory, retry_wait
from botmemory.turns import TurnState
from botmemory.values import JsonValue
from botmemory.views import ErasureCounts, MemoryView, UserExport

__all__ = ["SyncKeyValueStore", "SyncMemory"]

T = TypeVar("T")


class _Loop:
    """An event loop running on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class SyncKeyValueStore:
    """Blocking version of :class:`~botmemory.kvs.KeyValueStore`."""

    def __init__(self, kvs: KeyValueStore, loop: _Loop) -> None:
        self._kvs = kvs
        self._loop = loop

    def get(self, key: str, path: str | None = None, default: JsonValue = None) -> JsonValue:
        """See :meth:`KeyValueStore.get`."""
        return self._loop.run(self._kvs.get(key, path, default))

    def set(
        self, key: str, value: JsonValue, path: str | None = None, expiry: Expiry = None
    ) -> None:
        """See :meth:`KeyValueStore.set`."""
        self._loop.run(self._kvs.set(key, value, path, expiry))

    def delete(self, key: str) -> bool:
        """See :meth:`KeyValueStore.delete`."""
        return self._loop.run(self._kvs.delete(key))

    def exists(self, key: str) -> bool:
        """See :meth:`KeyValueStore.exists`."""
        return self._loop.run(self._kvs.exists(key))

    def keys(self, prefix: str = "") -> list[str]:
        """See :meth:`KeyValueStore.keys`."""
        return self._loop.run(self._kvs.keys(prefix))

    def delete_prefix(self, prefix: str) -> int:
        """See :meth:`KeyValueStore.delete_prefix`."""
        return self._loop.run(self._kvs.delete_prefix(prefix))

    def incr(self, key: str, by: int | float = 1, expiry: Expiry = None) -> int | float:
        """See :meth:`KeyValueStore.incr`."""
        return self._loop.run(self._kvs.incr(key, by, expiry))

    def add(self, key: str, by: int | float = 1, expiry: Expiry = None) -> None:
        """See :meth:`KeyValueStore.add`."""
        self._loop.run(self._kvs.add(key, by, expiry))


class SyncMemory:
    """Blocking version of :class:`~botmemory.memory.Memory`."""

    def __init__(self, memory: Memory, loop: _Loop) -> None:
        self.memory = memory
        self._loop = loop

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop, on a thread of its own, that runs the memory."""
        return self._loop.loop

    @classmethod
    def open(
        cls,
        url: str | None = None,
        config: Mapping[str, object] | None = None,
        bot_configs: Mapping[str, Mapping[str, object]] | None = None,
        clock: Clock | None = None,
    ) -> SyncMemory:
        """See :meth:`Memory.open`."""
        loop = _Loop()
        return cls(loop.run(Memory.open(url, config, bot_configs, clock)), loop)

    @classmethod
    def from_data_dir(cls, path: str | os.PathLike[str], clock: Clock | None = None) -> SyncMemory:
        """See :meth:`Memory.from_data_dir`."""
        loop = _Loop()
        return cls(loop.run(Memory.from_data_dir(path, clock)), loop)

    @contextmanager
    def turn(
        self,
        bot_id: str,
        user_id: str,
        channel: str = "api",
        thread_id: str | None = None,
        message: Mapping[str, JsonValue] | None = None,
        *,
        message_id: str | None = None,
    ) -> Iterator[TurnState]:
        """See :meth:`Memory.turn`: the body runs in the caller's thread."""
        manager = self.memory.turn(
            bot_id, user_id, channel, thread_id, message, message_id=message_id
        )
        with self._entered(manager) as state:
            yield state

    @contextmanager
    def edit(
        self, bot_id: str, user_id: str, channel: str = "api", thread_id: str | None = None
    ) -> Iterator[TurnState]:
        """See :meth:`Memory.edit`: the body runs in the caller's thread."""
        with self._entered(self.memory.edit(bot_id, user_id, channel, thread_id)) as state:
            yield state

    @contextmanager
    def _entered(self, manager: AbstractAsyncContextManager[TurnState]) -> Iterator[TurnState]:
        """Enter and exit ``manager`` on the loop, running the body in the caller's thread.

        The body's ``state.kvs`` is the turn's key-value store, blocking: a
        :class:`SyncKeyValueStore` (its writes commit with the turn, or not at all).
        """
        state = self._loop.run(manager.__aenter__())
        # blocking, as the body is; type checkers see the async type of TurnState.kvs
        state.kvs = SyncKeyValueStore(state.kvs, self._loop)  # type: ignore[assignment]
        try:
            yield state
        except BaseException as exc:
            self._loop.run(manager.__aexit__(type(exc), exc, exc.__traceback__))
            raise
        self._loop.run(manager.__aexit__(None, None, None))

    def run_turn(
        self,
        body: Callable[[TurnState], T],
        bot_id: str,
        user_id: str,
        channel: str = "api",
        thread_id: str | None = None,
        message: Mapping[str, JsonValue] | None = None,
        *,
        message_id: str | None = None,
    ) -> T:
        """See :meth:`Memory.run_turn`: ``body(state)`` runs in the caller's thread,
        again from a fresh load when a concurrent turn changed what it read."""
        attempts = self.memory.settings.max_attempts
        for attempt in range(attempts):
            try:
                with self.turn(
                    bot_id, user_id, channel, thread_id, message, message_id=message_id
                ) as state:
                    return body(state)
            except ConflictError:
                self.memory.stats.conflicted()
                if attempt + 1 == attempts:
                    raise
            self.memory.stats.retried()
            time.sleep(retry_wait(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def kvs(self, bot_id: str | None = None) -> SyncKeyValueStore:
        """The key-value store of ``bot_id``, or the global one when ``None``."""
        kvs = self.memory.kvs.for_global() if bot_id is None else self.memory.kvs.for_bot(bot_id)
        return SyncKeyValueStore(kvs, self._loop)

    def run_janitor(self) -> JanitorReport:
        """See :meth:`Janitor.run_once`."""
        return self._loop.run(self.memory.janitor.run_once())

    def peek(
        self, bot_id: str, user_id: str, channel: str = "api", thread_id: str | None = None
    ) -> MemoryView:
        """See :meth:`Memory.peek`."""
        return self._loop.run(self.memory.peek(bot_id, user_id, channel, thread_id))

    def end_session(
        self, bot_id: str, user_id: str, channel: str = "api", thread_id: str | None = None
    ) -> bool:
        """See :meth:`Memory.end_session`."""
        return self._loop.run(self.memory.end_session(bot_id, user_id, channel, thread_id))

    def export_user(self, bot_id: str, user_id: str, channel: str = "api") -> UserExport:
        """See :meth:`Memory.export_user`."""
        return self._loop.run(self.memory.export_user(bot_id, user_id, channel))

    def forget_user(self, bot_id: str, user_id: str, channel: str = "api") -> ErasureCounts:
        """See :meth:`Memory.forget_user`."""
        return self._loop.run(self.memory.forget_user(bot_id, user_id, channel))

    def close(self) -> None:
        """Close the memory and stop the background loop."""
        try:
            self._loop.run(self.memory.close())
        finally:
            self._loop.stop()

    def __enter__(self) -> SyncMemory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
