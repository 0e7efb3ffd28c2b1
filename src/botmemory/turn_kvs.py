"""The key-value store as one turn sees it: part of the turn's transaction.

A :class:`TurnKvs` stands where a :class:`~botmemory.storage.base.Storage` would for a
:class:`~botmemory.kvs.KeyValueStore`: reads go to storage once and are remembered
with their version; writes wait in the turn. The turn's commit checks every key read
(and every prefix listed) and applies the writes in the same transaction; a turn that
fails or runs again leaves no trace in the store. Later reads of the turn see its
own writes.

An addition to a key the turn has neither read nor written (``kvs.add``) is a delta:
nothing is read and nothing checked, the commit adds it to whatever is stored then,
so turns that count in one key never conflict. Reading the key later in the turn
reads it (checked) and turns the delta into a write; a listing shows the key, a
deletion drops the delta.
"""

from __future__ import annotations

from typing import TypeVar

from botmemory.clock import Clock
from botmemory.storage.base import (
    KvsCheck,
    KvsDelta,
    KvsModifier,
    KvsPrefixCheck,
    KvsRecord,
    KvsWrite,
    Storage,
)

__all__ = ["TurnKvs"]

T = TypeVar("T")
_Key = tuple[str, str]


def _live(record: KvsRecord | None, now: float) -> KvsRecord | None:
    if record is None or (record.expires_at is not None and record.expires_at <= now):
        return None
    return record


class TurnKvs:
    """The KVS primitives of one turn: checked reads, buffered writes."""

    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock
        self._read: dict[_Key, KvsRecord | None] = {}
        self._writes: dict[_Key, KvsRecord | None] = {}
        self._listed: dict[_Key, tuple[tuple[str, int], ...]] = {}
        self._deltas: dict[_Key, tuple[tuple[KvsDelta, ...], KvsModifier[KvsRecord]]] = {}
        """Additions to keys not read, in order, and the modifier doing them all."""

    async def _stored(self, namespace: str, key: str, now: float) -> KvsRecord | None:
        """The record as storage holds it, read once per turn."""
        where = (namespace, key)
        if where not in self._read:
            self._read[where] = await self._storage.kvs_get(namespace, key, now)
        return self._read[where]

    async def kvs_get(self, namespace: str, key: str, now: float) -> KvsRecord | None:
        """Return the live record of ``key`` as this turn sees it."""
        where = (namespace, key)
        if where in self._deltas:  # read it after all: the delta becomes a checked write
            _, add = self._deltas[where]
            self._writes[where] = add(_live(await self._stored(namespace, key, now), now))[0]
            del self._deltas[where]
        if where in self._writes:
            return _live(self._writes[where], now)
        return _live(await self._stored(namespace, key, now), now)

    async def kvs_put(self, namespace: str, key: str, now: float, record: KvsRecord) -> None:
        """Write ``record`` when the turn commits."""
        self._deltas.pop((namespace, key), None)
        self._writes[(namespace, key)] = record

    async def kvs_add(
        self, namespace: str, key: str, now: float, delta: KvsDelta, add: KvsModifier[KvsRecord]
    ) -> None:
        """Add ``delta`` at commit; to a key this turn read or wrote, add it now."""
        where = (namespace, key)
        if where in self._read or where in self._writes:
            await self.kvs_modify(namespace, key, now, add)
            return
        earlier = self._deltas.get(where)
        if earlier is None:
            self._deltas[where] = ((delta,), add)
        else:  # added one after the other, as Python would (floats are not associative)
            self._deltas[where] = ((*earlier[0], delta), _composed(earlier[1], add))

    async def kvs_modify(self, namespace: str, key: str, now: float, modify: KvsModifier[T]) -> T:
        """Read ``key`` (checked at commit), apply ``modify``, write at commit."""
        record, result = modify(await self.kvs_get(namespace, key, now))
        self._writes[(namespace, key)] = record
        return result

    async def kvs_delete(self, namespace: str, key: str, now: float) -> bool:
        """Delete ``key`` when the turn commits; return whether it is live now."""
        if self._deltas.pop((namespace, key), None) is not None:
            live = True  # the addition made it live: the deletion wins, unread
        else:
            live = await self.kvs_get(namespace, key, now) is not None
        self._writes[(namespace, key)] = None
        return live

    async def kvs_keys(self, namespace: str, prefix: str, now: float) -> list[str]:
        """Return the live keys under ``prefix`` as this turn sees them (checked at commit)."""
        listed = self._listed.get((namespace, prefix))
        if listed is None:
            stored = await self._storage.kvs_keys(namespace, prefix, now)
            versions = []
            for key in stored:
                record = await self._stored(namespace, key, now)
                if record is not None:
                    versions.append((key, record.version))
            listed = self._listed[(namespace, prefix)] = tuple(versions)
        keys = {key for key, _ in listed}
        keys.update(k for ns, k in self._deltas if ns == namespace and k.startswith(prefix))
        for (ns, key), record in self._writes.items():
            if ns == namespace and key.startswith(prefix):
                if _live(record, now) is None:
                    keys.discard(key)
                else:
                    keys.add(key)
        return sorted(keys)

    async def kvs_delete_prefix(self, namespace: str, prefix: str) -> int:
        """Delete the live keys under ``prefix`` when the turn commits; return how many."""
        keys = await self.kvs_keys(namespace, prefix, self._clock())  # deltas' keys too
        for key in keys:
            self._deltas.pop((namespace, key), None)
            self._writes[(namespace, key)] = None
        return len(keys)

    # -- what the commit needs ---------------------------------------------------------
    @property
    def used(self) -> bool:
        """Whether the turn read, listed or wrote a key (else the commit has nothing of it)."""
        return bool(self._read or self._writes or self._listed or self._deltas)

    def writes(self) -> list[KvsWrite]:
        """The records to store (``None``: delete), in the order of their keys."""
        return [KvsWrite(ns, key, record) for (ns, key), record in sorted(self._writes.items())]

    def deltas(self) -> list[KvsDelta]:
        """The additions to keys the turn did not read, in the order of their keys."""
        ordered = sorted(self._deltas.items(), key=lambda item: item[0])
        return [delta for _, (deltas, _) in ordered for delta in deltas]

    def checks(self) -> list[KvsCheck]:
        """Every key read, with the version it had (``0``: absent or expired)."""
        return [
            KvsCheck(ns, key, 0 if record is None else record.version)
            for (ns, key), record in sorted(self._read.items())
        ]

    def prefix_checks(self) -> list[KvsPrefixCheck]:
        """Every prefix listed, with the live keys and versions it had."""
        return [
            KvsPrefixCheck(ns, prefix, versions)
            for (ns, prefix), versions in sorted(self._listed.items())
        ]


def _composed(
    first: KvsModifier[KvsRecord], then: KvsModifier[KvsRecord]
) -> KvsModifier[KvsRecord]:
    """The modifier that applies ``first``, then ``then`` to what it left."""

    def both(record: KvsRecord | None) -> tuple[KvsRecord | None, KvsRecord]:
        return then(first(record)[0])

    return both
