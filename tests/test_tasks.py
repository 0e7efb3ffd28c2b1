"""``cancel_and_wait``: a stopped task's cancellation is absorbed, the caller's is not."""

from __future__ import annotations

import asyncio

import pytest

from botmemory.tasks import cancel_and_wait


def slow_to_stop(release: asyncio.Event) -> asyncio.Task[None]:
    """A task that, once cancelled, waits for ``release`` before it ends."""

    async def run() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()
            raise

    return asyncio.create_task(run())


async def test_the_task_ends_and_its_cancellation_is_absorbed() -> None:
    release = asyncio.Event()
    release.set()
    task = slow_to_stop(release)
    await asyncio.sleep(0)
    await cancel_and_wait(task)  # no CancelledError here
    assert task.cancelled()


async def test_a_caller_cancelled_while_it_waits_is_cancelled_still() -> None:
    release = asyncio.Event()
    task = slow_to_stop(release)
    await asyncio.sleep(0)
    caller = asyncio.create_task(cancel_and_wait(task))
    await asyncio.sleep(0)
    caller.cancel()  # while it waits for the task to end
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert task.cancelled()
