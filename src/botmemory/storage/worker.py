"""A thread that runs blocking calls for the event loop, in order, in batches.

Like ``loop.run_in_executor`` with one worker, but when several calls are waiting the
thread runs them all and wakes the event loop once for the whole batch. Waking the loop
costs about as much as a small SQLite query, so under concurrent turns this keeps
the cost of leaving the event loop from growing with the number of calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Worker", "deliver", "settle"]

T = TypeVar("T")

log = logging.getLogger("botmemory.storage")

_Job = tuple[Callable[[], Any], asyncio.Future[Any] | None]
_Done = tuple[asyncio.Future[Any], Any, BaseException | None]


class Worker:
    """One thread that runs submitted functions one after the other."""

    def __init__(self, name: str, closed: Callable[[], Exception]) -> None:
        """``closed`` builds the error raised by calls made after :meth:`stop`."""
        self._closed = closed
        self._stopped = False
        self._count_lock = threading.Lock()
        self._unfinished = 0
        self._when_idle: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = []
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the worker thread and return its result."""
        if self._stopped:
            raise self._closed()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._submit((fn, future))
        return await future

    def post(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the worker thread without waiting; it reports its own outcome."""
        if self._stopped:
            raise self._closed()
        self._submit((fn, None))

    def idle(self) -> bool:
        """Whether every submitted function has returned (none waits or runs)."""
        return self._unfinished == 0

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the running event loop once every function submitted
        so far, and any submitted meanwhile, has returned (in the next pass if none
        is left now)."""
        loop = asyncio.get_running_loop()
        with self._count_lock:
            if self._unfinished:
                self._when_idle.append((loop, callback))
                return
        loop.call_soon(callback)

    async def drained(self) -> None:
        """Return once the thread has no function left to run (see :meth:`when_idle`)."""
        done = asyncio.get_running_loop().create_future()
        self.when_idle(lambda: None if done.done() else done.set_result(None))
        await done

    def _submit(self, job: _Job) -> None:
        with self._count_lock:
            self._unfinished += 1
        self._jobs.put(job)

    def _finished(self) -> None:
        with self._count_lock:
            self._unfinished -= 1
            if self._unfinished or not self._when_idle:
                return
            waiting, self._when_idle = self._when_idle, []
        for loop, callback in waiting:
            with contextlib.suppress(RuntimeError):  # the loop was closed: nobody waits
                loop.call_soon_threadsafe(callback)

    def stop(self) -> None:
        """Finish the calls already submitted, then end the thread; later calls fail."""
        if self._stopped:
            return
        self._stopped = True
        self._jobs.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while True:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[_Job]) -> None:
        done: list[_Done] = []
        for fn, future in batch:
            if future is None:
                try:
                    fn()
                except Exception:  # a posted job reports its own outcome; never kill the thread
                    log.exception("a job on the %s thread failed", threading.current_thread().name)
                finally:
                    self._finished()
                continue
            try:
                outcome: _Done = (future, fn(), None)
            except BaseException as exc:  # handed to the caller, who raises it
                outcome = (future, None, exc)
            finally:
                self._finished()
            done.append(outcome)
        settle(done)


def settle(outcomes: list[_Done], current: asyncio.AbstractEventLoop | None = None) -> None:
    """Settle futures of any event loop: at once those of ``current`` (the caller's own
    loop), the others on their loop's thread."""
    loops: dict[asyncio.AbstractEventLoop, list[_Done]] = {}
    for outcome in outcomes:
        loops.setdefault(outcome[0].get_loop(), []).append(outcome)
    for loop, done in loops.items():
        if loop is current:
            deliver(done)
            continue
        with contextlib.suppress(RuntimeError):  # the loop was closed: nobody waits
            loop.call_soon_threadsafe(deliver, done)


def deliver(outcomes: list[_Done]) -> None:
    """Set the result or exception of each future (on its event loop's thread)."""
    for future, result, exc in outcomes:
        if future.cancelled():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
