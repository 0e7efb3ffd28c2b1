"""LangGraph's store operations on botmemory's key-value store.

Each item is one KVS key (see :mod:`._keys`) holding ``{"v": value, "c": created at,
"u": updated at, "t": lifetime in seconds or null}``, with the KVS expiry set to the
moment it is due. Reads go through the KVS, which never returns an expired key, so an
item is gone the instant it expires, whether or not the janitor has run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from langgraph.store.base import GetOp, Item, ListNamespacesOp, PutOp, SearchItem, SearchOp

from botmemory.clock import Clock
from botmemory.durations import Seconds
from botmemory.errors import InvalidValueError
from botmemory.integrations.langgraph._filters import check_filter, keeps
from botmemory.integrations.langgraph._keys import (
    Namespace,
    listing_prefix,
    matches,
    namespace_prefix,
    split_key,
    storage_key,
)
from botmemory.integrations.langgraph._retention import StorePolicies
from botmemory.kvs import KvsPrimitives
from botmemory.storage.base import KvsModifier, KvsRecord
from botmemory.values import JsonValue, dumps, loads, to_json_text

__all__ = ["ForgetReport", "StoreOps"]

FETCH_CHUNK: Final = 64
"""Keys read at once by a search."""


@dataclass(frozen=True, slots=True)
class ForgetReport:
    """What :meth:`BotMemoryStore.forget` erased."""

    namespace: Namespace
    """The namespace erased, with every namespace under it."""
    items: int
    """Items deleted, expired ones not yet swept included."""
    namespaces: int
    """Namespaces that held a live item."""


@dataclass(frozen=True, slots=True)
class _Found:
    namespace: Namespace
    key: str
    envelope: dict[str, Any]


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _item(found: _Found) -> Item:
    env = found.envelope
    return Item(
        value=env["v"],
        key=found.key,
        namespace=found.namespace,
        created_at=_time(env["c"]),
        updated_at=_time(env["u"]),
    )


def _search_item(found: _Found) -> SearchItem:
    env = found.envelope
    return SearchItem(found.namespace, found.key, env["v"], _time(env["c"]), _time(env["u"]))


class StoreOps:
    """The store's operations on one KVS namespace, asynchronous, at the clock's time."""

    def __init__(
        self,
        storage: KvsPrimitives,
        kvs_namespace: str,
        clock: Clock,
        policies: StorePolicies,
        max_value_bytes: int,
    ) -> None:
        self._storage = storage
        self._ns = kvs_namespace
        self._clock = clock
        self._policies = policies
        self._max_bytes = max_value_bytes

    async def get(self, op: GetOp) -> Item | None:
        """Return the live item, refreshing its expiry if asked."""
        now = self._clock()
        key = storage_key(op.namespace, str(op.key))
        record = await self._storage.kvs_get(self._ns, key, now)
        if record is None:
            return None
        found = _Found(tuple(op.namespace), str(op.key), _envelope(record))
        if op.refresh_ttl:
            await self._refresh([found], now)
        return _item(found)

    async def search(self, op: SearchOp) -> list[SearchItem]:
        """Return the live items under the prefix that pass the filter, by namespace
        then key, from ``offset``, at most ``limit``."""
        check_filter(op.filter)
        now = self._clock()
        keys = await self._storage.kvs_keys(self._ns, namespace_prefix(op.namespace_prefix), now)
        located = sorted((*split_key(k), k) for k in keys)
        window = slice(op.offset, op.offset + op.limit)
        if not op.filter:
            located = located[window]
        records = await self._fetch([k for _, _, k in located], now)
        found = [
            _Found(ns, key, env)
            for (ns, key, _), record in zip(located, records, strict=True)
            if record is not None and keeps(op.filter, (env := _envelope(record))["v"])
        ]
        if op.filter:
            found = found[window]
        if op.refresh_ttl:
            await self._refresh(found, now)
        return [_search_item(f) for f in found]

    async def list_namespaces(self, op: ListNamespacesOp) -> list[Namespace]:
        """Return the namespaces holding a live item that match every condition, sorted."""
        conditions = op.match_conditions or ()
        keys = await self._storage.kvs_keys(self._ns, listing_prefix(conditions), self._clock())
        namespaces = {split_key(k)[0] for k in keys}
        kept = {n for n in namespaces if all(matches(c, n) for c in conditions)}
        if op.max_depth is not None:
            kept = {n[: op.max_depth] for n in kept}
        return sorted(kept)[op.offset : op.offset + op.limit]

    async def put(self, op: PutOp, requested: Seconds | None) -> None:
        """Store or delete one item; ``requested`` is the lifetime the put asked for."""
        namespace, key = tuple(op.namespace), str(op.key)
        stored = storage_key(namespace, key)
        now = self._clock()
        if op.value is None:
            await self._storage.kvs_delete(self._ns, stored, now)
            return
        if not isinstance(op.value, Mapping):
            raise InvalidValueError(f"item {key!r} in {namespace}: give a dict, not {op.value!r}")
        value = loads(to_json_text(dict(op.value), f"item {key!r}", self._max_bytes))
        ttl = self._policies.lifetime(namespace, key, requested)
        expires_at = None if ttl is None else now + ttl

        def write(record: KvsRecord | None) -> tuple[KvsRecord, None]:
            created = now if record is None else _envelope(record)["c"]
            envelope: JsonValue = {"v": value, "c": created, "u": now, "t": ttl}
            return KvsRecord(dumps(envelope), expires_at), None

        await self._storage.kvs_modify(self._ns, stored, now, write)

    async def forget(self, namespace: Namespace) -> ForgetReport:
        """Delete every item in ``namespace`` and under it, expired or not."""
        if not namespace:
            raise InvalidValueError("forget needs a namespace, such as ('users', user_id)")
        prefix = namespace_prefix(namespace)
        live = await self._storage.kvs_keys(self._ns, prefix, self._clock())
        namespaces = {split_key(k)[0] for k in live}
        items = await self._storage.kvs_delete_prefix(self._ns, prefix)
        return ForgetReport(tuple(namespace), items, len(namespaces))

    async def _fetch(self, keys: Sequence[str], now: float) -> list[KvsRecord | None]:
        records: list[KvsRecord | None] = []
        for start in range(0, len(keys), FETCH_CHUNK):
            chunk = keys[start : start + FETCH_CHUNK]
            records += await asyncio.gather(
                *(self._storage.kvs_get(self._ns, k, now) for k in chunk)
            )
        return records

    async def _refresh(self, found: Sequence[_Found], now: float) -> None:
        """Restart, from ``now``, the lifetime of the items that have one: the one they
        were written with, at most what the policies in force allow (a policy that
        came after the write counts from this read)."""

        def restart(namespace: Namespace, key: str) -> KvsModifier[None]:
            def modify(record: KvsRecord | None) -> tuple[KvsRecord | None, None]:
                if record is None:
                    return None, None
                ttl = self._policies.lifetime(namespace, key, _envelope(record)["t"])
                expires_at = record.expires_at if ttl is None else now + ttl
                return KvsRecord(record.value, expires_at), None

            return modify

        await asyncio.gather(
            *(
                self._storage.kvs_modify(
                    self._ns, storage_key(f.namespace, f.key), now, restart(f.namespace, f.key)
                )
                for f in found
                if self._policies.lifetime(f.namespace, f.key, f.envelope["t"]) is not None
            )
        )


def _envelope(record: KvsRecord) -> dict[str, Any]:
    envelope: dict[str, Any] = loads(record.value)  # type: ignore[assignment]
    return envelope
