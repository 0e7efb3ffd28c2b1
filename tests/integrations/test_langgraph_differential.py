"""botmemory's LangGraph store against LangGraph's own ``InMemoryStore``, differentially.

Hypothesis draws sequences of put / get / search / delete / list_namespaces, with
clock moves in between, and runs each on both stores; every result must be equal,
except for these documented differences, each applied to the reference here:

- EXACT_EXPIRY: ``InMemoryStore`` has no TTL. The test gives it one, exactly: an item
  the reference holds is deleted from it the moment its time to live (minutes, from
  the put or the last read that refreshed it) has passed. botmemory must agree.
- EMPTY_NAMESPACES_UNLISTED: ``InMemoryStore`` keeps listing a namespace once its last
  item is gone, or once a ``get`` looked into it; botmemory lists namespaces that hold
  a live item. The test drops the reference's empty namespaces.
- SEARCH_ORDER: ``InMemoryStore`` returns search results in insertion order,
  botmemory by namespace then key; the test sorts the reference's full result and
  then applies ``offset`` and ``limit``.
- TIMESTAMPS: ``created_at`` and ``updated_at`` come from botmemory's injected clock,
  so they are not compared.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from langgraph.store.base import Item
from langgraph.store.memory import InMemoryStore

from botmemory import ManualClock, Memory
from botmemory.integrations.langgraph import BotMemoryStore

LABELS = st.sampled_from(["a", "b", "users", "x/y", "%2F"])
NAMESPACES = st.lists(LABELS, min_size=1, max_size=3).map(tuple)
KEYS = st.sampled_from(["k1", "k2", "name", "a b"])
VALUES = st.fixed_dictionaries({"n": st.integers(0, 3), "tag": st.sampled_from(["red", "blue"])})
TTLS = st.none() | st.sampled_from([1, 2, 5])  # minutes, LangGraph's unit; small, to land on
FILTERS = st.none() | st.sampled_from(
    [
        {"tag": "red"},
        {"n": {"$gt": 1}},
        {"n": {"$ne": 2}},
        {"tag": "blue", "n": {"$lte": 2}},
        {"n": {"$gte": 0, "$lt": 3}},
    ]
)
PATHS = st.none() | st.lists(LABELS | st.just("*"), min_size=1, max_size=2).map(tuple)

OPS = st.one_of(
    st.tuples(st.just("put"), NAMESPACES, KEYS, VALUES, TTLS),
    st.tuples(st.just("delete"), NAMESPACES, KEYS),
    st.tuples(st.just("get"), NAMESPACES, KEYS),
    st.tuples(
        st.just("search"),
        st.lists(LABELS, max_size=2).map(tuple),
        FILTERS,
        st.integers(1, 5),
        st.integers(0, 3),
    ),
    st.tuples(
        st.just("list"),
        PATHS,
        PATHS,
        st.none() | st.integers(1, 3),
        st.integers(1, 5),
        st.integers(0, 2),
    ),
    st.tuples(st.just("advance"), st.sampled_from([1, 2, 3])),  # ... expiry boundaries
)

RED = {"n": 0, "tag": "red"}
Located = tuple[tuple[str, ...], str]


@dataclass
class Reference:
    """``InMemoryStore`` with the documented differences applied."""

    clock: ManualClock
    store: InMemoryStore = field(default_factory=InMemoryStore)
    expiry: dict[Located, tuple[float, float]] = field(default_factory=dict)

    def expire(self) -> None:
        """EXACT_EXPIRY, then EMPTY_NAMESPACES_UNLISTED."""
        for where, (due, _) in list(self.expiry.items()):
            if due <= self.clock():
                self.store.delete(*where)
                del self.expiry[where]
        for namespace in [ns for ns, items in self.store._data.items() if not items]:
            del self.store._data[namespace]

    def put(self, ns: tuple[str, ...], key: str, value: dict[str, Any], ttl: int | None) -> None:
        self.store.put(ns, key, value)
        self.expiry.pop((ns, key), None)
        if ttl is not None:
            self.expiry[(ns, key)] = (self.clock() + ttl * 60, ttl * 60)

    def read(self, items: list[Item]) -> None:
        """A read refreshes the TTL of what it returned."""
        for item in items:
            where = (item.namespace, item.key)
            if where in self.expiry:
                self.expiry[where] = (self.clock() + self.expiry[where][1], self.expiry[where][1])


def seen(items: list[Any]) -> list[tuple[tuple[str, ...], str, dict[str, Any]]]:
    """TIMESTAMPS: what is compared of an item."""
    return [(tuple(i.namespace), i.key, i.value) for i in items]


def check(ours: BotMemoryStore, ref: Reference, op: tuple[Any, ...]) -> None:
    ref.expire()
    kind, *args = op
    if kind == "put":
        ns, key, value, ttl = args
        ours.put(ns, key, value, ttl=ttl)
        ref.put(ns, key, value, ttl)
    elif kind == "delete":
        ours.delete(*args)
        ref.store.delete(*args)
        ref.expiry.pop(tuple(args), None)  # type: ignore[arg-type]
    elif kind == "get":
        found, expected = ours.get(*args), ref.store.get(*args)
        assert seen([found] if found else []) == seen([expected] if expected else []), op
        ref.read([expected] if expected else [])
    elif kind == "search":
        prefix, filter_, limit, offset = args
        everything = ref.store.search(prefix, filter=filter_, limit=10_000)
        ordered = sorted(everything, key=lambda i: (tuple(i.namespace), i.key))  # SEARCH_ORDER
        expected = ordered[offset : offset + limit]
        assert seen(ours.search(prefix, filter=filter_, limit=limit, offset=offset)) == seen(
            expected
        ), op
        ref.read(expected)
    elif kind == "list":
        prefix, suffix, depth, limit, offset = args
        query = {"prefix": prefix, "suffix": suffix, "max_depth": depth}
        page = {"limit": limit, "offset": offset}
        ref.expire()  # a get may have left an empty namespace behind
        assert ours.list_namespaces(**query, **page) == ref.store.list_namespaces(
            **query, **page
        ), op
    else:
        ref.clock.advance(timedelta(minutes=args[0]))


async def test_the_store_agrees_with_langgraphs_in_memory_store(
    mem: Memory, clock: ManualClock
) -> None:
    ids = itertools.count()
    loop = asyncio.get_running_loop()

    async def new_store() -> BotMemoryStore:
        return BotMemoryStore(mem, bot_id=f"diff{next(ids)}")  # made on the memory's loop

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.lists(OPS, max_size=40))
    @example(  # an item read at the very moment its ttl ends: gone, on both
        [("put", ("a",), "k1", RED, 1), ("advance", 1), ("get", ("a",), "k1")]
    )
    @example(  # a search refreshes the ttl of what it returns
        [
            ("put", ("a",), "k1", RED, 2),
            ("advance", 1),
            ("search", (), None, 5, 0),
            ("advance", 1),
            ("get", ("a",), "k1"),
        ]
    )
    @example(  # SEARCH_ORDER
        [
            ("put", ("b",), "k1", RED, None),
            ("put", ("a",), "k2", RED, None),
            ("search", (), None, 5, 0),
            ("search", (), None, 1, 1),
        ]
    )
    def agree(ops: list[tuple[Any, ...]]) -> None:
        ours = asyncio.run_coroutine_threadsafe(new_store(), loop).result()
        ref = Reference(clock)
        for op in ops:
            check(ours, ref, op)

    await asyncio.to_thread(agree)
