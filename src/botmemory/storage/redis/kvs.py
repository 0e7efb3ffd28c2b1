"""The key-value store of the Redis backend.

Each KVS key is one Redis string holding its ``expires_at`` and value, with a native
TTL when it expires, counted from botmemory's clock at the write (see
:func:`~.layout.native_ttl_ms`). Per namespace, ``kvs-keys`` lists every name (a sorted
set with all scores 0, so that a prefix is a lex range) and ``due:kvs`` the names that
expire, scored by ``expires_at``: reads check that score or the stored time against
``now``.
Every write stores a new version with the value (see :mod:`.layout`). A write to a bot's
namespace also sets the bot's ``registered`` marker, and registers the bot again with
the janitor when the marker was missing (see :mod:`.expiry`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Final, TypeVar, cast

from redis import exceptions as rx
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from botmemory.durations import Seconds, parse_duration
from botmemory.storage.base import KvsModifier, KvsRecord, new_version
from botmemory.storage.redis.layout import (
    BotKeys,
    KvsKeys,
    kvs_keys,
    native_ttl_ms,
    pack_kvs,
    unpack_kvs,
)

__all__ = ["RedisKvs", "raise_if_broken"]

T = TypeVar("T")
_CHUNK: Final = 1000
_BACKOFF_FIRST: Final = parse_duration("1ms")
_BACKOFF_MOST: Final = parse_duration("100ms")


def raise_if_broken(exc: rx.WatchError) -> None:
    """Raise the connection error behind ``exc``, if there is one.

    redis-py reports a connection lost during a watched ``EXEC`` as a WatchError; that
    ``EXEC`` may have run, so it must fail, not be retried as a conflict.
    """
    if isinstance(exc.__context__, rx.ConnectionError | rx.TimeoutError | OSError):
        raise exc.__context__


class RedisKvs:
    """KVS operations; Redis errors propagate to the storage, which translates them."""

    def __init__(
        self,
        client: Redis,
        prefix: str,
        ttl_grace: Seconds,
        register: Callable[[str], Awaitable[None]],
        register_again: Callable[[str], Awaitable[None]],
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_grace = ttl_grace
        self._register = register
        self._register_again = register_again
        self._modifying: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}
        """Per key being modified: a lock, and how many calls hold or wait for it."""

    @contextlib.asynccontextmanager
    async def one_at_a_time(self, namespace: str, key: str) -> AsyncIterator[None]:
        """Run this process's modifies of one key one after the other (around :meth:`modify`).

        They would otherwise all ``WATCH`` the key and all but one start again: with many
        at once, a hot key's increments repeat each other's round trips for seconds.
        Other processes still conflict, and back off (:func:`_backoff`).
        """
        where = (namespace, key)
        lock, users = self._modifying.setdefault(where, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._modifying[where]

    def _ns(self, namespace: str) -> KvsKeys:
        return kvs_keys(self._prefix, namespace)

    def _mark(self, pipe: Pipeline, namespace: str) -> None:
        """Queue setting the bot's ``registered`` marker (first in the transaction)."""
        if namespace:
            pipe.set(BotKeys.of(self._prefix, namespace).registered, "1", nx=True)

    async def _registered(self, namespace: str, replies: list[object]) -> None:
        """Register the bot again if the write found its marker missing."""
        if namespace and replies[0]:
            await self._register_again(namespace)

    def _store(
        self, pipe: Pipeline, ns: KvsKeys, key: str, record: KvsRecord | None, now: float
    ) -> None:
        """Queue writing ``record`` (``None``: deleting it) with a new version.

        ``now`` is botmemory's clock at the write: the native TTL counts from it.
        """
        if record is None:
            pipe.delete(ns.data(key))
            pipe.zrem(ns.names, key)
            pipe.zrem(ns.due, key)
            return
        expires_at = record.expires_at
        expiry = None if expires_at is None else native_ttl_ms(expires_at, now, self._ttl_grace)
        packed = pack_kvs(replace(record, version=new_version()))
        pipe.set(ns.data(key), packed, px=expiry)  # no px: clears an earlier TTL
        pipe.zadd(ns.names, {key: 0})
        if record.expires_at is None:
            pipe.zrem(ns.due, key)
        else:
            pipe.zadd(ns.due, {key: record.expires_at})

    async def get(self, namespace: str, key: str, now: float) -> KvsRecord | None:
        """See :meth:`Storage.kvs_get`."""
        raw = cast(str | None, await self._redis.get(self._ns(namespace).data(key)))
        return unpack_kvs(raw, now)

    async def put(self, namespace: str, key: str, now: float, record: KvsRecord) -> None:
        """See :meth:`Storage.kvs_put`; the native TTL counts from ``now``."""
        if namespace:
            await self._register(namespace)
        pipe = self._redis.pipeline(transaction=True)
        self._mark(pipe, namespace)
        self._store(pipe, self._ns(namespace), key, record, now)
        await self._registered(namespace, await pipe.execute())

    async def modify(self, namespace: str, key: str, now: float, modify: KvsModifier[T]) -> T:
        """Read, call ``modify`` and write under ``WATCH``; start again if the key changed."""
        if namespace:
            await self._register(namespace)
        ns = self._ns(namespace)
        async with self._redis.pipeline(transaction=True) as pipe:
            conflicts = 0
            while True:
                await pipe.watch(ns.data(key))
                raw = cast(str | None, await pipe.get(ns.data(key)))
                record, result = modify(unpack_kvs(raw, now))
                pipe.multi()  # type: ignore[no-untyped-call]
                self._mark(pipe, namespace)
                self._store(pipe, ns, key, record, now)
                try:
                    replies = await pipe.execute()
                except rx.WatchError as exc:
                    raise_if_broken(exc)
                    conflicts += 1  # another process changed the key: read it again
                    await asyncio.sleep(_backoff(conflicts))
                    continue
                await self._registered(namespace, replies)
                return result

    async def delete(self, namespace: str, key: str, now: float) -> bool:
        """See :meth:`Storage.kvs_delete`."""
        ns = self._ns(namespace)
        pipe = self._redis.pipeline(transaction=True)
        pipe.get(ns.data(key))
        self._store(pipe, ns, key, None, now)
        raw, *_ = await pipe.execute()
        return unpack_kvs(raw, now) is not None

    async def _names(self, ns: KvsKeys, prefix: str) -> list[str]:
        """Every name that starts with ``prefix``, by lex range (UTF-8 never holds 0xff)."""
        low, high = b"-", b"+"
        if prefix:
            low, high = b"[" + prefix.encode(), b"(" + prefix.encode() + b"\xff"
        return cast(list[str], await self._redis.zrange(ns.names, low, high, bylex=True))

    async def names(self, namespace: str, prefix: str) -> list[str]:
        """Every name of ``namespace`` that starts with ``prefix``, expired or not."""
        return await self._names(self._ns(namespace), prefix)

    async def keys(self, namespace: str, prefix: str, now: float) -> list[str]:
        """See :meth:`Storage.kvs_keys`."""
        ns = self._ns(namespace)
        names = await self._names(ns, prefix)
        if not names:
            return []
        expiries = await self._redis.zmscore(ns.due, names)
        return [n for n, e in zip(names, expiries, strict=True) if e is None or e > now]

    async def delete_prefix(self, namespace: str, prefix: str) -> int:
        """See :meth:`Storage.kvs_delete_prefix`."""
        ns = self._ns(namespace)
        names = await self._names(ns, prefix)
        deleted = 0
        for start in range(0, len(names), _CHUNK):
            chunk = names[start : start + _CHUNK]
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(*(ns.data(name) for name in chunk))
            pipe.zrem(ns.names, *chunk)  # counts what this call removed, live or not
            pipe.zrem(ns.due, *chunk)
            deleted += (await pipe.execute())[1]
        return deleted


def _backoff(attempt: int) -> Seconds:
    """A random pause before attempt ``attempt`` (1, 2, ...) of a modify that conflicted.

    Full jitter, doubling up to 100 ms: processes that conflicted on a hot key spread
    out instead of coming back together.
    """
    return Seconds(random.uniform(0, min(_BACKOFF_MOST, _BACKOFF_FIRST * 2**attempt)))
