"""Ending background tasks without swallowing the caller's own cancellation."""

from __future__ import annotations

import asyncio

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[object]) -> None:
    """Cancel ``task`` and wait until it has ended.

    The ``CancelledError`` that ``task`` ends with is absorbed, but not one aimed at the
    caller while it waits: ``contextlib.suppress(CancelledError)`` would swallow both, and
    a caller being cancelled (a janitor loop being stopped) would carry on as if not.
    """
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
