"""The LangGraph store over a botmemory :class:`~botmemory.memory.Memory`."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import math
from collections.abc import Coroutine, Iterable, Mapping
from datetime import timedelta
from typing import Any, Literal, TypeVar

from langgraph.store.base import (
    NOT_PROVIDED,
    BaseStore,
    GetOp,
    ListNamespacesOp,
    NotProvided,
    Op,
    PutOp,
    Result,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)

from botmemory.durations import (
    MAX_SECONDS,
    MIN_LIFETIME,
    DurationInput,
    Seconds,
    parse_duration,
    parse_interval,
)
from botmemory.errors import ConfigError, InvalidDurationError, InvalidValueError, WrongLoopError
from botmemory.ids import validate_bot_id
from botmemory.integrations.langgraph._keys import Namespace
from botmemory.integrations.langgraph._ops import ForgetReport, StoreOps
from botmemory.integrations.langgraph._retention import StorePolicies
from botmemory.memory import Memory
from botmemory.sync import SyncMemory

__all__ = ["BotMemoryStore", "minutes"]

T = TypeVar("T")
DEFAULT_BOT_ID = "langgraph"


def minutes(value: object, where: str) -> Seconds:
    """Return a LangGraph time to live, given in minutes by its API, as a duration."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidDurationError(f"{where}: {value!r} is not a number of minutes")
    if value * 60 < MIN_LIFETIME:
        raise InvalidDurationError(
            f"{where}: {value!r} minutes must be more than zero, and at least 1ms "
            "(less would expire at once)"
        )
    if value * 60 > MAX_SECONDS:  # before a timedelta, which overflows past 10**12 minutes
        raise InvalidDurationError(
            f"{where}: {value!r} minutes is longer than 1000 years: give None (no expiry)"
        )
    return parse_duration(timedelta(minutes=value), where=where)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class BotMemoryStore(BaseStore):
    """A LangGraph ``BaseStore`` whose items live in botmemory's key-value store.

    Over any backend (memory, SQLite, PostgreSQL, Redis). An item expires exactly when
    its time to live ends: it is never returned afterwards, whether or not the sweeper
    (botmemory's janitor) has removed it yet. ``retention`` maps patterns such as
    ``"users/*/mood"`` to durations such as ``"1d"`` (see :mod:`._retention`).
    :meth:`forget` erases everything under a namespace and says how much.

    Built over a :class:`~botmemory.sync.SyncMemory`, or over a ``Memory`` inside async
    code; either way the blocking methods (``put``, ``get``...) work from any thread but
    the memory's event loop, where the ``a``-prefixed ones are to be awaited.
    Semantic search is not supported: a ``query`` without an index is ignored, as
    LangGraph's stores do, and configuring an ``index`` is an error.
    """

    supports_ttl = True

    def __init__(
        self,
        memory: Memory | SyncMemory,
        *,
        bot_id: str = DEFAULT_BOT_ID,
        ttl: TTLConfig | None = None,
        retention: Mapping[str, DurationInput | None] | None = None,
        index: object = None,
    ) -> None:
        if index is not None:
            raise ConfigError(
                [
                    "index: semantic (vector) search is not supported by botmemory's store; "
                    "remove index= and search with filter= instead"
                ]
            )
        self._loop = self._loop_of(memory)
        self.memory = memory.memory if isinstance(memory, SyncMemory) else memory
        self.ttl_config = ttl
        self._sweep_minutes = (ttl or {}).get("sweep_interval_minutes")
        if (ttl or {}).get("default_ttl") is not None:
            minutes((ttl or {}).get("default_ttl"), "ttl.default_ttl")
        self.policies = StorePolicies(retention)
        self._ops = StoreOps(
            self.memory.storage,
            validate_bot_id(bot_id),
            self.memory.clock,
            self.policies,
            self.memory.settings.defaults.max_value_bytes,
        )
        self._sweeper: cf.Future[None] | None = None

    @staticmethod
    def _loop_of(memory: Memory | SyncMemory) -> asyncio.AbstractEventLoop:
        if isinstance(memory, SyncMemory):
            return memory.event_loop
        loop = _running_loop()
        if loop is None:
            raise WrongLoopError(
                "BotMemoryStore(memory): create it inside async code, on the event loop "
                "the Memory runs on, or pass a SyncMemory"
            )
        return loop

    # -- running on the memory's loop -----------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the memory's loop and wait for it (from another thread)."""
        if _running_loop() is self._loop:
            coro.close()
            raise WrongLoopError(
                "a blocking BotMemoryStore method was called on the memory's event loop: "
                "await its async version (aget, aput, asearch, abatch...)"
            )
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _await(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the memory's loop, from it or from another loop."""
        if _running_loop() is self._loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    # -- BaseStore ------------------------------------------------------------------
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops``: reads first, in order, then writes (the last one to a key wins)."""
        return self._call(self._run(list(ops)))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Asynchronous :meth:`batch`."""
        return await self._await(self._run(list(ops)))

    async def _run(self, ops: list[Op]) -> list[Result]:
        results: list[Result] = [None] * len(ops)
        puts: dict[tuple[Namespace, str], tuple[PutOp, Seconds | None]] = {}
        for op in ops:
            validate_op_namespace(op)
            if isinstance(op, PutOp):
                ttl = None if op.ttl is None else minutes(op.ttl, f"ttl of {op.key!r}")
                puts[(tuple(op.namespace), str(op.key))] = (op, ttl)
            elif not isinstance(op, GetOp | SearchOp | ListNamespacesOp):
                raise InvalidValueError(f"{op!r} is not a LangGraph store operation")
        for i, op in enumerate(ops):
            if isinstance(op, GetOp):
                results[i] = await self._ops.get(op)
            elif isinstance(op, SearchOp):
                results[i] = await self._ops.search(op)
            elif isinstance(op, ListNamespacesOp):
                results[i] = await self._ops.list_namespaces(op)
        for put, requested in puts.values():
            await self._ops.put(put, requested)
        return results

    def _ttl(self, namespace: tuple[str, ...], key: str, ttl: float | NotProvided | None) -> Any:
        """A put without ``ttl`` of an item a policy covers ignores ``default_ttl``."""
        if ttl is NOT_PROVIDED and self.policies.for_item(tuple(namespace), str(key)).policed:
            return None
        return ttl

    def put(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> None:
        """Store ``value`` under ``key``; ``ttl`` in minutes (LangGraph's unit)."""
        super().put(namespace, key, value, index, ttl=self._ttl(namespace, key, ttl))

    async def aput(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> None:
        """Asynchronous :meth:`put`."""
        await super().aput(namespace, key, value, index, ttl=self._ttl(namespace, key, ttl))

    # -- botmemory's additions --------------------------------------------------------
    def forget(self, namespace: tuple[str, ...]) -> ForgetReport:
        """Erase every item in ``namespace`` and under it, on every backend; say how many."""
        return self._call(self._ops.forget(namespace))

    async def aforget(self, namespace: tuple[str, ...]) -> ForgetReport:
        """Asynchronous :meth:`forget`."""
        return await self._await(self._ops.forget(namespace))

    def sweep_ttl(self) -> int:
        """Run the janitor once; return how many expired keys it deleted."""
        return self._call(self.memory.janitor.run_once()).kvs

    async def asweep_ttl(self) -> int:
        """Asynchronous :meth:`sweep_ttl`."""
        return (await self._await(self.memory.janitor.run_once())).kvs

    def start_ttl_sweeper(self, sweep_interval_minutes: int | None = None) -> cf.Future[None]:
        """Start the janitor's loop; the future completes when it is stopped."""
        self._set_interval(sweep_interval_minutes)
        self._call(self.memory.janitor.start())
        return self._started()

    async def astart_ttl_sweeper(self, sweep_interval_minutes: int | None = None) -> None:
        """Asynchronous :meth:`start_ttl_sweeper`."""
        self._set_interval(sweep_interval_minutes)
        await self._await(self.memory.janitor.start())
        self._started()

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the janitor's loop; return whether it stopped within ``timeout`` seconds."""
        try:
            self._call(self.memory.janitor.stop(), timeout)
        except TimeoutError:
            return False
        self._stopped()
        return True

    async def astop_ttl_sweeper(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - as LangGraph's
        """Asynchronous :meth:`stop_ttl_sweeper`: whether it stopped within ``timeout``
        seconds (the stop goes on after it if not)."""
        stopping = asyncio.ensure_future(self._await(self.memory.janitor.stop()))
        done, _ = await asyncio.wait({stopping}, timeout=timeout)
        if not done:
            return False
        stopping.result()
        self._stopped()
        return True

    def _set_interval(self, sweep_interval_minutes: int | None) -> None:
        every = sweep_interval_minutes or self._sweep_minutes
        if every is not None:  # an interval, as dataRetention.janitorInterval: >= 100 ms
            where = "sweep_interval_minutes"
            self.memory.janitor.interval = parse_interval(
                timedelta(seconds=minutes(every, where)), where=where
            )

    def _started(self) -> cf.Future[None]:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = cf.Future()
        return self._sweeper

    def _stopped(self) -> None:
        if self._sweeper is not None and not self._sweeper.done():
            self._sweeper.set_result(None)
