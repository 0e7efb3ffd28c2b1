"""Redis backend (``redis://`` and ``rediss://``): several processes on several hosts.

Uses redis-py's asyncio client with the hiredis parser. The key layout, record
encoding and Lua scripts are in :mod:`botmemory.storage.redis_layout`; leases in
:mod:`botmemory.storage.redis_lease`. Expiry decisions come from the ``expires_at``
stored in each record (the injected clock), never from Redis' clock; native TTLs only
let Redis free whole keys by itself. docs/backends.md explains the choices.

URL query parameters read here (the others go to redis-py): ``prefix`` (default
``botmemory:``), ``lease_timeout`` (default ``30s``), ``lock_wait`` (default ``60s``)
and ``ttl_grace`` (default ``1h``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Concatenate, Final, ParamSpec, TypeVar
from urllib.parse import parse_qsl, urlencode

from redis import exceptions as rx
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from botmemory.durations import parse_duration
from botmemory.errors import (
    BackendError,
    BackendUnavailableError,
    BotMemoryError,
    LockTimeoutError,
    SchemaVersionError,
)
from botmemory.storage import mask_url
from botmemory.storage.base import (
    KvsModifier,
    KvsRecord,
    SessionRecord,
    Storage,
    StoredVar,
    TurnKeys,
    TurnSnapshot,
    TurnWrite,
    UserRecords,
    VarKey,
    VarUpdate,
)
from botmemory.storage.redis_layout import (
    LAYOUT_VERSION,
    BotKeys,
    KvsKeys,
    MetaKeys,
    Scripts,
    kvs_keys,
    num,
    pack_kvs,
    pack_session,
    pack_var,
    unpack_kvs,
    unpack_session,
    unpack_var,
    user_var_member,
    var_guard,
)
from botmemory.storage.redis_lease import Lease

__all__ = ["RedisOptions", "RedisStorage"]

log = logging.getLogger("botmemory.storage.redis")

T = TypeVar("T")
P = ParamSpec("P")
S = TypeVar("S", bound="RedisStorage")

_UNAVAILABLE: Final = (rx.ConnectionError, rx.TimeoutError, rx.ReadOnlyError, OSError)
_CHUNK: Final = 1000


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """botmemory's parameters in a Redis URL; ``client_url`` is the URL without them."""

    client_url: str
    prefix: str = "botmemory:"
    """Start of every key; must not contain ``{`` or ``}``."""
    lease_timeout: float = 30.0
    """Seconds a session or janitor lease lives unless its holder renews it."""
    lock_wait: float = 60.0
    """Seconds a turn waits for its session's lease before LockTimeoutError."""
    ttl_grace: float = 3600.0
    """Seconds Redis keeps an expired whole key before freeing it by itself."""

    @classmethod
    def parse(cls, url: str) -> RedisOptions:
        """Split botmemory's parameters off ``url``."""
        base, _, query = url.partition("?")
        ours: dict[str, str] = {}
        theirs: list[tuple[str, str]] = []
        for name, value in parse_qsl(query, keep_blank_values=True):
            (ours.__setitem__(name, value) if name in _OUR_PARAMS else theirs.append((name, value)))
        prefix = ours.get("prefix", cls.prefix)
        if "{" in prefix or "}" in prefix:
            raise BotMemoryError(
                f"prefix {prefix!r} in the Redis URL must not contain '{{' or '}}': "
                "botmemory adds its own hash tags after it"
            )
        durations = {
            name: parse_duration(ours[name], where=f"{name} in the Redis URL")
            for name in ("lease_timeout", "lock_wait", "ttl_grace")
            if name in ours
        }
        client_url = f"{base}?{urlencode(theirs)}" if theirs else base
        return cls(client_url, prefix, **durations)  # type: ignore[arg-type]


_OUR_PARAMS: Final = frozenset({"prefix", "lease_timeout", "lock_wait", "ttl_grace"})


