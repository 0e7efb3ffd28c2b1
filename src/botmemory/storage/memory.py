"""In-process backend (``memory://``): dictionaries, gone when the process ends.

For tests, demos and bots that need no persistence. Every method runs without
awaiting, so each one is atomic with respect to the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from botmemory.errors import ConflictError
from botmemory.storage.base import (
    CurrentVars,
    KvsModifier,
    KvsRecord,
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
    cleared_version,
    final_kvs,
    final_vars,
    new_version,
)

__all__ = ["MemoryStorage"]

T = TypeVar("T")
Owner = tuple[str, str, str]  # (scope, bot_id, owner)


class MemoryStorage(Storage):
    """Keep everything in dictionaries."""

    def __init__(self, url: str = "memory://") -> None:
        super().__init__()
        self.url = url
        self._vars: dict[Owner, dict[str, StoredVar]] = {}
        self._sessions: dict[tuple[str, str], SessionRecord] = {}
        self._kvs: dict[str, dict[str, KvsRecord]] = {}
        self._meta: dict[str, str] = {}

    async def close(self) -> None:
        """Nothing to release."""

    def _owned(self, scope: str, bot_id: str, owner: str) -> list[StoredVar]:
        return list(self._vars.get((scope, bot_id, owner), {}).values())

    async def load_turn(self, keys: TurnKeys) -> TurnSnapshot:
        return TurnSnapshot(
            user=self._owned("user", keys.bot_id, keys.user_key),
            bot=self._owned("bot", keys.bot_id, ""),
            session=self._sessions.get((keys.bot_id, keys.session_key)),
            session_vars=self._owned("session", keys.bot_id, keys.session_key),
            temp_vars=self._owned("temp", keys.bot_id, keys.session_key),
        )

    async def commit_turn(self, write: TurnWrite) -> None:
        self._check(write)
        # what the deltas leave, before any write: a delta may still fail the commit
        variables = final_vars(write, self._delta_bases(write))
        records = final_kvs(write, {(d.namespace, d.key): self._kvs_row(d.namespace, d.key)
                                    for d in write.kvs_deltas})  # fmt: skip
        session, version = write.session, write.version
        if session is not None and write.reset_session:
            self._vars.pop(("session", session.bot_id, session.key), None)
        if session is not None and (write.reset_session or write.reset_temp):
            self._vars.pop(("temp", session.bot_id, session.key), None)
        for gone in write.deletes:
            self._vars.get((gone.scope, gone.bot_id, gone.owner), {}).pop(gone.name, None)
        for var in variables:
            k = var.key
            owned = self._vars.setdefault((k.scope, k.bot_id, k.owner), {})
            owned[k.name] = var if var.version == version else var._replace(version=version)
        if session is not None:
            if session.version != version:
                session = replace(session, version=version)
            self._sessions[(session.bot_id, session.key)] = session
        for (namespace, name), record in records.items():
            stored = None if record is None else replace(record, version=version)
            self._store_kvs(namespace, name, stored)

    def _delta_bases(self, write: TurnWrite) -> CurrentVars:
        """The stored value and expiry of each variable ``write`` adds a delta to."""
        bases: CurrentVars = {}
        for k in (d.key for d in write.deltas):
            row = self._vars.get((k.scope, k.bot_id, k.owner), {}).get(k.name)
            if row is not None:
                bases[k] = (row.value, row.expires_at)
        return bases

    def _kvs_row(self, namespace: str, key: str) -> KvsRecord | None:
        """The record of ``key`` as stored, expired or not."""
        return self._kvs.get(namespace, {}).get(key)

    def _check(self, write: TurnWrite) -> None:
        """Raise ConflictError unless every check of ``write`` holds (nothing written yet)."""
        s = write.session
        if write.session_version is not None and s is not None:
            current = self._sessions.get((s.bot_id, s.key))
            if (0 if current is None else current.version) != write.session_version:
                raise ConflictError(f"session {s.key} changed since the turn loaded it")
        for check in write.checks:
            k = check.key
            row = self._vars.get((k.scope, k.bot_id, k.owner), {}).get(k.name)
            if not check.holds(0 if row is None else row.version):
                raise ConflictError(f"{k.scope} variable {k.name!r} changed since it was read")
        for scope in write.scope_checks:
            rows = self._vars.get((scope.scope, scope.bot_id, scope.owner), {})
            if rows.keys() != scope.names:
                raise ConflictError(f"{scope.scope} memory changed since the turn read it all")
        for kc in write.kvs_checks:
            live = self._live(kc.namespace, kc.key, write.now)
            if (0 if live is None else live.version) != kc.version:
                raise ConflictError(f"key {kc.key!r} changed since the turn read it")
        for pc in write.kvs_prefix_checks:
            keys = self._kvs.get(pc.namespace, {})
            found = tuple(
                (k, r.version)
                for k, r in sorted(keys.items())
                if k.startswith(pc.prefix) and self._live(pc.namespace, k, write.now)
            )
            if found != pc.versions:
                raise ConflictError(f"keys under {pc.prefix!r} changed since the turn listed them")

    # -- key-value store -------------------------------------------------------------
    def _live(self, namespace: str, key: str, now: float) -> KvsRecord | None:
        record = self._kvs.get(namespace, {}).get(key)
        if record is None or (record.expires_at is not None and record.expires_at <= now):
            return None
        return record

    async def kvs_get(self, namespace: str, key: str, now: float) -> KvsRecord | None:
        return self._live(namespace, key, now)

    def _store_kvs(self, namespace: str, key: str, record: KvsRecord | None) -> None:
        if record is None:
            self._kvs.get(namespace, {}).pop(key, None)
        else:
            self._kvs.setdefault(namespace, {})[key] = record

    async def kvs_put(self, namespace: str, key: str, now: float, record: KvsRecord) -> None:
        self._store_kvs(namespace, key, replace(record, version=new_version()))

    async def kvs_modify(self, namespace: str, key: str, now: float, modify: KvsModifier[T]) -> T:
        record, result = modify(self._live(namespace, key, now))
        self._store_kvs(
            namespace, key, None if record is None else replace(record, version=new_version())
        )
        return result

    async def kvs_delete(self, namespace: str, key: str, now: float) -> bool:
        live = self._live(namespace, key, now) is not None
        self._kvs.get(namespace, {}).pop(key, None)
        return live

    async def kvs_keys(self, namespace: str, prefix: str, now: float) -> list[str]:
        keys = self._kvs.get(namespace, {})
        return sorted(k for k in keys if k.startswith(prefix) and self._live(namespace, k, now))

    async def kvs_delete_prefix(self, namespace: str, prefix: str) -> int:
        return self._delete_prefix(namespace, prefix)

    def _delete_prefix(self, namespace: str, prefix: str) -> int:
        keys = self._kvs.get(namespace, {})
        doomed = [k for k in keys if k.startswith(prefix)]
        for k in doomed:
            del keys[k]
        return len(doomed)

    # -- users -------------------------------------------------------------------------
    def _user_sessions(self, bot_id: str, user_key: str) -> list[SessionRecord]:
        return [s for (b, _), s in self._sessions.items() if b == bot_id and s.user_key == user_key]

    async def load_user(self, bot_id: str, user_key: str) -> UserRecords:
        sessions = self._user_sessions(bot_id, user_key)
        return UserRecords(
            user=self._owned("user", bot_id, user_key),
            sessions=sessions,
            session_vars=[v for s in sessions for v in self._owned("session", bot_id, s.key)],
            temp_vars=[v for s in sessions for v in self._owned("temp", bot_id, s.key)],
        )

    async def delete_user(
        self, bot_id: str, user_key: str, kvs_prefixes: Sequence[str] = ()
    ) -> dict[str, int]:
        counts = {"user_variables": len(self._vars.pop(("user", bot_id, user_key), {}))}
        sessions = self._user_sessions(bot_id, user_key)
        counts["sessions"] = len(sessions)
        counts["session_variables"] = 0
        for s in sessions:
            counts["session_variables"] += len(self._vars.pop(("session", bot_id, s.key), {}))
            counts["session_variables"] += len(self._vars.pop(("temp", bot_id, s.key), {}))
            del self._sessions[(bot_id, s.key)]
        counts["kvs"] = sum(self._delete_prefix(bot_id, prefix) for prefix in kvs_prefixes)
        return counts

    # -- retention and the janitor -------------------------------------------------------
    def _user_vars(self) -> list[StoredVar]:
        return [
            v for (scope, _, _), vs in self._vars.items() if scope == "user" for v in vs.values()
        ]

    async def expired_user_vars(self, now: float, limit: int) -> list[StoredVar]:
        due = [v for v in self._user_vars() if v.expires_at is not None and v.expires_at <= now]
        return due[:limit]

    async def scan_user_vars(
        self, bot_id: str | None, after: VarKey | None, limit: int
    ) -> list[StoredVar]:
        def order(v: StoredVar) -> tuple[str, str, str]:
            return (v.key.bot_id, v.key.owner, v.key.name)

        rows = sorted(
            (v for v in self._user_vars() if bot_id is None or v.key.bot_id == bot_id), key=order
        )
        if after is not None:
            start = (after.bot_id, after.owner, after.name)
            rows = [v for v in rows if order(v) > start]
        return rows[:limit]

    async def update_user_vars(self, updates: Sequence[VarUpdate]) -> list[VarUpdate]:
        applied: list[VarUpdate] = []
        for update in updates:
            k = update.key
            owned = self._vars.get((k.scope, k.bot_id, k.owner), {})
            current = owned.get(k.name)
            if current is None or current.changed_at != update.changed_at:
                continue
            if update.version is not None and current.version != update.version:
                continue
            applied.append(update)
            if update.value is None:
                del owned[k.name]
            else:
                owned[k.name] = current._replace(
                    value=update.value,
                    expires_at=update.expires_at,
                    field_times=update.field_times,
                    version=new_version(),
                )
        return applied

    async def expired_sessions(self, now: float, limit: int) -> list[SessionRecord]:
        due = sorted(
            (s for s in self._sessions.values() if s.expires_at <= now),
            key=lambda s: s.expires_at,
        )
        return due[:limit]

    async def delete_sessions(self, sessions: Sequence[SessionRecord]) -> int:
        deleted = 0
        for s in sessions:
            current = self._sessions.get((s.bot_id, s.key))
            if current is None or current.last_seen != s.last_seen:
                continue
            del self._sessions[(s.bot_id, s.key)]
            self._vars.pop(("session", s.bot_id, s.key), None)
            self._vars.pop(("temp", s.bot_id, s.key), None)
            deleted += 1
        return deleted

    async def expired_temps(self, now: float, limit: int) -> list[SessionRecord]:
        due = sorted(
            (
                s
                for s in self._sessions.values()
                if s.temp_expires_at is not None and s.temp_expires_at <= now
            ),
            key=lambda s: s.temp_expires_at or 0.0,
        )
        return due[:limit]

    async def clear_temps(self, sessions: Sequence[SessionRecord]) -> int:
        cleared = 0
        for s in sessions:
            current = self._sessions.get((s.bot_id, s.key))
            version = cleared_version(s.version)
            if current is None or not (
                current.temp_expires_at == s.temp_expires_at
                or (current.temp_expires_at is None and current.version != version)
            ):
                continue
            self._vars.pop(("temp", s.bot_id, s.key), None)
            self._sessions[(s.bot_id, s.key)] = replace(
                current, temp_expires_at=None, version=version
            )
            cleared += 1
        return cleared

    async def scan_sessions(
        self, after: SessionCursor | None, limit: int
    ) -> tuple[list[SessionRecord], SessionCursor | None]:
        keys = sorted(k for k in self._sessions if after is None or k > after)[:limit]
        cursor = keys[-1] if len(keys) == limit else None
        return [self._sessions[k] for k in keys], cursor

    async def update_sessions(self, updates: Sequence[SessionUpdate]) -> list[SessionUpdate]:
        applied: list[SessionUpdate] = []
        for u in updates:
            key = (u.read.bot_id, u.read.key)
            current = self._sessions.get(key)
            if current is None or current.version != u.read.version:
                continue
            self._sessions[key] = replace(
                current,
                expires_at=u.expires_at,
                temp_expires_at=u.temp_expires_at,
                version=u.version,
            )
            applied.append(u)
        return applied

    async def delete_expired_kvs(self, now: float, limit: int) -> int:
        doomed = [
            (ns, k)
            for ns, keys in self._kvs.items()
            for k, r in keys.items()
            if r.expires_at is not None and r.expires_at <= now
        ][:limit]
        for ns, k in doomed:
            del self._kvs[ns][k]
        return len(doomed)

    async def get_meta(self, name: str) -> str | None:
        return self._meta.get(name)

    async def set_meta(self, name: str, value: str) -> None:
        self._meta[name] = value


def _expired(var: StoredVar, now: float) -> bool:
    return var.expires_at is not None and var.expires_at <= now
