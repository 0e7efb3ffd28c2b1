"""LangGraph's own store tests that apply to botmemory's store, on every backend.

Ported from langchain-ai/langgraph:

- libs/checkpoint/tests/test_store.py: test_list_namespaces_basic,
  test_list_namespaces_with_wildcards, test_list_namespaces_pagination,
  test_list_namespaces_max_depth, test_list_namespaces_no_conditions,
  test_list_namespaces_empty_store, test_cannot_put_empty_namespace.
- libs/checkpoint-sqlite/tests/test_ttl.py: test_ttl_basic, test_ttl_refresh,
  test_ttl_custom_value, test_ttl_override_default, test_search_with_ttl,
  test_omit_expired_search_pagination. Those sleep and retry; here the injected clock
  moves instead, and an item is gone at its expiry without a sweep.
- libs/checkpoint-sqlite/tests/test_store.py: the search filter cases
  (equality, nested, $eq/$ne/$gt/$gte/$lt/$lte).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from langgraph.store.base import InvalidNamespaceError, PutOp

from botmemory import ManualClock, Memory
from botmemory.integrations.langgraph import BotMemoryStore

SECOND = timedelta(seconds=1)


async def put_all(store: BotMemoryStore, namespaces: list[tuple[str, ...]]) -> None:
    for i, ns in enumerate(namespaces):
        await store.aput(ns, f"id_{i}", {"data": f"value_{i:02d}"})


async def test_list_namespaces_basic(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await put_all(
        store,
        [
            ("a", "b", "c"),
            ("a", "b", "d", "e"),
            ("a", "b", "d", "i"),
            ("a", "b", "f"),
            ("a", "c", "f"),
            ("b", "a", "f"),
            ("users", "123"),
            ("users", "456", "settings"),
            ("admin", "users", "789"),
        ],
    )
    ab = [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f")]
    assert await store.alist_namespaces(prefix=("a", "b")) == ab
    assert await store.alist_namespaces(suffix=("f",)) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
    ]
    assert await store.alist_namespaces(prefix=("a",), suffix=("f",)) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
    ]
    assert await store.alist_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "b", "f"),
    ]
    assert await store.alist_namespaces(prefix=("a", "b"), limit=2) == ab[:2]
    assert await store.alist_namespaces(prefix=("a", "b"), offset=2) == ab[2:]
    assert await store.alist_namespaces(prefix=("a", "*", "f")) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
    ]
    assert await store.alist_namespaces(suffix=("*", "f")) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
    ]
    assert await store.alist_namespaces(prefix=("nonexistent",)) == []
    assert await store.alist_namespaces(prefix=("users", "123")) == [("users", "123")]


async def test_list_namespaces_with_wildcards(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await put_all(
        store,
        [
            ("users", "123"),
            ("users", "456"),
            ("users", "789", "settings"),
            ("admin", "users", "789"),
            ("guests", "123"),
            ("guests", "456", "preferences"),
        ],
    )
    assert await store.alist_namespaces(prefix=("users", "*")) == [
        ("users", "123"),
        ("users", "456"),
        ("users", "789", "settings"),
    ]
    assert await store.alist_namespaces(suffix=("*", "preferences")) == [
        ("guests", "456", "preferences")
    ]
    assert await store.alist_namespaces(prefix=("*", "users"), suffix=("*", "settings")) == []
    await store.aput(("admin", "users", "settings", "789"), "foo", {"data": "some_val"})
    assert await store.alist_namespaces(prefix=("*", "users"), suffix=("settings", "*")) == [
        ("admin", "users", "settings", "789")
    ]


async def test_list_namespaces_pagination(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    for i in range(20):
        await store.aput(("namespace", f"sub_{i:02d}"), f"id_{i:02d}", {"data": i})
    for offset in (0, 5, 15):
        assert await store.alist_namespaces(prefix=("namespace",), limit=5, offset=offset) == [
            ("namespace", f"sub_{i:02d}") for i in range(offset, offset + 5)
        ]


async def test_list_namespaces_max_depth(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await put_all(
        store,
        [("a", "b", "c", "d"), ("a", "b", "c", "e"), ("a", "b", "f"), ("a", "g"), ("h", "i", "j")],
    )
    assert await store.alist_namespaces(max_depth=2) == [("a", "b"), ("a", "g"), ("h", "i")]


async def test_list_namespaces_no_conditions_and_empty_store(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    assert await store.alist_namespaces() == []
    namespaces = [("a", "b"), ("c", "d"), ("e", "f", "g")]
    await put_all(store, namespaces)
    assert await store.alist_namespaces() == namespaces


async def test_cannot_put_empty_namespace(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    doc = {"foo": "bar"}
    for bad in [(), ("the", "thing.about"), ("some", "fun", ""), ("langgraph", "foo")]:
        with pytest.raises(InvalidNamespaceError):
            await store.aput(bad, "foo", doc)
    await store.aput(("foo", "langgraph", "foo"), "bar", doc)
    assert (await store.aget(("foo", "langgraph", "foo"), "bar")).value == doc  # type: ignore[union-attr]
    assert (await store.asearch(("foo", "langgraph", "foo")))[0].value == doc
    await store.adelete(("foo", "langgraph", "foo"), "bar")
    assert await store.aget(("foo", "langgraph", "foo"), "bar") is None
    # past the public put api, as LangGraph's test does
    await store.abatch([PutOp(("langgraph", "foo"), "bar", doc)])
    assert (await store.aget(("langgraph", "foo"), "bar")).value == doc  # type: ignore[union-attr]


async def test_ttl_basic_and_search_with_ttl(mem: Memory, clock: ManualClock) -> None:
    store = BotMemoryStore(mem, ttl={"default_ttl": 1 / 60})  # one second, in minutes
    await store.aput(("test",), "item1", {"value": "apple"})
    await store.aput(("test",), "item2", {"value": "banana"})
    assert [i.key for i in await store.asearch(("test",), filter={"value": "apple"})] == ["item1"]
    clock.advance(SECOND * 2)
    assert await store.asearch(("test",), filter={"value": "apple"}) == []
    assert await store.aget(("test",), "item1") is None  # before any sweep
    assert await store.asweep_ttl() == 2


async def test_ttl_refresh(mem: Memory, clock: ManualClock) -> None:
    store = BotMemoryStore(mem, ttl={"default_ttl": 1 / 60, "refresh_on_read": True})
    await store.aput(("test",), "item1", {"value": "test"})
    clock.advance(SECOND / 2)
    assert await store.asweep_ttl() == 0
    assert await store.aget(("test",), "item1", refresh_ttl=True) is not None
    clock.advance(SECOND / 2)
    assert await store.asweep_ttl() == 0
    assert await store.aget(("test",), "item1") is not None
    clock.advance(SECOND * 1.75)
    assert await store.asweep_ttl() == 1
    assert await store.aget(("test",), "item1") is None


async def test_ttl_custom_value_and_override_default(mem: Memory, clock: ManualClock) -> None:
    store = BotMemoryStore(mem, ttl={"default_ttl": 5 / 60})
    await store.aput(("test",), "item1", {"value": "override"}, ttl=1 / 60)
    await store.aput(("test",), "item2", {"value": "default"})
    await store.aput(("test",), "item3", {"value": "permanent"}, ttl=None)
    clock.advance(SECOND * 2)
    found = [await store.aget(("test",), k, refresh_ttl=False) for k in ("item1", "item2", "item3")]
    assert [item is not None for item in found] == [False, True, True]
    clock.advance(SECOND * 4)
    assert await store.aget(("test",), "item2") is None
    assert await store.aget(("test",), "item3") is not None


async def test_search_pagination_skips_expired_items(mem: Memory, clock: ManualClock) -> None:
    store = BotMemoryStore(mem, ttl={"default_ttl": 5})
    for key in ("a", "b", "c"):
        await store.aput(("page",), key, {"k": key})
    await store.aput(("page",), "aa", {"k": "x"}, ttl=1)
    clock.advance(timedelta(minutes=1))
    assert [i.key for i in await store.asearch(("page",), limit=2)] == ["a", "b"]
    assert [i.key for i in await store.asearch(("page",), limit=2, offset=2)] == ["c"]
    assert [i.key for i in await store.asearch(("page",), limit=2, filter={"k": {"$ne": "z"}})] == [
        "a",
        "b",
    ]


async def test_search_filters(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    docs = {
        "doc1": {"title": "One", "score": 4.5, "tags": ["a", "b"], "meta": {"lang": "en"}},
        "doc2": {"title": "Two", "score": 3.0, "tags": ["b"], "meta": {"lang": "fr"}},
        "doc3": {"title": "Three", "score": 5.0, "tags": ["a"], "meta": {"lang": "en"}},
        "doc4": {"title": "Four", "score": 2.5, "tags": []},
    }
    for key, doc in docs.items():
        await store.aput(("test", "docs"), key, doc)

    async def keys(filter_: dict[str, object]) -> list[str]:
        return [i.key for i in await store.asearch(("test",), filter=filter_)]

    assert await keys({"title": "Two"}) == ["doc2"]
    assert await keys({"meta": {"lang": "en"}}) == ["doc1", "doc3"]
    assert await keys({"tags": ["a", "b"]}) == ["doc1"]
    assert await keys({"score": {"$gt": 4.0}}) == ["doc1", "doc3"]
    assert await keys({"score": {"$gte": 4.5}}) == ["doc1", "doc3"]
    assert await keys({"score": {"$lt": 3.0}}) == ["doc4"]
    assert await keys({"score": {"$lte": 3.0}}) == ["doc2", "doc4"]
    assert await keys({"score": {"$eq": 5.0}}) == ["doc3"]
    assert await keys({"score": {"$ne": 5.0}}) == ["doc1", "doc2", "doc4"]
    assert await keys({"score": {"$gt": 2.0, "$lt": 4.0}}) == ["doc2", "doc4"]
    assert await keys({"title": "One", "score": {"$gt": 4.0}}) == ["doc1"]
    assert await keys({"meta": {"$ne": None}, "title": {"$ne": "One"}}) == ["doc2", "doc3"]
    assert await keys({"missing": {"$gt": 1}}) == []
