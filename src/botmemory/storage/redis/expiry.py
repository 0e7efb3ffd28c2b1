"""The janitor's side of the Redis backend: expiry indexes, retention, guarded deletes.

Each bot has three sorted sets scored by expiry time (``due:user-vars``,
``due:sessions``, ``due:temps``) and each KVS namespace one (``due:kvs``); turns keep
them in step with the data in the same transaction. The janitor reads the entries due
at ``now`` (``ZRANGE ... BYSCORE LIMIT``), so its cost follows the number of expired
records, never the number of keys. Deletes are Lua scripts guarded like the SQL
backends' ``WHERE`` clauses; what they rewrite gets a new version.

The set ``{meta}:bots`` lists the bots to visit. A process adds a bot to it before its
first write of that bot, and again whenever a write finds the bot's ``registered``
marker missing: after Redis lost its data (a restart without persistence, a flush),
the next write of each bot registers it again, whatever the process remembers.

A record that Redis already freed by its native TTL leaves its index entry behind;
the ``expired_*`` methods drop such entries and do not return (nor count) the record.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Final, cast

from redis.asyncio import Redis

from botmemory.storage.base import (
    SessionCursor,
    SessionRecord,
    SessionUpdate,
    StoredVar,
    VarKey,
    VarUpdate,
    new_version,
)
from botmemory.storage.redis.layout import (
    BotKeys,
    kvs_keys,
    num,
    pack_var,
    unpack_session,
    unpack_var,
    user_var_member,
    var_guard,
)
from botmemory.storage.redis.scripts import Scripts

__all__ = ["ExpiryIndexes"]

Index = Callable[[BotKeys], str]
Due = tuple[float, str, str]
"""An index entry: (score, bot or namespace, member)."""
log = logging.getLogger("botmemory.storage")

_CHUNK: Final = 1000


class ExpiryIndexes:
    """Find and remove what expired, across every bot."""

    def __init__(self, client: Redis, prefix: str, bots_key: str, scripts: Scripts) -> None:
        self._redis = client
        self._prefix = prefix
        self._bots_key = bots_key
        self._scripts = scripts
        self._registered: set[str] = set()

    def bot(self, bot_id: str) -> BotKeys:
        """The keys of ``bot_id``."""
        return BotKeys.of(self._prefix, bot_id)

    async def register(self, bot_id: str) -> None:
        """Add ``bot_id`` to the bots the janitor visits, unless this process did already."""
        if bot_id not in self._registered:
            await self.register_again(bot_id)

    async def register_again(self, bot_id: str) -> None:
        """Add ``bot_id`` to the bots the janitor visits (its marker was found missing)."""
        await self._redis.sadd(self._bots_key, bot_id)
        self._registered.add(bot_id)

    async def bots(self) -> list[str]:
        """Every bot that ever stored something, sorted."""
        return sorted(cast(set[str], await self._redis.smembers(self._bots_key)))

    async def _due(self, indexes: list[tuple[str, str]], now: float, limit: int) -> list[Due]:
        """The ``limit`` oldest entries scored ``<= now`` of several (owner, index) pairs."""
        pipe = self._redis.pipeline(transaction=False)
        for _, index in indexes:
            pipe.zrange(index, "-inf", now, byscore=True, offset=0, num=limit, withscores=True)
        found: list[list[tuple[str, float]]] = await pipe.execute()
        due = [
            (score, owner, member)
            for (owner, _), rows in zip(indexes, found, strict=True)
            for member, score in rows
        ]
        return sorted(due)[:limit]

    async def _bot_due(self, index: Index, now: float, limit: int) -> list[Due]:
        return await self._due([(b, index(self.bot(b))) for b in await self.bots()], now, limit)

    async def _purge(self, index: Index, gone: list[tuple[str, str, str, str]]) -> None:
        """Drop index entries ``(bot, member, key, field)`` whose record is gone."""
        by_bot: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
        for entry in gone:
            by_bot[entry[0]].append(entry)
        for bot, entries in by_bot.items():
            keys = [index(self.bot(bot)), *(key for _, _, key, _ in entries)]
            args = [arg for _, member, _, field in entries for arg in (field, member)]
            await self._scripts.purge(keys=keys, args=args)

    # -- user variables ----------------------------------------------------------------
    async def expired_user_vars(self, now: float, limit: int) -> list[StoredVar]:
        """See :meth:`Storage.expired_user_vars`."""
        index: Index = lambda k: k.due_user_vars  # noqa: E731
        while True:
            due = await self._bot_due(index, now, limit)
            keys = [VarKey("user", bot, *json.loads(member)) for _, bot, member in due]
            pipe = self._redis.pipeline(transaction=False)
            for key in keys:
                pipe.hget(self.bot(key.bot_id).user(key.owner), key.name)
            found: list[str | None] = await pipe.execute()
            rows = [unpack_var(key, raw) for key, raw in zip(keys, found, strict=True) if raw]
            gone = [
                (k.bot_id, member, self.bot(k.bot_id).user(k.owner), k.name)
                for (_, _, member), k, raw in zip(due, keys, found, strict=True)
                if raw is None
            ]
            if not gone:
                return rows
            await self._purge(index, gone)

    async def scan_user_vars(
        self, bot_id: str | None, after: VarKey | None, limit: int
    ) -> list[StoredVar]:
        """See :meth:`Storage.scan_user_vars`: walks each bot's lex-sorted set of users."""
        start = ("", "", "") if after is None else (after.bot_id, after.owner, after.name)
        bots = await self.bots() if bot_id is None else [bot_id]
        rows: list[StoredVar] = []
        for bot in (b for b in bots if b >= start[0]):
            k = self.bot(bot)
            low = "[" + start[1] if bot == start[0] and start[1] else "-"
            while len(rows) < limit:
                page = await self._redis.zrange(k.users, low, "+", bylex=True, offset=0, num=_CHUNK)
                users = cast(list[str], page)
                if not users:
                    break
                pipe = self._redis.pipeline(transaction=False)
                for user_key in users:
                    pipe.hgetall(k.user(user_key))
                for user_key, found in zip(users, await pipe.execute(), strict=True):
                    rows += [
                        unpack_var(VarKey("user", bot, user_key, name), raw)
                        for name, raw in found.items()
                        if (bot, user_key, name) > start
                    ]
                low = "(" + users[-1]
        rows.sort(key=lambda v: (v.key.bot_id, v.key.owner, v.key.name))
        return rows[:limit]

    async def update_user_vars(self, updates: Sequence[VarUpdate]) -> list[VarUpdate]:
        """See :meth:`Storage.update_user_vars`: one script per bot."""
        by_bot: dict[str, list[VarUpdate]] = defaultdict(list)
        for u in updates:
            by_bot[u.key.bot_id].append(u)
        applied: list[VarUpdate] = []
        for bot, batch in by_bot.items():
            k = self.bot(bot)
            keys = [k.due_user_vars, *(k.user(u.key.owner) for u in batch)]
            args = [arg for u in batch for arg in _update_args(u)]
            done: list[int] = await self._scripts.update_user_vars(keys=keys, args=args)
            applied += [batch[i - 1] for i in done]
        return applied

    # -- sessions and temp memories ------------------------------------------------------
    async def _due_sessions(self, index: Index, now: float, limit: int) -> list[SessionRecord]:
        while True:
            due = await self._bot_due(index, now, limit)
            pipe = self._redis.pipeline(transaction=False)
            for _, bot, key in due:
                pipe.hgetall(self.bot(bot).session(key))
            found: list[dict[str, str]] = await pipe.execute()
            records = [
                unpack_session(b, key, raw) for (_, b, key), raw in zip(due, found, strict=True)
            ]
            gone = [
                (b, key, self.bot(b).session(key), "")
                for (_, b, key), record in zip(due, records, strict=True)
                if record is None
            ]
            if not gone:
                return [r for r in records if r is not None]
            await self._purge(index, gone)

    async def expired_sessions(self, now: float, limit: int) -> list[SessionRecord]:
        """See :meth:`Storage.expired_sessions`."""
        return await self._due_sessions(lambda k: k.due_sessions, now, limit)

    async def expired_temps(self, now: float, limit: int) -> list[SessionRecord]:
        """See :meth:`Storage.expired_temps`."""
        return await self._due_sessions(lambda k: k.due_temps, now, limit)

    async def delete_sessions(self, sessions: Sequence[SessionRecord]) -> int:
        """See :meth:`Storage.delete_sessions`: one script per bot."""
        deleted = 0
        for bot, batch in _by_bot(sessions).items():
            k = self.bot(bot)
            keys = [k.due_sessions, k.due_temps]
            args: list[str] = []
            for s in batch:
                keys += [k.session(s.key), k.session_vars(s.key), k.temp_vars(s.key)]
                keys.append(k.user_sessions(s.user_key))
                args += [num(s.last_seen), s.key]
            deleted += cast(int, await self._scripts.delete_sessions(keys=keys, args=args))
        return deleted

    async def clear_temps(self, sessions: Sequence[SessionRecord]) -> int:
        """See :meth:`Storage.clear_temps`: one script per bot."""
        cleared = 0
        for bot, batch in _by_bot(sessions).items():
            k = self.bot(bot)
            keys = [k.due_temps]
            args: list[str] = []
            for s in batch:
                keys += [k.session(s.key), k.temp_vars(s.key)]
                guard = "" if s.temp_expires_at is None else num(s.temp_expires_at)
                args += [guard, s.key, str(new_version())]
            cleared += cast(int, await self._scripts.clear_temps(keys=keys, args=args))
        return cleared

    async def scan_sessions(
        self, after: SessionCursor | None, limit: int
    ) -> tuple[list[SessionRecord], SessionCursor | None]:
        """See :meth:`Storage.scan_sessions`: ``ZSCAN`` of each bot's ``due:sessions``.

        The cursor is a bot and its ``ZSCAN`` cursor. ``COUNT`` is a hint: a small set
        comes whole, a large one about ``limit`` at a time.
        """
        bots = await self.bots()
        first, cursor = after or ("", "0")
        for bot in (b for b in bots if b >= first):
            start = int(cursor) if bot == first else 0
            next_cursor, found = await self._redis.zscan(
                self.bot(bot).due_sessions, start, count=limit
            )
            sessions = await self._sessions_of(bot, [cast(str, member) for member, _ in found])
            if next_cursor != 0:
                return sessions, (bot, str(next_cursor))
            later = [b for b in bots if b > bot]
            if sessions or not later:
                return sessions, (later[0], "0") if later else None
        return [], None

    async def _sessions_of(self, bot: str, session_keys: list[str]) -> list[SessionRecord]:
        """The stored sessions of ``bot`` among ``session_keys`` (Redis may have freed some)."""
        pipe = self._redis.pipeline(transaction=False)
        for key in session_keys:
            pipe.hgetall(self.bot(bot).session(key))
        found: list[dict[str, str]] = await pipe.execute()
        stored = (
            unpack_session(bot, key, raw) for key, raw in zip(session_keys, found, strict=True)
        )
        return [s for s in stored if s is not None]

    async def update_sessions(self, updates: Sequence[SessionUpdate]) -> list[SessionUpdate]:
        """See :meth:`Storage.update_sessions`: one script per bot."""
        by_bot: dict[str, list[SessionUpdate]] = defaultdict(list)
        for u in updates:
            by_bot[u.read.bot_id].append(u)
        applied: list[SessionUpdate] = []
        for bot, batch in by_bot.items():
            k = self.bot(bot)
            keys = [k.due_sessions, k.due_temps, *(k.session(u.read.key) for u in batch)]
            args = [
                arg
                for u in batch
                for arg in (
                    str(u.read.version),
                    u.read.key,
                    num(u.expires_at),
                    "" if u.temp_expires_at is None else num(u.temp_expires_at),
                    str(u.version),
                )
            ]
            done: list[int] = await self._scripts.update_sessions(keys=keys, args=args)
            applied += [batch[i - 1] for i in done]
        return applied

    # -- key-value store -------------------------------------------------------------------
    async def delete_expired_kvs(self, now: float, limit: int) -> int:
        """See :meth:`Storage.delete_expired_kvs`: the global namespace, then every bot's."""
        namespaces = ["", *await self.bots()]
        indexes = [(ns, kvs_keys(self._prefix, ns).due) for ns in namespaces]
        by_ns: dict[str, list[str]] = defaultdict(list)
        for _, namespace, name in await self._due(indexes, now, limit):
            by_ns[namespace].append(name)
        deleted = 0
        for namespace, names in by_ns.items():
            ns = kvs_keys(self._prefix, namespace)
            keys = [ns.due, ns.names, *(ns.data(name) for name in names)]
            script = self._scripts.delete_expired_kvs
            deleted += cast(int, await script(keys=keys, args=[num(now), *names]))
        return deleted


def _update_args(u: VarUpdate) -> list[Any]:
    """Script arguments of one update: name, guard, record, expiry, index member, version."""
    record = (
        ""
        if u.value is None
        else pack_var(
            StoredVar(u.key, u.value, u.changed_at, u.expires_at, u.field_times, new_version())
        )
    )
    expires = "" if u.value is None or u.expires_at is None else num(u.expires_at)
    member = user_var_member(u.key.owner, u.key.name)
    version = "" if u.version is None else str(u.version)
    return [u.key.name, var_guard(u.changed_at), record, expires, member, version]


def _by_bot(sessions: Sequence[SessionRecord]) -> dict[str, list[SessionRecord]]:
    grouped: dict[str, list[SessionRecord]] = defaultdict(list)
    for s in sessions:
        grouped[s.bot_id].append(s)
    return grouped
