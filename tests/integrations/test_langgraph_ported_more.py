"""More of LangGraph's own store tests, on every backend (see test_langgraph_ported.py).

Following langchain-ai/langgraph:

- libs/checkpoint-sqlite/tests/test_store.py and libs/checkpoint-postgres/tests/test_store.py:
  test_batch_order, test_batch_get_ops, test_batch_put_ops, test_batch_search_ops,
  test_batch_list_namespaces_ops, test_basic_store_ops, test_list_namespaces,
  test_list_namespaces_operations, test_search, test_search_items,
  test_search_namespace_segment_boundary, test_search_namespace_wildcard_chars_are_literal,
  test_search_namespace_like_metacharacters, test_search_namespace_is_case_sensitive,
  test_list_namespaces_segment_boundary, test_list_namespaces_metacharacter_labels,
  test_search_empty_prefix_is_unconstrained, test_namespace_labels_with_trailing_newline,
  test_sql_injection_vulnerability, test_sql_injection_filter_values,
  test_numeric_filter_safety, test_boolean_filter_safety,
  test_filter_keys_with_hyphens_and_digits, test_non_ascii (without the embeddings),
  test_store_ttl, test_omit_expired_filters_read_paths,
  test_omit_expired_refresh_ttl_only_refreshes_live_rows.
- libs/checkpoint-sqlite/tests/test_async_store.py and
  libs/checkpoint-postgres/tests/test_async_store.py: test_abatch_order, the batch
  op tests, test_no_running_loop, test_large_batches and test_large_batches_async
  (400 and 600 operations, not 6,000), test_basic_store_ops, test_list_namespaces,
  test_search_items.
- libs/checkpoint-sqlite/tests/test_ttl.py: test_ttl_sweeper, test_async_ttl_sweeper,
  test_async_asearch_refresh_ttl.
- libs/checkpoint/tests/test_store.py (the reserved "langgraph" root) and
  test_store_namespace_validation.py (test_base_rejects_invalid_labels,
  test_async_rejects_invalid_labels, test_search_and_listing_preserve_prefixes).
- libs/checkpoint-postgres/tests/unit/test_store_filter_conditions.py: order operators
  compare numbers as numbers and strings as text.

Time moves on the injected clock; nothing sleeps for an expiry. Vector search is not
supported (docs/langgraph.md), so its tests are left out.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    SearchOp,
)

from botmemory import ManualClock, Memory
from botmemory.errors import InvalidValueError, ValueTooLargeError
from botmemory.integrations.langgraph import BotMemoryStore

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
JUST = timedelta(milliseconds=1)
Namespace = tuple[str, ...]


async def put_each(store: BotMemoryStore, namespaces: list[Namespace]) -> None:
    for namespace in namespaces:
        await store.aput(namespace, "k", {"v": 1})


async def searched(store: BotMemoryStore, prefix: Namespace) -> set[Namespace]:
    return {item.namespace for item in await store.asearch(prefix, limit=100)}


# -- batches --------------------------------------------------------------------------
async def test_batch_order(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await store.aput(("test", "foo"), "key1", {"data": "value1"})
    await store.aput(("test", "bar"), "key2", {"data": "value2"})
    results = await store.abatch(
        [
            GetOp(("test", "foo"), "key1"),
            PutOp(("test", "bar"), "key2", {"data": "value2"}),
            SearchOp(("test",), filter={"data": "value1"}, limit=10, offset=0),
            ListNamespacesOp(match_conditions=None, max_depth=None, limit=10, offset=0),
            GetOp(("test",), "key3"),
        ]
    )
    assert isinstance(results[0], Item)
    assert (results[0].namespace, results[0].key, results[0].value) == (
        ("test", "foo"),
        "key1",
        {"data": "value1"},
    )
    assert results[1] is None
    assert [(i.key, i.value) for i in results[2]] == [("key1", {"data": "value1"})]  # type: ignore[union-attr]
    assert results[3] == [("test", "bar"), ("test", "foo")]
    assert results[4] is None

    reordered = await asyncio.to_thread(  # the blocking batch: the same
        store.batch,
        [
            SearchOp(("test",), filter=None, limit=5, offset=0),
            GetOp(("test", "bar"), "key2"),
            ListNamespacesOp(match_conditions=None, max_depth=None, limit=5, offset=0),
            PutOp(("test",), "key3", {"data": "value3"}),
            GetOp(("test", "foo"), "key1"),
        ],
    )
    assert [i.key for i in reordered[0]] == ["key2", "key1"]  # type: ignore[union-attr]
    assert reordered[1].value == {"data": "value2"}  # type: ignore[union-attr]
    assert reordered[2] == [("test", "bar"), ("test", "foo")]
    assert reordered[3] is None
    assert reordered[4].value == {"data": "value1"}  # type: ignore[union-attr]
    assert (await store.aget(("test",), "key3")).value == {"data": "value3"}  # type: ignore[union-attr]


async def test_batch_get_put_search_and_list_namespaces_ops(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    puts = await store.abatch(
        [
            PutOp(("test",), "key1", {"data": "value1"}),
            PutOp(("test",), "key2", {"data": "value2"}),
            PutOp(("test",), "key3", None),  # a delete
        ]
    )
    assert puts == [None, None, None]
    gets = await store.abatch([GetOp(("test",), k) for k in ("key1", "key2", "key3")])
    assert [None if i is None else i.key for i in gets] == ["key1", "key2", None]  # type: ignore[union-attr]
    assert len(await store.asearch(("test",), limit=10)) == 2

    for namespace, key, value in [
        (("test", "foo"), "key1", {"data": "value1", "tag": "a"}),
        (("test", "bar"), "key2", {"data": "value2", "tag": "a"}),
        (("test", "baz"), "key3", {"data": "value3", "tag": "b"}),
    ]:
        await store.aput(namespace, key, value)
    found = await store.abatch(
        [
            SearchOp(("test",), filter={"tag": "a"}, limit=10, offset=0),
            SearchOp(("test",), filter=None, limit=2, offset=0),
            SearchOp(("test", "foo"), filter=None, limit=10, offset=0),
        ]
    )
    assert [i.key for i in found[0]] == ["key2", "key1"]  # type: ignore[union-attr]
    assert len(found[1]) == 2  # type: ignore[arg-type]
    assert [i.namespace for i in found[2]] == [("test", "foo")]  # type: ignore[union-attr]

    listed = await store.abatch(
        [
            ListNamespacesOp(match_conditions=None, max_depth=None, limit=10, offset=0),
            ListNamespacesOp(match_conditions=None, max_depth=1, limit=10, offset=0),
            ListNamespacesOp(
                match_conditions=(MatchCondition("suffix", ("foo",)),),
                max_depth=None,
                limit=10,
                offset=0,
            ),
        ]
    )
    assert listed == [
        [("test",), ("test", "bar"), ("test", "baz"), ("test", "foo")],
        [("test",)],
        [("test", "foo")],
    ]


async def test_batch_and_abatch_give_the_same_results(mem: Memory) -> None:
    sync_store, async_store = BotMemoryStore(mem, bot_id="sync"), BotMemoryStore(mem)
    ops: list[Op] = [
        PutOp(("a", "b"), "k1", {"n": 1}),
        PutOp(("a", "c"), "k2", {"n": 2}),
        PutOp(("a", "c"), "k3", {"n": 3}),
        PutOp(("a", "c"), "k3", None),
    ]
    reads: list[Op] = [
        GetOp(("a", "b"), "k1"),
        GetOp(("a", "c"), "k3"),
        SearchOp(("a",), filter={"n": {"$gte": 2}}),
        SearchOp(("a",), limit=1, offset=1),
        ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("a", "*")),), max_depth=2),
    ]
    assert await asyncio.to_thread(sync_store.batch, ops) == await async_store.abatch(ops)
    from_thread = await asyncio.to_thread(sync_store.batch, reads)
    assert from_thread == await async_store.abatch(reads)
    assert from_thread[1] is None
    assert from_thread[4] == [("a", "b"), ("a", "c")]


async def test_an_invalid_op_fails_the_whole_batch_before_any_write(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    with pytest.raises(InvalidNamespaceError):
        await store.abatch([PutOp(("ok",), "k", {"v": 1}), GetOp(("not.ok",), "k")])
    assert await store.aget(("ok",), "k") is None


async def test_large_batches_async(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    ns = ("test", "foo", "bar", "baz")
    coros: list[Awaitable[Any]] = []
    for m, i in itertools.product(range(10), range(10)):
        where = (*ns, str(m % 2))
        coros += [
            store.aput(where, f"key{i}", {"foo": f"bar{i}"}),
            store.aget(where, f"key{i}"),
            store.alist_namespaces(prefix=None, max_depth=m + 1),
            store.asearch(("test",)),
            store.aput(where, f"key{i}", {"foo": f"bar{i}"}),
            store.adelete(where, f"key{i}"),
        ]
    results = await asyncio.gather(*coros)
    assert len(results) == 600
    # concurrent batches run in no set order: a get sees the value or nothing
    assert {None if r is None else r.value["foo"] for r in results[1::6]} <= {
        None,
        *(f"bar{i}" for i in range(10)),
    }


async def test_large_batches_from_threads(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    ns = ("test", "foo", "bar", "baz")
    with ThreadPoolExecutor(max_workers=10) as pool:
        futures = []
        for m, i in itertools.product(range(10), range(10)):
            where = (*ns, str(m % 2))
            futures += [
                pool.submit(store.put, where, f"key{i}", {"foo": f"bar{i}"}),
                pool.submit(store.get, where, f"key{i}"),
                pool.submit(store.list_namespaces, prefix=None, max_depth=m + 1),
                pool.submit(store.search, ("test",)),
            ]
        results = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
    assert len(results) == 400
    assert len(await store.asearch(("test",), limit=100)) == 20


# -- basic operations ---------------------------------------------------------------
async def test_basic_store_ops(mem: Memory, clock: ManualClock) -> None:
    store = BotMemoryStore(mem)
    namespace = ("test", "documents")
    assert await store.asearch(("test",)) == []
    await store.aput(namespace, "doc1", {"title": "Test Document", "content": "Hello, World!"})
    item = await store.aget(namespace, "doc1")
    assert item is not None
    assert (item.namespace, item.key) == (namespace, "doc1")
    assert item.value == {"title": "Test Document", "content": "Hello, World!"}
    assert item.created_at == item.updated_at

    await store.aput(namespace, "doc1", {"title": "Same time"})  # the clock has not moved
    same_time = await store.aget(namespace, "doc1")
    assert same_time is not None
    assert same_time.updated_at == item.updated_at

    clock.advance(SECOND)
    await store.aput(namespace, "doc1", {"title": "Updated Document"})
    updated = await store.aget(namespace, "doc1")
    assert updated is not None
    assert updated.value == {"title": "Updated Document"}  # replaced, not merged
    assert updated.updated_at == item.updated_at + SECOND
    assert updated.created_at == item.created_at
    assert await store.aget(("test", "other_documents"), "doc1") is None

    await store.aput(namespace, "doc2", {"title": "Another Document"})
    assert [i.key for i in await store.asearch(("test",), limit=10)] == ["doc1", "doc2"]
    assert await store.alist_namespaces(prefix=("test",)) == [namespace]
    await store.adelete(namespace, "doc1")
    await store.adelete(namespace, "doc2")
    await store.adelete(namespace, "never-there")  # deleting nothing is no error
    assert await store.aget(namespace, "doc1") is None
    assert await store.asearch(("test",), limit=10) == []


async def test_a_put_after_a_delete_is_created_anew(mem: Memory, clock: ManualClock) -> None:
    store = BotMemoryStore(mem)
    await store.aput(("ns",), "k", {"v": 1})
    await store.adelete(("ns",), "k")
    clock.advance(SECOND)
    await store.aput(("ns",), "k", {"v": 2})
    item = await store.aget(("ns",), "k")
    assert item is not None
    assert item.created_at == item.updated_at


async def test_keys_are_strings_and_values_are_dicts(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await store.aput(("ns",), 123, {"v": 1})  # type: ignore[arg-type]
    assert (await store.aget(("ns",), "123")).key == "123"  # type: ignore[union-attr]
    with pytest.raises(InvalidValueError, match="give a dict"):
        await store.abatch([PutOp(("ns",), "k", ["not", "a", "dict"])])  # type: ignore[arg-type]


# -- list_namespaces ------------------------------------------------------------------
TEST_NAMESPACES = [
    ("test", "documents", "public"),
    ("test", "documents", "private"),
    ("test", "images", "public"),
    ("test", "images", "private"),
    ("prod", "documents", "public"),
    ("prod", "documents", "private"),
]


async def test_list_namespaces(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    for namespace in TEST_NAMESPACES:
        await store.aput(namespace, "dummy", {"content": "dummy"})
    assert await store.alist_namespaces() == sorted(TEST_NAMESPACES)
    assert await store.alist_namespaces(prefix=("test",)) == sorted(TEST_NAMESPACES[:4])
    assert await store.alist_namespaces(suffix=("public",)) == sorted(TEST_NAMESPACES[::2])
    assert await store.alist_namespaces(max_depth=2) == [
        ("prod", "documents"),
        ("test", "documents"),
        ("test", "images"),
    ]
    assert len(await store.alist_namespaces(limit=3)) == 3
    for namespace in TEST_NAMESPACES:
        await store.adelete(namespace, "dummy")
    assert await store.alist_namespaces() == []


async def test_list_namespaces_operations(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    p = "5a4c1f6e-0b7d-4a51-9d3c-2f0e8b6a7c11"  # a uuid, as LangGraph's test uses
    namespaces = [
        (p, "test", "documents", "public", p),
        (p, "test", "documents", "private", p),
        (p, "test", "images", "public", p),
        (p, "test", "images", "private", p),
        (p, "prod", "documents", "public", p),
        (p, "prod", "documents", "some", "nesting", "public", p),
        (p, "prod", "documents", "private", p),
    ]
    for namespace in namespaces:
        await store.aput(namespace, "dummy", {"content": "dummy"})

    async def listed(**kwargs: Any) -> list[Namespace]:
        return await store.alist_namespaces(**kwargs)

    assert await listed(prefix=(p, "test")) == sorted(namespaces[:4])
    assert await listed(prefix=(p, "test", "documents")) == sorted(namespaces[:2])
    assert await listed(suffix=("public", p)) == sorted(namespaces[i] for i in (0, 2, 4, 5))
    assert await listed(prefix=(p, "test"), suffix=("public", p)) == [namespaces[0], namespaces[2]]
    assert await listed(prefix=(p, "*", "documents")) == sorted(
        namespaces[i] for i in (0, 1, 4, 5, 6)
    )
    assert await listed(suffix=("*", "public", p)) == sorted(namespaces[i] for i in (0, 2, 4, 5))
    assert await listed(suffix=("some", "*", "public", p)) == [namespaces[5]]
    assert all(len(ns) <= 3 for ns in await listed(max_depth=3))
    assert await listed(max_depth=4, prefix=(p, "*", "documents")) == [
        (p, "prod", "documents", "private"),
        (p, "prod", "documents", "public"),
        (p, "prod", "documents", "some"),
        (p, "test", "documents", "private"),
        (p, "test", "documents", "public"),
    ]
    assert len(await listed(prefix=(p,), limit=3)) == 3
    assert len(await listed(prefix=(p,), offset=3)) == len(namespaces) - 3
    assert set(await listed(prefix=(p,))) == set(namespaces)


async def test_list_namespaces_segment_boundary(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await put_each(
        store,
        [
            ("foo",),
            ("foo", "child"),
            ("foobar",),
            ("foobar", "baz"),
            ("uid", "users", "alice"),
            ("uid", "users", "malice"),
            ("uid", "a", "b", "alice"),
        ],
    )
    assert await store.alist_namespaces(prefix=("foo",)) == [("foo",), ("foo", "child")]
    assert await store.alist_namespaces(suffix=("alice",)) == [
        ("uid", "a", "b", "alice"),
        ("uid", "users", "alice"),
    ]
    assert await store.alist_namespaces(prefix=("uid", "*", "alice")) == [("uid", "users", "alice")]
    assert len(await store.alist_namespaces(prefix=("uid",))) == 3


async def test_list_namespaces_metacharacter_labels(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    pairs = [
        ("star*", "starX"),
        ("q?m", "qXm"),
        ("br[ack]et", "brXacXket"),
        ("user_1", "userX1"),
        ("a%b", "axxb"),
        ("plus+", "plusX"),
        ("a/b", "a"),
    ]
    for label, decoy in pairs:
        await put_each(store, [(label,), (decoy,), (label, "child")])
    for label, _ in pairs:
        assert await store.alist_namespaces(prefix=(label,)) == [(label,), (label, "child")]
        assert await store.alist_namespaces(prefix=(label, "child")) == [(label, "child")]


async def test_namespace_labels_with_trailing_newline(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await store.aput(("users", "alice"), "k", {"v": 1})
    await store.aput(("users", "alice\n"), "k", {"v": 2})
    assert await store.alist_namespaces(suffix=("alice",)) == [("users", "alice")]
    assert await store.alist_namespaces(prefix=("users", "alice")) == [("users", "alice")]
    assert [i.value for i in await store.asearch(("users", "alice\n"))] == [{"v": 2}]


# -- search ---------------------------------------------------------------------------
async def test_search(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    data = [
        (
            ("test", "docs"),
            "doc1",
            {"title": "First Doc", "author": "Alice", "tags": ["important"]},
        ),
        (("test", "docs"), "doc2", {"title": "Second Doc", "author": "Bob", "tags": ["draft"]}),
        (("test", "images"), "img1", {"title": "Image 1", "author": "Alice", "tags": ["final"]}),
    ]
    for namespace, key, value in data:
        await store.aput(namespace, key, value)
    assert len(await store.asearch(("test",))) == 3
    assert [i.key for i in await store.asearch(("test", "docs"))] == ["doc1", "doc2"]
    alice = await store.asearch(("test",), filter={"author": "Alice"})
    assert [i.key for i in alice] == ["doc1", "img1"]
    assert len(await store.asearch(("test",), limit=2)) == 2
    assert [i.key for i in await store.asearch(("test",), offset=2)] == ["img1"]
    assert await store.asearch(("test",), offset=3) == []
    assert [i.key for i in await store.asearch(("test",), filter={"tags": ["draft"]})] == ["doc2"]
    assert all(i.score is None for i in await store.asearch(("test",)))


async def test_search_items_pages_are_disjoint(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    base = "test_search_items"
    namespaces = [
        (base, "documents", "user1"),
        (base, "documents", "user2"),
        (base, "reports", "department1"),
        (base, "reports", "department2"),
    ]
    values = [
        {"title": "Doc 1", "author": "John Doe", "tags": ["important"]},
        {"title": "Doc 2", "author": "Jane Smith", "tags": ["draft"]},
        {"title": "Report A", "author": "John Doe", "tags": ["final"]},
        {"title": "Report B", "author": "Alice Johnson", "tags": ["draft"]},
    ]
    for namespace, value in zip(namespaces, values, strict=True):
        await store.aput(namespace, f"item_{namespace[-1]}", value)
    assert len(await store.asearch((base, "documents"))) == 2
    assert len(await store.asearch((base, "reports"))) == 2
    first = {i.key for i in await store.asearch((base,), limit=2, offset=0)}
    second = {i.key for i in await store.asearch((base,), limit=2, offset=2)}
    assert len(first) == len(second) == 2
    assert first.isdisjoint(second)
    assert len(await store.asearch((base,), filter={"author": "John Doe"})) == 2
    assert len(await store.asearch((base,), filter={"tags": ["draft"]})) == 2


async def test_search_namespace_segment_boundary(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await put_each(
        store,
        [
            ("foo",),
            ("foo", "child"),
            ("foo", "child", "deep"),
            ("foobar",),
            ("foobar", "baz"),
            ("foo2",),
        ],
    )
    assert await searched(store, ("foo",)) == {("foo",), ("foo", "child"), ("foo", "child", "deep")}
    assert await searched(store, ("foobar",)) == {("foobar",), ("foobar", "baz")}
    assert await searched(store, ("foo", "child")) == {("foo", "child"), ("foo", "child", "deep")}
    assert await searched(store, ("foo2",)) == {("foo2",)}
    assert await searched(store, ("fo",)) == set()


async def test_search_namespace_wildcard_chars_are_literal(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await put_each(
        store,
        [
            ("user_1",),
            ("user_1", "child"),
            ("userX1",),
            ("a%b",),
            ("axxb",),
            ("star*",),
            ("starX",),
        ],
    )
    assert await searched(store, ("user_1",)) == {("user_1",), ("user_1", "child")}
    assert await searched(store, ("a%b",)) == {("a%b",)}
    assert await searched(store, ("star*",)) == {("star*",)}
    assert await searched(store, ("*",)) == set()  # in a search prefix, "*" is a label


async def test_search_namespace_is_case_sensitive(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await store.aput(("Foo",), "k", {"v": "upper"})
    await store.aput(("foo",), "k", {"v": "lower"})
    await store.aput(("foo",), "K", {"v": "key"})
    assert await searched(store, ("foo",)) == {("foo",)}
    assert await searched(store, ("Foo",)) == {("Foo",)}
    assert (await store.aget(("foo",), "K")).value == {"v": "key"}  # type: ignore[union-attr]


async def test_search_empty_prefix_and_query_none(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await put_each(store, [("a",), ("b", "c"), ("d", "e", "f")])
    everything = {("a",), ("b", "c"), ("d", "e", "f")}
    assert await searched(store, ()) == everything
    assert {i.namespace for i in await store.asearch((), query=None)} == everything
    # no index: a query is ignored, as LangGraph's stores without one do
    assert {i.namespace for i in await store.asearch((), query="anything")} == everything


# -- filters --------------------------------------------------------------------------
async def test_filter_values_are_literals_and_keys_only_name_fields(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await store.aput(("docs",), "doc1", {"access": "public", "title": "Public Document"})
    await store.aput(("docs",), "doc2", {"access": "private", "title": "Private Document"})
    await store.aput(("docs",), "doc4", {"access": "public", "title": "O'Brien's Document"})
    for value in [
        "public' OR '1'='1",
        "public'; --",
        "public' UNION SELECT * FROM store --",
        "public\x00' OR '1'='1",
        "''''",
        "public' OR 'א'='א",
    ]:
        assert await store.asearch(("docs",), filter={"access": value}) == []
    found = await store.asearch(("docs",), filter={"title": "O'Brien's Document"})
    assert [i.key for i in found] == ["doc4"]
    # SqliteStore refuses such a key (ValueError); here a filter key never reaches SQL:
    # it names a field no item has, so nothing matches.
    malicious_key = "access') = 'public' OR '1'='1' OR json_extract(value, '$."
    assert await store.asearch(("docs",), filter={malicious_key: "dummy"}) == []


async def test_numeric_and_boolean_filters(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    for key, price in [("item1", 10), ("item2", 20), ("item3", 30), ("item4", -10)]:
        await store.aput(("items",), key, {"price": price})

    async def keys(filter_: dict[str, Any]) -> list[str]:
        return [i.key for i in await store.asearch(("items",), filter=filter_)]

    assert await keys({"price": {"$gt": 15}}) == ["item2", "item3"]
    assert len(await keys({"price": {"$lt": float("inf")}})) == 4
    assert len(await keys({"price": {"$gt": float("-inf")}})) == 4
    assert await keys({"price": {"$eq": float("nan")}}) == []
    assert len(await keys({"price": {"$lt": 10**100}})) == 4
    assert await keys({"price": {"$lt": 0}}) == ["item4"]
    assert await keys({"price": {"$gte": 9}}) == ["item1", "item2", "item3"]  # not "9" >= "10"

    for key, active in [("flag1", True), ("flag2", False), ("flag3", True)]:
        await store.aput(("flags",), key, {"active": active, "name": key})
    assert [i.key for i in await store.asearch(("flags",), filter={"active": True})] == [
        "flag1",
        "flag3",
    ]
    assert [i.key for i in await store.asearch(("flags",), filter={"active": False})] == ["flag2"]


async def test_order_operators_compare_strings_as_text(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    for key, name in [("a", "apple"), ("b", "banana"), ("c", "cherry"), ("n", 5)]:
        await store.aput(("fruit",), key, {"name": name})

    async def keys(filter_: dict[str, Any]) -> list[str]:
        return [i.key for i in await store.asearch(("fruit",), filter=filter_)]

    assert await keys({"name": {"$gt": "apple"}}) == ["b", "c"]
    assert await keys({"name": {"$gte": "banana"}}) == ["b", "c"]
    assert await keys({"name": {"$lt": "banana"}}) == ["a"]
    assert await keys({"name": {"$lte": "banana", "$ne": "apple"}}) == ["b"]
    assert await keys({"name": {"$gt": 1}}) == ["n"]  # a number only with numbers


async def test_filter_keys_with_hyphens_and_digits(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await store.aput(
        ("docs",), "hyphen", {"access-level": "public", "user": {"access-level": "nested"}}
    )
    await store.aput(("docs",), "digit", {"123abc": "ok", "user": {"123abc": "ok2"}})
    await store.aput(("docs",), "dotted", {"user.access-level": "literal"})

    async def keys(filter_: dict[str, Any]) -> list[str]:
        return [i.key for i in await store.asearch(("docs",), filter=filter_)]

    assert await keys({"access-level": "public"}) == ["hyphen"]
    assert await keys({"123abc": "ok"}) == ["digit"]
    assert await keys({"user": {"access-level": "nested"}}) == ["hyphen"]
    assert await keys({"user": {"123abc": "ok2"}}) == ["digit"]
    # A dotted filter key names one field, as in InMemoryStore and PostgresStore
    # (SqliteStore reads it as a path): documented in docs/langgraph.md.
    assert await keys({"user.access-level": "nested"}) == []
    assert await keys({"user.access-level": "literal"}) == ["dotted"]


# -- text, sizes, depth ---------------------------------------------------------------
async def test_non_ascii(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    texts = ["这是中文", "これは日本語です", "이건 한국어야", "Это русский", "यह रूसी है", "😀 ✓"]
    for i, text in enumerate(texts, start=1):
        await store.aput(("user_123", "memories"), str(i), {"text": text})
    for i, text in enumerate(texts, start=1):
        found = await store.asearch(("user_123", "memories"), filter={"text": text})
        assert [(f.key, f.value) for f in found] == [(str(i), {"text": text})]
    await store.aput(("用户", "記憶", "😀"), "ключ", {"名前": "Ada", "ü": ["é", "ß"]})
    item = await store.aget(("用户", "記憶", "😀"), "ключ")
    assert item is not None
    assert item.value == {"名前": "Ada", "ü": ["é", "ß"]}
    assert await store.alist_namespaces(prefix=("用户",)) == [("用户", "記憶", "😀")]
    assert await store.alist_namespaces(suffix=("😀",)) == [("用户", "記憶", "😀")]
    assert [i.key for i in await store.asearch(("用户", "記憶"))] == ["ключ"]


async def test_large_values_round_trip_up_to_the_limit(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    big = {"text": "x" * 500_000, "items": list(range(20_000)), "nested": {"deep": ["é" * 1000]}}
    await store.aput(("big",), "k", big)
    assert (await store.aget(("big",), "k")).value == big  # type: ignore[union-attr]
    assert [i.value for i in await store.asearch(("big",))] == [big]
    limit = mem.settings.defaults.max_value_bytes
    with pytest.raises(ValueTooLargeError, match="maxValueBytes"):
        await store.aput(("big",), "k", {"text": "x" * limit})
    assert (await store.aget(("big",), "k")).value == big  # type: ignore[union-attr]


async def test_deeply_nested_namespaces(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    deep = tuple(f"level{i}" for i in range(40))
    await store.aput(deep, "k", {"depth": 40})
    await store.aput(deep[:20], "k", {"depth": 20})
    assert (await store.aget(deep, "k")).value == {"depth": 40}  # type: ignore[union-attr]
    assert [i.value["depth"] for i in await store.asearch(deep[:10])] == [20, 40]
    assert [i.namespace for i in await store.asearch(deep[:30])] == [deep]
    assert await store.alist_namespaces(prefix=deep[:5]) == [deep[:20], deep]
    assert await store.alist_namespaces(prefix=deep[:5], max_depth=25) == [deep[:20], deep[:25]]
    assert await store.alist_namespaces(suffix=deep[-3:]) == [deep]
    assert await store.alist_namespaces(prefix=("*",) * 39 + ("level39",)) == [deep]


async def test_index_false_and_index_fields_store_as_usual(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await store.aput(("ns",), "plain", {"text": "a"}, index=False)
    await store.aput(("ns",), "fields", {"text": "b"}, index=["text"])
    assert [i.key for i in await store.asearch(("ns",), query="b")] == ["fields", "plain"]
    assert (await store.aget(("ns",), "plain")).value == {"text": "a"}  # type: ignore[union-attr]


# -- namespaces LangGraph refuses -------------------------------------------------------
INVALID_NAMESPACES: list[tuple[Any, ...]] = [
    ("foo.bar",),
    ("foo", ""),
    (123,),
    ("a\x00b",),
]


Call = tuple[Callable[[], Awaitable[Any]], Callable[[], Any]]


def calls(store: BotMemoryStore, ns: tuple[Any, ...]) -> dict[str, Call]:
    """Every method that takes a namespace: its async and its blocking call."""
    return {
        "put": (lambda: store.aput(ns, "key", {"v": 1}), lambda: store.put(ns, "key", {"v": 1})),
        "get": (lambda: store.aget(ns, "key"), lambda: store.get(ns, "key")),
        "delete": (lambda: store.adelete(ns, "key"), lambda: store.delete(ns, "key")),
        "search": (lambda: store.asearch(ns), lambda: store.search(ns)),
        "prefix": (
            lambda: store.alist_namespaces(prefix=ns),
            lambda: store.list_namespaces(prefix=ns),
        ),
        "suffix": (
            lambda: store.alist_namespaces(suffix=ns),
            lambda: store.list_namespaces(suffix=ns),
        ),
    }


@pytest.mark.parametrize("namespace", INVALID_NAMESPACES, ids=repr)
async def test_invalid_labels_are_refused_by_every_method(
    mem: Memory, namespace: tuple[Any, ...]
) -> None:
    store = BotMemoryStore(mem)
    for async_call, blocking_call in calls(store, namespace).values():
        with pytest.raises(InvalidNamespaceError):
            await async_call()
        with pytest.raises(InvalidNamespaceError):  # from a thread, off the loop
            await asyncio.to_thread(blocking_call)
    assert await store.alist_namespaces() == []


async def test_empty_and_reserved_namespaces_on_put(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    for bad in [(), ("langgraph",), ("langgraph", "foo")]:
        with pytest.raises(InvalidNamespaceError):
            await store.aput(bad, "k", {"v": 1})
    # reading them is no error: the reserved root only guards the public put
    assert await store.aget(("langgraph", "foo"), "k") is None
    assert await store.asearch(("langgraph",)) == []


async def test_search_and_listing_keep_their_prefixes(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    await put_each(store, [("tenant", "a_%"), ("tenant", "ab"), ("tenant", "a_%", "x")])
    assert await searched(store, ("tenant", "a_%")) == {("tenant", "a_%"), ("tenant", "a_%", "x")}
    assert await store.alist_namespaces(prefix=("tenant", "*"), suffix=("*",)) == [
        ("tenant", "a_%"),
        ("tenant", "a_%", "x"),
        ("tenant", "ab"),
    ]


async def test_no_running_loop(mem: Memory) -> None:
    store = BotMemoryStore(mem)
    blocking: list[Callable[[], object]] = [
        lambda: store.put(("foo", "bar"), "baz", {"val": "baz"}),
        lambda: store.get(("foo", "bar"), "baz"),
        lambda: store.delete(("foo", "bar"), "baz"),
        lambda: store.search(("foo", "bar")),
        lambda: store.list_namespaces(prefix=("foo",)),
        lambda: store.batch([PutOp(("foo", "bar"), "baz", {"val": "baz"})]),
    ]
    for call in blocking:
        with pytest.raises(asyncio.InvalidStateError):  # as LangGraph's async stores
            call()
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert await asyncio.wrap_future(pool.submit(blocking[0])) is None
        got = await asyncio.wrap_future(pool.submit(blocking[1]))
        assert got.value == {"val": "baz"}  # type: ignore[attr-defined]
        listed = await asyncio.wrap_future(pool.submit(blocking[4]))
        assert listed == [("foo", "bar")]


# -- time to live -----------------------------------------------------------------------
async def test_store_ttl(mem: Memory, clock: ManualClock) -> None:
    store = BotMemoryStore(mem)
    ns = ("foo",)
    await store.aput(ns, "item1", {"foo": "bar"}, ttl=1)
    clock.advance(MINUTE - 2 * SECOND)
    assert await store.aget(ns, "item1", refresh_ttl=True) is not None
    clock.advance(MINUTE - 2 * SECOND)
    assert len(await store.asearch(ns, query="foo", refresh_ttl=True)) == 1
    clock.advance(MINUTE - 2 * SECOND)
    assert await store.aget(ns, "item1", refresh_ttl=False) is not None
    clock.advance(2 * SECOND - JUST)  # a minute after the refreshing search: not yet
    assert len(await store.asearch(ns, refresh_ttl=False)) == 1
    clock.advance(JUST)
    assert await store.asearch(ns, query="bar", refresh_ttl=False) == []


async def test_asearch_refresh_ttl(mem: Memory, clock: ManualClock) -> None:
    store = BotMemoryStore(mem, ttl={"default_ttl": 4 / 60, "refresh_on_read": True})
    ns = ("docs", "user1")
    await store.aput(ns, "item1", {"text": "content1", "id": 1})
    await store.aput(ns, "item2", {"text": "content2", "id": 2})
    clock.advance(3 * SECOND)
    assert [i.key for i in await store.asearch(ns, filter={"id": 1})] == ["item1"]
    clock.advance(2 * SECOND)
    assert await store.asweep_ttl() == 1
    assert (await store.aget(ns, "item1", refresh_ttl=False)).value["text"] == "content1"  # type: ignore[union-attr]
    assert await store.aget(ns, "item2", refresh_ttl=False) is None
    clock.advance(2 * SECOND - JUST)  # item1: refreshed at 3 s, lives until 7 s
    assert await store.aget(ns, "item1", refresh_ttl=False) is not None
    clock.advance(JUST)
    assert await store.aget(ns, "item1", refresh_ttl=False) is None
    assert await store.asweep_ttl() == 1


async def test_refresh_on_read_false_reads_without_refreshing(
    mem: Memory, clock: ManualClock
) -> None:
    store = BotMemoryStore(mem, ttl={"default_ttl": 1, "refresh_on_read": False})
    await store.aput(("t",), "read", {"v": 1})
    await store.aput(("t",), "refreshed", {"v": 2})
    clock.advance(MINUTE / 2)
    assert await store.aget(("t",), "read") is not None
    assert len(await store.asearch(("t",))) == 2
    assert await store.aget(("t",), "refreshed", refresh_ttl=True) is not None
    clock.advance(MINUTE / 2)
    assert [i.key for i in await store.asearch(("t",))] == ["refreshed"]
    clock.advance(MINUTE / 2 - JUST)
    assert await store.aget(("t",), "refreshed") is not None
    clock.advance(JUST)
    assert await store.aget(("t",), "refreshed") is None


async def test_ttl_none_and_no_default_never_expire(mem: Memory, clock: ManualClock) -> None:
    plain = BotMemoryStore(mem)
    await plain.aput(("t",), "no-config", {"v": 1})
    with_default = BotMemoryStore(mem, bot_id="default", ttl={"default_ttl": 1})
    await with_default.aput(("t",), "none", {"v": 1}, ttl=None)
    await with_default.aput(("t",), "default", {"v": 1})
    clock.advance(timedelta(days=3650))
    assert await plain.aget(("t",), "no-config") is not None
    assert [i.key for i in await with_default.asearch(("t",))] == ["none"]
    assert await with_default.asweep_ttl() == 1


async def test_an_expired_item_is_not_resurrected_by_a_refreshing_read(
    mem: Memory, clock: ManualClock
) -> None:
    store = BotMemoryStore(mem)
    ns = ("refresh",)
    await store.aput(ns, "expired", {"n": 0}, ttl=1)
    await store.aput(ns, "live_get", {"n": 1}, ttl=2)
    await store.aput(ns, "live_search", {"n": 2}, ttl=2)
    await store.aput(("omit", "expired"), "e", {"n": 3}, ttl=1)
    await store.aput(("omit", "control"), "c", {"n": 4}, ttl=None)
    clock.advance(MINUTE)
    assert await store.aget(ns, "expired", refresh_ttl=True) is None
    assert [i.key for i in await store.asearch(ns, refresh_ttl=True)] == ["live_get", "live_search"]
    assert await store.alist_namespaces(prefix=("omit",)) == [("omit", "control")]
    assert await store.asearch(("omit", "expired")) == []
    clock.advance(2 * MINUTE - JUST)  # the live ones were refreshed a minute in
    assert len(await store.asearch(ns, refresh_ttl=False)) == 2
    assert await store.asweep_ttl() == 2  # the expired ones stayed expired


async def test_ttl_sweeper(mem: Memory, clock: ManualClock) -> None:
    store = BotMemoryStore(mem, ttl={"default_ttl": 2 / 60, "sweep_interval_minutes": 1})
    await store.aput(("test",), "item1", {"value": "test"})
    await store.aput(("test",), "kept", {"value": "test"}, ttl=None)
    assert await store.aget(("test",), "item1") is not None
    clock.advance(3 * SECOND)
    runs = mem.janitor.totals.runs
    await store.astart_ttl_sweeper()
    while mem.janitor.totals.runs == runs:  # noqa: ASYNC110 - the janitor sets no event
        await asyncio.sleep(0.01)  # its first run, a real background task: not an expiry
    assert await store.astop_ttl_sweeper()
    assert await store.asweep_ttl() == 0  # the sweeper removed it
    assert await store.aget(("test",), "item1") is None
    assert await store.aget(("test",), "kept") is not None
