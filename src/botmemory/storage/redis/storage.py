"""Redis backend (``redis://`` and ``rediss://``): several processes on several hosts.

redis-py's asyncio client with the hiredis parser. What is stored where is in
:mod:`~botmemory.storage.redis.layout`, the key-value store in
:mod:`~botmemory.storage.redis.kvs`, the janitor's side in
:mod:`~botmemory.storage.redis.expiry`, leases in :mod:`~botmemory.storage.redis.lease`
and the Lua scripts in :mod:`~botmemory.storage.redis.scripts`.
Every decision about expiry reads the times stored in the records (the injected
clock), never Redis' clock; native TTLs only let Redis free whole keys by itself.
A turn's commit is one Lua script that checks the versions the turn read and writes
(:mod:`~botmemory.storage.redis.commit`); turns of one session, and janitor runs, are
serialized across processes by leases, and the versions fence a holder whose lease
lapsed. docs/backends.md explains the choices.

URL query parameters read by botmemory (the others go to redis-py): ``prefix`` (default
``botmemory:``), ``lease_timeout`` (default ``30s``), ``lock_wait`` (default ``60s``),
``ttl_grace`` (default ``1h``) and ``pool_max`` (default ``50``); a Redis Cluster is
``redis+cluster://host:port,host:port/`` (:mod:`~botmemory.storage.redis.client`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar, cast

from redis import exceptions as rx
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from botmemory.durations import Seconds, format_duration
from botmemory.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidValueError,
    LockTimeoutError,
    SchemaVersionError,
)
from botmemory.storage.base import (
    KvsModifier,
    KvsRecord,
    Scope,
    SessionCursor,
    SessionRecord,
    SessionUpdate,
    Storage,
    StoredVar,
    TurnKeys,
    TurnSnapshot,
    TurnWrite,
    UserRecords,
    VarKey,
    VarUpdate,
)
from botmemory.storage.redis.client import CallSlots, RedisOptions, open_client
from botmemory.storage.redis.commit import APPLIED, CONFLICT, INVALID, CommitArgs
from botmemory.storage.redis.errors import driver_errors
from botmemory.storage.redis.expiry import ExpiryIndexes
from botmemory.storage.redis.kvs import RedisKvs, raise_if_broken
from botmemory.storage.redis.layout import (
    LAYOUT_VERSION,
    BotKeys,
    MetaKeys,
    unpack_session,
    unpack_var,
    user_var_member,
)
from botmemory.storage.redis.lease import Lease, Leases
from botmemory.storage.redis.scripts import Scripts
from botmemory.urls import mask_url

__all__ = ["RedisOptions", "RedisStorage"]

T = TypeVar("T")


class RedisStorage(Storage):
    """Store everything in Redis; see the module docstring."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.options = RedisOptions.parse(url)
        self._redis: Redis = open_client(self.options, mask_url(url))
        self._calls = CallSlots(self.options) if self.options.cluster else None
        """A cluster client never waits for a free connection: calls wait here instead."""
        self._meta = MetaKeys.of(self.options.prefix)
        self._scripts = Scripts(self._redis)
        self._expiry = ExpiryIndexes(
            self._redis, self.options.prefix, self._meta.bots, self._scripts
        )
        self._leases = Leases(self._redis, self._scripts, self.options.lease_timeout)
        self._kvs = RedisKvs(
            self._redis,
            self.options.prefix,
            self.options.ttl_grace,
            self._expiry.register,
            self._expiry.register_again,
        )
        self._closed = False

    # -- errors, connection, leases ----------------------------------------------------
    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[None]:
        """Enter redis-py for one storage call; on a cluster, in a call slot first.

        A cluster client never waits for a free connection: calls wait for a slot
        instead (see :class:`~botmemory.storage.redis.client.CallSlots`).
        """
        if self._calls is None:
            with self._errors():
                yield
            return
        async with self._calls.slot():
            with self._errors():
                yield

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate redis-py's errors (the one place: :func:`.errors.driver_errors`)."""
        if self._closed:
            raise BackendUnavailableError(f"the Redis storage {mask_url(self.url)} is closed")
        with driver_errors(mask_url(self.url)):
            yield

    async def open(self) -> None:
        """Check that Redis answers and holds no newer layout; mark an older one upgraded.

        Layout 1 records (without versions) are read as they are, so the upgrade only
        records the new layout number: botmemory versions that predate it then refuse
        the data rather than write records without versions.
        """
        async with self._driver():
            layout = cast(str | None, await self._redis.get(self._meta.layout))
            if layout is None:
                await self._redis.set(self._meta.layout, LAYOUT_VERSION, nx=True)
            elif int(layout) > LAYOUT_VERSION:
                raise SchemaVersionError(
                    f"the data under prefix {self.options.prefix!r} has layout version {layout}, "
                    f"newer than this botmemory knows ({LAYOUT_VERSION}): upgrade botmemory"
                )
            elif int(layout) < LAYOUT_VERSION:
                await self._redis.set(self._meta.layout, LAYOUT_VERSION)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._leases.close()
            with contextlib.suppress(rx.RedisError, OSError):
                await self._redis.aclose()

    def _bot(self, bot_id: str) -> BotKeys:
        return BotKeys.of(self.options.prefix, bot_id)

    def _pipeline(self) -> Pipeline:
        return self._redis.pipeline(transaction=True)

    async def _take(self, key: str, wait: Seconds | None) -> Lease | None:
        with self._errors():  # outside the call slots, like the leases' renewals
            return await self._leases.take(key, wait)

    def session_lock(self, bot_id: str, session_key: str) -> AbstractAsyncContextManager[None]:
        """Serialize the turns of one session in this process, then across processes."""
        return self._session_lease(bot_id, session_key)

    @asynccontextmanager
    async def _session_lease(self, bot_id: str, session_key: str) -> AsyncIterator[None]:
        """The session's lock of this process, then its lease: both within ``lock_wait``."""
        wait = self.options.lock_wait
        deadline = time.monotonic() + wait
        locked_by = f"session {session_key} of bot {bot_id!r} stayed locked by"
        hint = f"for {format_duration(wait)}: raise lock_wait in the URL if turns run that long"
        async with contextlib.AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(wait):
                    await stack.enter_async_context(self._local_session_lock(bot_id, session_key))
            except TimeoutError as exc:
                raise LockTimeoutError(f"{locked_by} another turn of this process {hint}") from exc
            left = Seconds(max(0.0, deadline - time.monotonic()))
            lease = await self._take(self._bot(bot_id).lease(session_key), left)
            if lease is None:
                raise LockTimeoutError(f"{locked_by} another process {hint}")
            try:
                yield
            finally:
                await self._leases.release(lease)

    def retry_lock(self, bot_id: str) -> AbstractAsyncContextManager[object]:
        """Hold the bot's retry lease, waited for up to ``lock_wait`` (then go on without)."""
        return self._retry_lease(bot_id)

    @asynccontextmanager
    async def _retry_lease(self, bot_id: str) -> AsyncIterator[None]:
        lease = await self._take(self._bot(bot_id).retry_lease, self.options.lock_wait)
        try:
            yield
        finally:
            if lease is not None:
                await self._leases.release(lease)

    def janitor_lock(self) -> AbstractAsyncContextManager[bool]:
        """Hold the janitor's lease; yield ``False`` if another process holds it."""
        return self._janitor_lease()

    @asynccontextmanager
    async def _janitor_lease(self) -> AsyncIterator[bool]:
        lease = await self._take(self._meta.janitor_lease, None)
        if lease is None:
            yield False
            return
        try:
            yield True
        finally:
            await self._leases.release(lease)

    # -- turns ---------------------------------------------------------------------
    async def load_turn(self, keys: TurnKeys) -> TurnSnapshot:
        async with self._driver():
            k, sk = self._bot(keys.bot_id), keys.session_key
            pipe = self._pipeline()
            for name in (k.user(keys.user_key), k.bot_vars, k.session(sk)):
                pipe.hgetall(name)
            for name in (k.session_vars(sk), k.temp_vars(sk)):
                pipe.hgetall(name)
            user, bot, session, session_vars, temp_vars = await pipe.execute()
            return TurnSnapshot(
                _vars("user", keys.bot_id, keys.user_key, user),
                _vars("bot", keys.bot_id, "", bot),
                unpack_session(keys.bot_id, sk, session),
                _vars("session", keys.bot_id, sk, session_vars),
                _vars("temp", keys.bot_id, sk, temp_vars),
            )

    async def commit_turn(self, write: TurnWrite) -> None:
        """Check and write in one script (see :mod:`.commit`); a resent commit is a no-op.

        The script refuses the commit with ConflictError when a version it checks
        changed, which also fences a turn whose lease lapsed meanwhile: if another turn
        of the session committed, the session's version changed. A lapsed holder whose
        reads nobody changed commits, as if it had run before the turn that took over.
        """
        async with self._driver():
            call = CommitArgs.of(write, self.options.prefix, self.options.ttl_grace)
            if call is None:
                return
            for bot_id in _bots_of(write):
                await self._expiry.register(bot_id)
            reply = await self._scripts.commit_turn(keys=call.keys, args=call.args)
            if reply[0] == CONFLICT:
                raise ConflictError(f"{reply[1]} since the turn read it: run the turn again")
            if reply[0] == INVALID:
                raise InvalidValueError(str(reply[1]))
            if reply[0] != APPLIED and reply[1] and call.bot_id is not None:
                await self._expiry.register_again(call.bot_id)  # Redis had lost the registry

    # -- key-value store: see kvs ----------------------------------------------------
    async def kvs_get(self, namespace: str, key: str, now: float) -> KvsRecord | None:
        async with self._driver():
            return await self._kvs.get(namespace, key, now)

    async def kvs_put(self, namespace: str, key: str, now: float, record: KvsRecord) -> None:
        async with self._driver():
            await self._kvs.put(namespace, key, now, record)

    async def kvs_modify(self, namespace: str, key: str, now: float, modify: KvsModifier[T]) -> T:
        # the queue first: its waiters hold no connection (nor, on a cluster, a call slot)
        async with self._kvs.one_at_a_time(namespace, key), self._driver():
            return await self._kvs.modify(namespace, key, now, modify)

    async def kvs_delete(self, namespace: str, key: str, now: float) -> bool:
        async with self._driver():
            return await self._kvs.delete(namespace, key, now)

    async def kvs_keys(self, namespace: str, prefix: str, now: float) -> list[str]:
        async with self._driver():
            return await self._kvs.keys(namespace, prefix, now)

    async def kvs_delete_prefix(self, namespace: str, prefix: str) -> int:
        async with self._driver():
            return await self._kvs.delete_prefix(namespace, prefix)

    # -- users -------------------------------------------------------------------------
    async def load_user(self, bot_id: str, user_key: str) -> UserRecords:
        async with self._driver():
            k = self._bot(bot_id)
            keys = sorted(cast(set[str], await self._redis.smembers(k.user_sessions(user_key))))
            pipe = self._pipeline()
            pipe.hgetall(k.user(user_key))
            for sk in keys:
                for name in (k.session(sk), k.session_vars(sk), k.temp_vars(sk)):
                    pipe.hgetall(name)
            user, *found = await pipe.execute()
            records = UserRecords(_vars("user", bot_id, user_key, user), [])
            for i, sk in enumerate(keys):
                session = unpack_session(bot_id, sk, found[3 * i])
                if session is not None:  # else Redis expired it on its own
                    records.sessions.append(session)
                    records.session_vars.extend(_vars("session", bot_id, sk, found[3 * i + 1]))
                    records.temp_vars.extend(_vars("temp", bot_id, sk, found[3 * i + 2]))
            return records

    async def delete_user(
        self, bot_id: str, user_key: str, kvs_prefixes: Sequence[str] = ()
    ) -> dict[str, int]:
        async with self._driver():
            counts = await self._delete_user(bot_id, user_key, kvs_prefixes)
            # keys a turn added under the prefixes while the erasure read them
            late = [await self._kvs.delete_prefix(bot_id, prefix) for prefix in kvs_prefixes]
            return {**counts, "kvs": counts["kvs"] + sum(late)}

    async def _delete_user(
        self, bot_id: str, user_key: str, kvs_prefixes: Sequence[str]
    ) -> dict[str, int]:
        """Delete the user's variables, sessions and keys under ``kvs_prefixes`` in one
        MULTI/EXEC (one slot: the bot's keys share its tag); count them.

        In one transaction, a turn that read one of those keys either commits first, and
        what it wrote from it is erased too, or after, and its check of the key fails: it
        can never copy a key the erasure is about to delete into memory the erasure has
        already deleted.
        """
        k = self._bot(bot_id)
        user, user_sessions = k.user(user_key), k.user_sessions(user_key)
        async with self._pipeline() as pipe:
            while True:
                keys = sorted(cast(set[str], await self._redis.smembers(user_sessions)))
                records = [k.session(sk) for sk in keys]
                owned = [name for sk in keys for name in (k.session_vars(sk), k.temp_vars(sk))]
                # no EXISTS here: a cluster pipeline splits it by slot instead of running it
                await pipe.watch(user, user_sessions, *records, *owned)
                if sorted(cast(set[str], await pipe.smembers(user_sessions))) != keys:
                    await pipe.reset()  # type: ignore[no-untyped-call]
                    continue  # a turn started a session meanwhile
                names = cast(list[str], await pipe.hkeys(user))
                sessions = sum([await pipe.hlen(record) > 0 for record in records])
                counts = [await pipe.hlen(name) for name in owned]
                kvs = sorted({n for p in kvs_prefixes for n in await self._kvs.names(bot_id, p)})
                pipe.multi()  # type: ignore[no-untyped-call]
                _delete_user(pipe, k, user_key, names, keys)
                if kvs:
                    pipe.delete(*(k.data(name) for name in kvs))
                    pipe.zrem(k.names, *kvs)
                    pipe.zrem(k.due, *kvs)
                try:
                    await pipe.execute()
                except rx.WatchError as exc:
                    raise_if_broken(exc)
                    continue  # a turn wrote meanwhile: count again
                return {
                    "user_variables": len(names),
                    "sessions": sessions,
                    "session_variables": sum(counts),
                    "kvs": len(kvs),
                }

    # -- retention and the janitor: see expiry -----------------------------------------
    async def expired_user_vars(self, now: float, limit: int) -> list[StoredVar]:
        async with self._driver():
            return await self._expiry.expired_user_vars(now, limit)

    async def scan_user_vars(
        self, bot_id: str | None, after: VarKey | None, limit: int
    ) -> list[StoredVar]:
        async with self._driver():
            return await self._expiry.scan_user_vars(bot_id, after, limit)

    async def update_user_vars(self, updates: Sequence[VarUpdate]) -> list[VarUpdate]:
        async with self._driver():
            return await self._expiry.update_user_vars(updates)

    async def expired_sessions(self, now: float, limit: int) -> list[SessionRecord]:
        async with self._driver():
            return await self._expiry.expired_sessions(now, limit)

    async def delete_sessions(self, sessions: Sequence[SessionRecord]) -> int:
        async with self._driver():
            return await self._expiry.delete_sessions(sessions)

    async def expired_temps(self, now: float, limit: int) -> list[SessionRecord]:
        async with self._driver():
            return await self._expiry.expired_temps(now, limit)

    async def clear_temps(self, sessions: Sequence[SessionRecord]) -> int:
        async with self._driver():
            return await self._expiry.clear_temps(sessions)

    async def scan_sessions(
        self, after: SessionCursor | None, limit: int
    ) -> tuple[list[SessionRecord], SessionCursor | None]:
        async with self._driver():
            return await self._expiry.scan_sessions(after, limit)

    async def update_sessions(self, updates: Sequence[SessionUpdate]) -> list[SessionUpdate]:
        async with self._driver():
            return await self._expiry.update_sessions(updates)

    async def delete_expired_kvs(self, now: float, limit: int) -> int:
        async with self._driver():
            return await self._expiry.delete_expired_kvs(now, limit)

    async def get_meta(self, name: str) -> str | None:
        async with self._driver():
            return cast(str | None, await self._redis.hget(self._meta.settings, name))

    async def set_meta(self, name: str, value: str) -> None:
        async with self._driver():
            await self._redis.hset(self._meta.settings, name, value)


