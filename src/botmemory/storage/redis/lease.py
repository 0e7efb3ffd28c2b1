"""Leases on Redis keys: a lock that several processes on several hosts can share.

A lease is a key holding a random token with a timeout (``SET NX PX``). Its holder
renews it every third of the timeout while it runs, and releases it with a script that
deletes the key only if it still holds the holder's token. A holder that dies stops
renewing, so its lease lapses after the timeout and another process takes over.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from typing import Any, Final

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from botmemory.durations import Seconds
from botmemory.storage.redis.scripts import Scripts
from botmemory.tasks import cancel_and_wait

__all__ = ["Lease", "Leases"]

log = logging.getLogger("botmemory.storage.redis")

_FIRST_POLL: Final = Seconds(0.005)  # 5 ms
_MAX_POLL: Final = Seconds(0.1)  # 100 ms


class Lease:
    """One attempt to hold the lease on ``key`` for ``timeout`` at a time."""

    def __init__(self, client: Redis, scripts: Scripts, key: str, timeout: Seconds) -> None:
        self.key = key
        self.token = secrets.token_hex(16)
        self._client = client
        self._timeout_ms = max(1, int(timeout * 1000))
        self._release = scripts.release
        self._renew = scripts.renew
        self._renewer: asyncio.Task[None] | None = None

    async def try_take(self) -> bool:
        """Take the lease if it is free; start renewing it."""
        taken = bool(await self._client.set(self.key, self.token, nx=True, px=self._timeout_ms))
        if taken:
            self._renewer = asyncio.create_task(self._keep(), name=f"botmemory-lease {self.key}")
        return taken

    async def take(self, wait: Seconds) -> bool:
        """Take the lease, polling for up to ``wait``; return whether it was taken."""
        deadline = time.monotonic() + wait
        pause: float = _FIRST_POLL
        while not await self.try_take():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(left, pause * random.uniform(0.5, 1.5)))
            pause = min(pause * 2, _MAX_POLL)
        return True

    async def release(self) -> bool:
        """Stop renewing and release the lease if it is still ours; return whether it was."""
        await self.stop()
        return bool(await self._call(self._release, self.token))

    async def stop(self) -> None:
        """Stop renewing the lease."""
        task, self._renewer = self._renewer, None
        if task is not None:
            await cancel_and_wait(task)

    async def _keep(self) -> None:
        interval = self._timeout_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self._call(self._renew, self.token, self._timeout_ms):
                    log.warning("lease %s was lost: another process may hold it now", self.key)
                    return
            except (RedisError, OSError) as exc:  # it may lapse; the holder's writes fail too
                log.warning("cannot renew lease %s: %s", self.key, exc)

    async def _call(self, script: AsyncScript, *args: Any) -> Any:
        return await script(keys=[self.key], args=args)


class Leases:
    """The leases one storage takes, on any key, with one timeout."""

    def __init__(self, client: Redis, scripts: Scripts, timeout: Seconds) -> None:
        self._client = client
        self._scripts = scripts
        self._timeout = timeout
        self._held: set[Lease] = set()
        self._stale: dict[str, str] = {}
        """Tokens of our leases that Redis could not be told to release."""

    async def take(self, key: str, wait: Seconds | None) -> Lease | None:
        """Take the lease on ``key``, waiting up to ``wait`` (``None``: no wait)."""
        stale = self._stale.get(key)
        if stale is not None:
            await self._scripts.release(keys=[key], args=[stale])
            del self._stale[key]
        lease = Lease(self._client, self._scripts, key, self._timeout)
        taken = await (lease.try_take() if wait is None else lease.take(wait))
        if not taken:
            return None
        self._held.add(lease)
        return lease

    async def release(self, lease: Lease) -> None:
        """Release ``lease``; if Redis cannot be reached, retry when the key is next taken."""
        self._held.discard(lease)
        try:
            released = await lease.release()
        except (RedisError, OSError) as exc:
            log.warning("cannot release lease %s (it lapses by itself): %s", lease.key, exc)
            self._stale[lease.key] = lease.token
            return
        if not released:
            log.warning("lease %s had lapsed before its release: raise lease_timeout", lease.key)

    async def close(self) -> None:
        """Stop renewing every lease still held: they lapse after the timeout."""
        for lease in list(self._held):
            await lease.stop()
        self._held.clear()