def _translated(
    method: Callable[Concatenate[S, P], Awaitable[T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Turn the driver's exceptions into botmemory's."""

    @functools.wraps(method)
    async def call(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._translating():
            return await method(self, *args, **kwargs)

    return call


class RedisStorage(Storage):
    """Store everything in Redis; see the module docstring."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.options = RedisOptions.parse(url)
        self._redis: Redis = Redis.from_url(
            self.options.client_url,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),  # a lost reply may hide an applied write: never resend
        )
        self._meta = MetaKeys.of(self.options.prefix)
        self._scripts = {
            name: self._redis.register_script(getattr(Scripts, name))
            for name in ("RELEASE", "RENEW", "UPDATE_USER_VARS", "DELETE_SESSIONS", "CLEAR_TEMPS")
            + ("DELETE_EXPIRED_KVS", "PURGE")
        }
        self._registered: set[str] = set()
        self._stale_leases: dict[str, str] = {}
        self._closed = False

    # -- errors, connection, leases ----------------------------------------------------
    @contextlib.contextmanager
    def _translating(self) -> Iterator[None]:
        if self._closed:
            raise BackendUnavailableError(f"the Redis storage {mask_url(self.url)} is closed")
        try:
            yield
        except _UNAVAILABLE as exc:
            raise BackendUnavailableError(
                f"Redis at {mask_url(self.url)} is unavailable: {exc}"
            ) from exc
        except rx.RedisError as exc:
            raise BackendError(f"Redis error on {mask_url(self.url)}: {exc}") from exc

    @_translated
    async def open(self) -> None:
        layout = await self._redis.get(self._meta.layout)
        if layout is None:
            await self._redis.set(self._meta.layout, LAYOUT_VERSION, nx=True)
        elif int(layout) > LAYOUT_VERSION:
            raise SchemaVersionError(
                f"the data under prefix {self.options.prefix!r} has layout version {layout}, "
                f"newer than this botmemory knows ({LAYOUT_VERSION}): upgrade botmemory"
            )

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(rx.RedisError, OSError):
                await self._redis.aclose()

    def _bot(self, bot_id: str) -> BotKeys:
        return BotKeys.of(self.options.prefix, bot_id)

    def _lease(self, key: str) -> Lease:
        s = self._scripts
        return Lease(self._redis, key, self.options.lease_timeout, s["RELEASE"], s["RENEW"])

    async def _take(self, lease: Lease, wait: float | None) -> bool:
        with self._translating():
            stale = self._stale_leases.pop(lease.key, None)
            if stale is not None:
                await self._scripts["RELEASE"](keys=[lease.key], args=[stale])
            return await (lease.try_take() if wait is None else lease.take(wait))

    async def _release(self, lease: Lease) -> None:
        """Release ``lease``; if Redis cannot be reached, retry when the key is next taken."""
        try:
            await lease.release()
        except (rx.RedisError, OSError) as exc:
            log.warning("cannot release lease %s (it lapses by itself): %s", lease.key, exc)
            self._stale_leases[lease.key] = lease.token

    def session_lock(self, bot_id: str, session_key: str) -> AbstractAsyncContextManager[None]:
        """Serialize the turns of one session in this process, then across processes."""
        return self._session_lease(bot_id, session_key)

    @asynccontextmanager
    async def _session_lease(self, bot_id: str, session_key: str) -> AsyncIterator[None]:
        async with self._local_session_lock(bot_id, session_key):
            lease = self._lease(self._bot(bot_id).lease(session_key))
            if not await self._take(lease, self.options.lock_wait):
                raise LockTimeoutError(
                    f"session {session_key} of bot {bot_id!r} stayed locked by another "
                    f"process for {self.options.lock_wait:g}s: raise lock_wait in the URL "
                    "if turns run that long"
                )
            try:
                yield
            finally:
                await self._release(lease)

    def janitor_lock(self) -> AbstractAsyncContextManager[bool]:
        """Hold the janitor's lease; yield ``False`` if another process holds it."""
        return self._janitor_lease()

    @asynccontextmanager
    async def _janitor_lease(self) -> AsyncIterator[bool]:
        lease = self._lease(self._meta.janitor_lease)
        if not await self._take(lease, None):
            yield False
            return
        try:
            yield True
        finally:
            await self._release(lease)

    async def _register(self, bot_id: str) -> None:
        """Add ``bot_id`` to the bots the janitor visits."""
        if bot_id not in self._registered:
            await self._redis.sadd(self._meta.bots, bot_id)
            self._registered.add(bot_id)

    async def _bots(self) -> list[str]:
        return sorted(await self._redis.smembers(self._meta.bots))

    def _ttl_ms(self, expires_at: float) -> int:
        """Native TTL of a whole key whose data expires at ``expires_at``.

        Measured from this host's wall clock, plus ``ttl_grace``, and never shorter than
        the grace: data is kept at least as long as the injected clock says it lives.
        """
        remaining = max(expires_at - time.time(), 0.0)
        return max(1000, int((remaining + self.options.ttl_grace) * 1000))

    def _pipeline(self) -> Pipeline:
        return self._redis.pipeline(transaction=True)

    # -- turns ---------------------------------------------------------------------
    @_translated
    async def load_turn(self, keys: TurnKeys) -> TurnSnapshot:
        k, sk = self._bot(keys.bot_id), keys.session_key
        pipe = self._pipeline()
        for name in (k.user(keys.user_key), k.bot_vars, k.session(sk)):
            pipe.hgetall(name)
        pipe.hgetall(k.session_vars(sk)).hgetall(k.temp_vars(sk))
        user, bot, session, session_vars, temp_vars = await pipe.execute()
        return TurnSnapshot(
            _vars("user", keys.bot_id, keys.user_key, user),
            _vars("bot", keys.bot_id, "", bot),
            unpack_session(keys.bot_id, sk, session),
            _vars("session", keys.bot_id, sk, session_vars),
            _vars("temp", keys.bot_id, sk, temp_vars),
        )

    @_translated
    async def commit_turn(self, write: TurnWrite) -> None:
        s = write.session
        k = self._bot(s.bot_id)
        await self._register(s.bot_id)
        pipe = self._pipeline()
        if write.reset_session:
            pipe.delete(k.session_vars(s.key), k.temp_vars(s.key))
        elif write.reset_temp:
            pipe.delete(k.temp_vars(s.key))
        for key in write.deletes:
            pipe.hdel(k.var_hash(key), key.name)
            if key.scope == "user":
                pipe.zrem(k.due_user_vars, user_var_member(key.owner, key.name))
        for var in write.upserts:
            self._upsert(pipe, k, var)
        self._save_session(pipe, k, s)
        await pipe.execute()

    @staticmethod
    def _upsert(pipe: Pipeline, k: BotKeys, var: StoredVar) -> None:
        key = var.key
        pipe.hset(k.var_hash(key), key.name, pack_var(var))
        if key.scope != "user":
            return
        pipe.zadd(k.users, {key.owner: 0})
        member = user_var_member(key.owner, key.name)
        if var.expires_at is None:
            pipe.zrem(k.due_user_vars, member)
        else:
            pipe.zadd(k.due_user_vars, {member: var.expires_at})

    def _save_session(self, pipe: Pipeline, k: BotKeys, s: SessionRecord) -> None:
        record, user_sessions = k.session(s.key), k.user_sessions(s.user_key)
        pipe.hset(record, mapping=pack_session(s))  # type: ignore[arg-type]
        pipe.zadd(k.due_sessions, {s.key: s.expires_at}).sadd(user_sessions, s.key)
        if s.temp_expires_at is None:
            pipe.hdel(record, "temp").zrem(k.due_temps, s.key)
        else:
            pipe.zadd(k.due_temps, {s.key: s.temp_expires_at})
            pipe.pexpire(k.temp_vars(s.key), self._ttl_ms(s.temp_expires_at))
        ttl = self._ttl_ms(s.expires_at)
        pipe.pexpire(record, ttl).pexpire(k.session_vars(s.key), ttl)
        pipe.pexpire(user_sessions, ttl, nx=True).pexpire(user_sessions, ttl, gt=True)

    # -- key-value store -------------------------------------------------------------
    def _ns(self, namespace: str) -> KvsKeys:
        return kvs_keys(self.options.prefix, namespace)

    @_translated
    async def kvs_get(self, namespace: str, key: str, now: float) -> KvsRecord | None:
        return unpack_kvs(await self._redis.get(self._ns(namespace).data(key)), now)

    def _kvs_store(self, pipe: Pipeline, ns: KvsKeys, key: str, record: KvsRecord | None) -> None:
        if record is None:
            pipe.delete(ns.data(key)).zrem(ns.names, key).zrem(ns.due, key)
            return
        expiry = None if record.expires_at is None else self._ttl_ms(record.expires_at)
        pipe.set(ns.data(key), pack_kvs(record), px=expiry).zadd(ns.names, {key: 0})
        if record.expires_at is None:
            pipe.zrem(ns.due, key)
        else:
            pipe.zadd(ns.due, {key: record.expires_at})

    @_translated
    async def kvs_put(self, namespace: str, key: str, record: KvsRecord) -> None:
        if namespace:
            await self._register(namespace)
        pipe = self._pipeline()
        self._kvs_store(pipe, self._ns(namespace), key, record)
        await pipe.execute()

    @_translated
    async def kvs_modify(
        self, namespace: str, key: str, now: float, modify: KvsModifier[T]
    ) -> T:
        if namespace:
            await self._register(namespace)
        ns = self._ns(namespace)
        async with self._pipeline() as pipe:
            while True:
                await pipe.watch(ns.data(key))
                record, result = modify(unpack_kvs(await pipe.get(ns.data(key)), now))
                pipe.multi()
                self._kvs_store(pipe, ns, key, record)
                try:
                    await pipe.execute()
                except rx.WatchError:
                    continue  # another process changed the key: read it again
                return result

    @_translated
    async def kvs_delete(self, namespace: str, key: str, now: float) -> bool:
        pipe = self._pipeline()
        ns = self._ns(namespace)
        pipe.get(ns.data(key))
        self._kvs_store(pipe, ns, key, None)
        raw, *_ = await pipe.execute()
        return unpack_kvs(raw, now) is not None

    async def _kvs_names(self, ns: KvsKeys, prefix: str) -> list[str]:
        if not prefix:
            return list(await self._redis.zrange(ns.names, "-", "+", bylex=True))
        low, high = b"[" + prefix.encode(), b"(" + prefix.encode() + b"\xff"
        return list(await self._redis.zrange(ns.names, low, high, bylex=True))

    @_translated
    async def kvs_keys(self, namespace: str, prefix: str, now: float) -> list[str]:
        ns = self._ns(namespace)
        names = await self._kvs_names(ns, prefix)
        if not names:
            return []
        expiries = await self._redis.zmscore(ns.due, names)
        return [n for n, e in zip(names, expiries, strict=True) if e is None or e > now]

    @_translated
    async def kvs_delete_prefix(self, namespace: str, prefix: str) -> int:
        ns = self._ns(namespace)
        names = await self._kvs_names(ns, prefix)
        deleted = 0
        for start in range(0, len(names), _CHUNK):
            chunk = names[start : start + _CHUNK]
            pipe = self._pipeline()
            pipe.delete(*(ns.data(n) for n in chunk)).zrem(ns.names, *chunk).zrem(ns.due, *chunk)
            deleted += (await pipe.execute())[1]
        return deleted

    # -- users -------------------------------------------------------------------------
    @_translated
    async def load_user(self, bot_id: str, user_key: str) -> UserRecords:
        k = self._bot(bot_id)
        keys = sorted(await self._redis.smembers(k.user_sessions(user_key)))
        pipe = self._pipeline().hgetall(k.user(user_key))
        for sk in keys:
            pipe.hgetall(k.session(sk)).hgetall(k.session_vars(sk)).hgetall(k.temp_vars(sk))
        user, *rest = await pipe.execute()
        records = UserRecords(_vars("user", bot_id, user_key, user), [])
        for i, sk in enumerate(keys):
            session = unpack_session(bot_id, sk, rest[3 * i])
            if session is not None:
                records.sessions.append(session)
                records.session_vars.extend(_vars("session", bot_id, sk, rest[3 * i + 1]))
                records.temp_vars.extend(_vars("temp", bot_id, sk, rest[3 * i + 2]))
        return records

    @_translated
    async def delete_user(self, bot_id: str, user_key: str) -> dict[str, int]:
        k = self._bot(bot_id)
        async with self._pipeline() as pipe:
            while True:
                await pipe.watch(k.user(user_key), k.user_sessions(user_key))
                names = await pipe.hkeys(k.user(user_key))
                keys = sorted(await pipe.smembers(k.user_sessions(user_key)))
                owned = [name for sk in keys for name in (k.session_vars(sk), k.temp_vars(sk))]
                if keys:
                    await pipe.watch(*(k.session(sk) for sk in keys), *owned)
                sessions = await pipe.exists(*(k.session(sk) for sk in keys)) if keys else 0
                counts = [await pipe.hlen(name) for name in owned]
                pipe.multi()
                self._delete_user(pipe, k, user_key, names, keys)
                try:
                    await pipe.execute()
                except rx.WatchError:
                    continue  # a turn wrote meanwhile: count again
                return {
                    "user_variables": len(names),
                    "sessions": int(sessions),
                    "session_variables": sum(counts),
                }

    @staticmethod
    def _delete_user(
        pipe: Pipeline, k: BotKeys, user_key: str, names: list[str], keys: list[str]
    ) -> None:
        pipe.delete(k.user(user_key), k.user_sessions(user_key)).zrem(k.users, user_key)
        if names:
            pipe.zrem(k.due_user_vars, *(user_var_member(user_key, n) for n in names))
        for sk in keys:
            pipe.delete(k.session(sk), k.session_vars(sk), k.temp_vars(sk))
        if keys:
            pipe.zrem(k.due_sessions, *keys).zrem(k.due_temps, *keys)

    # -- retention and the janitor -------------------------------------------------------
    async def _due(
        self, index: Callable[[BotKeys], str], now: float, limit: int
    ) -> list[tuple[float, str, str]]:
        """The ``limit`` entries scored ``<= now`` of ``index`` over every bot: (score, bot, member)."""
        bots = await self._bots()
        pipe = self._redis.pipeline(transaction=False)
        for bot in bots:
            pipe.zrange(index(self._bot(bot)), "-inf", now, byscore=True, offset=0, num=limit,
                        withscores=True)
        found = await pipe.execute()
        due = [(score, bot, m) for bot, rows in zip(bots, found, strict=True) for m, score in rows]
        return sorted(due)[:limit]

    async def _purge(self, index: Callable[[BotKeys], str], gone: list[tuple[str, str, str, str]]) -> None:
        """Drop index entries (bot, member, hash, field) whose record is gone."""
        by_bot: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
        for entry in gone:
            by_bot[entry[0]].append(entry)
        for bot, entries in by_bot.items():
            keys = [index(self._bot(bot))] + [e[2] for e in entries]
            args = [a for e in entries for a in (e[3], e[1])]
            await self._scripts["PURGE"](keys=keys, args=args)

    async def _due_records(
        self, index: Callable[[BotKeys], str], now: float, limit: int,
        fetch: Callable[[BotKeys, str], tuple[str, str]],
        read: Callable[[str, str, Any], T | None],
    ) -> list[T]:
        while True:
            due = await self._due(index, now, limit)
            pipe = self._redis.pipeline(transaction=False)
            where = [fetch(self._bot(bot), member) for _, bot, member in due]
            for name, field in where:
                (pipe.hget(name, field) if field else pipe.hgetall(name))
            found: list[T] = []
            gone: list[tuple[str, str, str, str]] = []
            for (_, bot, member), (name, field), raw in zip(due, where, await pipe.execute(), strict=True):
                record = read(bot, member, raw)
                if record is None:
                    gone.append((bot, member, name, field))
                else:
                    found.append(record)
            if not gone:
                return found
            await self._purge(index, gone)

    @_translated
    async def expired_user_vars(self, now: float, limit: int) -> list[StoredVar]:
        def fetch(k: BotKeys, member: str) -> tuple[str, str]:
            user_key, name = json.loads(member)
            return k.user(user_key), name

        def read(bot: str, member: str, raw: str | None) -> StoredVar | None:
            user_key, name = json.loads(member)
            return None if raw is None else unpack_var(VarKey("user", bot, user_key, name), raw)

        return await self._due_records(lambda k: k.due_user_vars, now, limit, fetch, read)

    @_translated
    async def scan_user_vars(
        self, bot_id: str | None, after: VarKey | None, limit: int
    ) -> list[StoredVar]:
        start = ("", "", "") if after is None else (after.bot_id, after.owner, after.name)
        bots = [b for b in (await self._bots() if bot_id is None else [bot_id]) if b >= start[0]]
        rows: list[StoredVar] = []
        for bot in bots:
            k = self._bot(bot)
            low = "[" + start[1] if bot == start[0] and start[1] else "-"
            while len(rows) < limit:
                users = await self._redis.zrange(k.users, low, "+", bylex=True, offset=0, num=_CHUNK)
                if not users:
                    break
                pipe = self._redis.pipeline(transaction=False)
                for user_key in users:
                    pipe.hgetall(k.user(user_key))
                for user_key, found in zip(users, await pipe.execute(), strict=True):
                    rows += [
                        v for v in _vars("user", bot, user_key, found)
                        if (bot, user_key, v.key.name) > start
                    ]
                low = "(" + users[-1]
            if len(rows) >= limit:
                break
        rows.sort(key=lambda v: (v.key.bot_id, v.key.owner, v.key.name))
        return rows[:limit]

    @_translated
    async def update_user_vars(self, updates: Sequence[VarUpdate]) -> list[VarUpdate]:
        by_bot: dict[str, list[VarUpdate]] = defaultdict(list)
        for u in updates:
            by_bot[u.key.bot_id].append(u)
        applied: list[VarUpdate] = []
        for bot, batch in by_bot.items():
            k = self._bot(bot)
            keys = [k.due_user_vars] + [k.user(u.key.owner) for u in batch]
            args: list[str] = []
            for u in batch:
                packed = "" if u.value is None else pack_var(
                    StoredVar(u.key, u.value, u.changed_at, u.expires_at, u.field_times)
                )
                expires = "" if u.value is None or u.expires_at is None else num(u.expires_at)
                member = user_var_member(u.key.owner, u.key.name)
                args += [u.key.name, var_guard(u.changed_at), packed, expires, member]
            done = await self._scripts["UPDATE_USER_VARS"](keys=keys, args=args)
            applied += [batch[i - 1] for i in done]
        return applied

    def _read_session(self, index: str) -> Callable[[str, str, Any], SessionRecord | None]:
        def read(bot: str, member: str, raw: dict[str, str]) -> SessionRecord | None:
            return unpack_session(bot, member, raw)

        return read

    @_translated
    async def expired_sessions(self, now: float, limit: int) -> list[SessionRecord]:
        return await self._due_records(
            lambda k: k.due_sessions, now, limit, lambda k, m: (k.session(m), ""),
            lambda bot, m, raw: unpack_session(bot, m, raw),
        )

    @_translated
    async def delete_sessions(self, sessions: Sequence[SessionRecord]) -> int:
        deleted = 0
        for bot, batch in _by_bot(sessions).items():
            k = self._bot(bot)
            keys = [k.due_sessions, k.due_temps]
            args: list[str] = []
            for s in batch:
                keys += [k.session(s.key), k.session_vars(s.key), k.temp_vars(s.key)]
                keys.append(k.user_sessions(s.user_key))
                args += [num(s.last_seen), s.key]
            deleted += int(await self._scripts["DELETE_SESSIONS"](keys=keys, args=args))
        return deleted

    @_translated
    async def expired_temps(self, now: float, limit: int) -> list[SessionRecord]:
        return await self._due_records(
            lambda k: k.due_temps, now, limit, lambda k, m: (k.session(m), ""),
            lambda bot, m, raw: unpack_session(bot, m, raw),
        )

    @_translated
    async def clear_temps(self, sessions: Sequence[SessionRecord]) -> int:
        cleared = 0
        for bot, batch in _by_bot(sessions).items():
            k = self._bot(bot)
            keys = [k.due_temps]
            args: list[str] = []
            for s in batch:
                keys += [k.session(s.key), k.temp_vars(s.key)]
                args += ["" if s.temp_expires_at is None else num(s.temp_expires_at), s.key]
            cleared += int(await self._scripts["CLEAR_TEMPS"](keys=keys, args=args))
        return cleared

    @_translated
    async def delete_expired_kvs(self, now: float, limit: int) -> int:
        namespaces = ["", *await self._bots()]
        pipe = self._redis.pipeline(transaction=False)
        for namespace in namespaces:
            pipe.zrange(self._ns(namespace).due, "-inf", now, byscore=True, offset=0, num=limit,
                        withscores=True)
        found = await pipe.execute()
        due = sorted(
            (score, ns, name) for ns, rows in zip(namespaces, found, strict=True)
            for name, score in rows
        )[:limit]
        by_ns: dict[str, list[str]] = defaultdict(list)
        for _, namespace, name in due:
            by_ns[namespace].append(name)
        deleted = 0
        for namespace, names in by_ns.items():
            ns = self._ns(namespace)
            keys = [ns.due, ns.names, *(ns.data(n) for n in names)]
            script = self._scripts["DELETE_EXPIRED_KVS"]
            deleted += int(await script(keys=keys, args=[num(now), *names]))
        return deleted

    @_translated
    async def get_meta(self, name: str) -> str | None:
        value: str | None = await self._redis.hget(self._meta.settings, name)
        return value

    @_translated
    async def set_meta(self, name: str, value: str) -> None:
        await self._redis.hset(self._meta.settings, name, value)


def _vars(scope: Any, bot_id: str, owner: str, found: dict[str, str]) -> list[StoredVar]:
    return [unpack_var(VarKey(scope, bot_id, owner, name), raw) for name, raw in found.items()]


def _by_bot(sessions: Sequence[SessionRecord]) -> dict[str, list[SessionRecord]]:
    grouped: dict[str, list[SessionRecord]] = defaultdict(list)
    for s in sessions:
        grouped[s.bot_id].append(s)
    return grouped