def _vars(scope: Scope, bot_id: str, owner: str, found: dict[str, str]) -> list[StoredVar]:
    return [unpack_var(VarKey(scope, bot_id, owner, name), raw) for name, raw in found.items()]


def _bots_of(write: TurnWrite) -> set[str]:
    var_keys = [*write.deletes, *(var.key for var in write.upserts), *(d.key for d in write.deltas)]
    namespaces = [w.namespace for w in write.kvs_writes] + [d.namespace for d in write.kvs_deltas]
    bots = {key.bot_id for key in var_keys} | {ns for ns in namespaces if ns}
    return bots if write.session is None else bots | {write.session.bot_id}


def _delete_user(
    pipe: Pipeline, k: BotKeys, user_key: str, names: list[str], sessions: list[str]
) -> None:
    """Queue the deletion of a user's variables and sessions with their index entries."""
    pipe.delete(k.user(user_key), k.user_sessions(user_key))
    pipe.zrem(k.users, user_key)
    if names:
        pipe.zrem(k.due_user_vars, *(user_var_member(user_key, n) for n in names))
    for sk in sessions:
        pipe.delete(k.session(sk), k.session_vars(sk), k.temp_vars(sk))
    if sessions:
        pipe.zrem(k.due_sessions, *sessions)
        pipe.zrem(k.due_temps, *sessions)
