"""The key-value store against Botpress's own KVS tests, on every backend.

Follows Botpress's ``src/bp/core/kvs/kvs.test.ts`` (earlier
``src/bp/core/services/kvs.test.ts`` and ``src/bp/core/services/kvs/kvs.test.ts``), then
what its ``KvsService`` promises the storage actions (``setStorageWithExpiry``,
``getStorageWithExpiry``, ``removeStorageKeysStartingWith``, ``exists``). Where
botmemory differs on purpose (docs/memory.md, "The key-value store"), the test asserts
botmemory's documented behaviour and says why.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from botmemory import InvalidIdError, InvalidValueError, ManualClock, Memory
from botmemory.kvs import KeyValueStore

BOT_ID = "welcome-bot"
KEY = "key"
DEFAULT_VALUE = {
    "profile": {
        "firstName": "Bob",
        "lastName": "Ross",
        "address": {"street": "123 Awesome Street", "city": "Awesome City"},
    },
    "stats": {"awesomeness": "Chuck Norris Level"},
}


@pytest.fixture
async def kvs(mem: Memory) -> KeyValueStore:
    """The bot's store with ``DEFAULT_VALUE`` under ``KEY`` (Botpress's ``beforeEach``)."""
    store = mem.kvs.for_bot(BOT_ID)
    await store.set(KEY, DEFAULT_VALUE)
    return store


# --- describe('Get') ----------------------------------------------------------------


async def test_get_returns_nothing_if_the_key_does_not_exist(kvs: KeyValueStore) -> None:
    assert await kvs.get("does-not-exist") is None


async def test_get_of_an_empty_key_is_an_error(kvs: KeyValueStore) -> None:
    # Botpress's first version read kvs.get('', '') as undefined. botmemory refuses an
    # empty key (docs/memory.md: keys are 1 to 1024 characters), as it does on set.
    with pytest.raises(InvalidIdError):
        await kvs.get("")


async def test_get_returns_the_value_if_the_key_exists(kvs: KeyValueStore) -> None:
    assert await kvs.get(KEY) == DEFAULT_VALUE


async def test_get_returns_the_value_at_path_if_the_key_exists(kvs: KeyValueStore) -> None:
    assert await kvs.get(KEY, "profile.firstName") == "Bob"


async def test_get_at_a_path_that_leads_nowhere_returns_nothing(kvs: KeyValueStore) -> None:
    # lodash's _.get in Botpress: undefined for a missing field, however deep.
    assert await kvs.get(KEY, "profile.middleName") is None
    assert await kvs.get(KEY, "profile.address.zip.code") is None
    assert await kvs.get(KEY, "stats.awesomeness.level") is None


# --- describe('Set') ----------------------------------------------------------------


async def test_set_stores_a_value_if_the_key_does_not_exist(kvs: KeyValueStore) -> None:
    await kvs.set("otherKey", "value")
    assert await kvs.get("otherKey") == "value"


async def test_set_overwrites_an_existing_key(kvs: KeyValueStore) -> None:
    await kvs.set(KEY, "new value")
    assert await kvs.get(KEY) == "new value"


async def test_set_at_path_overwrites_there_and_keeps_the_other_values(
    kvs: KeyValueStore,
) -> None:
    await kvs.set(KEY, {}, "profile")
    value = await kvs.get(KEY)
    assert isinstance(value, dict)
    assert value["profile"] == {}
    assert value["stats"] == {"awesomeness": "Chuck Norris Level"}


async def test_deep_overwrite(kvs: KeyValueStore) -> None:
    await kvs.set(KEY, "The Great Bob", "profile.firstName")
    value = await kvs.get(KEY)
    assert isinstance(value, dict)
    assert value["profile"]["firstName"] == "The Great Bob"
    assert value["profile"]["lastName"] == "Ross"
    assert value["profile"]["address"] == {
        "street": "123 Awesome Street",
        "city": "Awesome City",
    }
    assert value["stats"] == {"awesomeness": "Chuck Norris Level"}


async def test_set_at_path_of_a_missing_key_starts_from_an_empty_object(
    kvs: KeyValueStore,
) -> None:
    # Botpress: _.set(original || {}, path, value).
    await kvs.set("fresh", "Bob", "profile.firstName")
    assert await kvs.get("fresh") == {"profile": {"firstName": "Bob"}}
    await kvs.set("list", "x", "items[0]")
    assert await kvs.get("list") == {"items": ["x"]}


async def test_a_name_of_digits_is_an_index_where_it_meets_a_list(kvs: KeyValueStore) -> None:
    # Botpress: _.get(obj, 'items.0') and _.set(obj, 'items.1', v), lodash paths.
    await kvs.set("k", {"items": ["a", "b"], "scores": {"2024": 1}})
    assert [await kvs.get("k", p, default="D") for p in ("items.0", "items.1", "items.2")] == [
        "a",
        "b",
        "D",
    ]
    assert await kvs.get("k", "scores.2024") == 1  # an object's key
    assert await kvs.get("k", "items.01", default="D") == "D"  # not an index: a name
    await kvs.set("k", "c", "items.1")
    await kvs.set("k", "d", "items.2")  # one past the end: appended
    await kvs.set("k", 2, "scores.2025")
    assert await kvs.get("k") == {"items": ["a", "c", "d"], "scores": {"2024": 1, "2025": 2}}


async def test_an_empty_path_is_the_whole_value(kvs: KeyValueStore) -> None:
    # Botpress: if (!path) return obj / upsert(value).
    assert await kvs.get(KEY, "") == DEFAULT_VALUE
    await kvs.set("k", {"a": 1}, "")
    assert await kvs.get("k") == {"a": 1}


async def test_set_at_path_into_a_stored_null_starts_from_an_empty_object(
    kvs: KeyValueStore,
) -> None:
    # Botpress: _.set(original || {}, path, value).
    await kvs.set("k", None)
    await kvs.set("k", "Bob", "profile.firstName")
    assert await kvs.get("k") == {"profile": {"firstName": "Bob"}}


async def test_set_at_path_through_a_string_is_an_error(kvs: KeyValueStore) -> None:
    # lodash's _.set on a string silently stores nothing. botmemory says so instead
    # (docs/memory.md, "The key-value store": a write through a string raises).
    with pytest.raises(InvalidValueError):
        await kvs.set(KEY, "x", "stats.awesomeness.level")
    assert await kvs.get(KEY) == DEFAULT_VALUE


# --- describe('global/scoped') -------------------------------------------------------


async def test_entries_of_global_and_scoped_stores_do_not_interfere(mem: Memory) -> None:
    key = "gordon-ramsay-favorite-number"
    await mem.kvs.for_bot("bot1").set(key, "1")
    await mem.kvs.for_global().set(key, "2")
    await mem.kvs.for_bot("bot1").set(key, "666")
    await mem.kvs.for_bot("bot2").set(key, "69")
    await mem.kvs.for_global().set(key, "42")

    assert await mem.kvs.for_global().get(key) == "42"
    assert await mem.kvs.for_bot("bot1").get(key) == "666"
    assert await mem.kvs.for_bot("bot2").get(key) == "69"


async def test_deleting_in_one_space_leaves_the_others(mem: Memory) -> None:
    key = "shared-name"
    for store in (mem.kvs.for_bot("bot1"), mem.kvs.for_bot("bot2"), mem.kvs.for_global()):
        await store.set(key, "v")
    assert await mem.kvs.for_bot("bot1").delete(key) is True
    assert await mem.kvs.for_bot("bot1").get(key) is None
    assert await mem.kvs.for_bot("bot2").get(key) == "v"
    assert await mem.kvs.for_global().get(key) == "v"


# --- KvsService: setStorageWithExpiry / getStorageWithExpiry -------------------------


@pytest.mark.parametrize(
    ("expiry", "seconds"),
    [("6 hours", 6 * 3600.0), ("6h", 6 * 3600.0), ("30 days", 30 * 86400.0), ("1m", 60.0)],
)
async def test_a_value_with_an_expiry_is_there_until_it_expires(
    mem: Memory, clock: ManualClock, expiry: str, seconds: float
) -> None:
    # Botpress's storage actions document expiry as "never" or "a short string like
    # '6 hours'", read by ms; a value is there while its expiry is in the future.
    kvs = mem.kvs.for_bot(BOT_ID)
    await kvs.set("storage/global/motd", {"text": "hi"}, expiry=expiry)
    clock.advance(timedelta(seconds=seconds - 0.001))
    assert await kvs.get("storage/global/motd") == {"text": "hi"}
    clock.advance(timedelta(seconds=0.001))
    assert await kvs.get("storage/global/motd") is None


async def test_expiry_never_and_no_expiry_keep_the_value(mem: Memory, clock: ManualClock) -> None:
    # Botpress's default expiry is 'never'.
    kvs = mem.kvs.for_bot(BOT_ID)
    await kvs.set("a", 1, expiry="never")
    await kvs.set("b", 2)
    clock.advance(timedelta(days=3650))
    assert await kvs.get("a") == 1
    assert await kvs.get("b") == 2


async def test_storing_again_replaces_the_expiry(mem: Memory, clock: ManualClock) -> None:
    # setStorageWithExpiry boxes the value with a new expiry each time.
    kvs = mem.kvs.for_bot(BOT_ID)
    await kvs.set("k", 1, expiry="1m")
    clock.advance(timedelta(seconds=50))
    await kvs.set("k", 2, expiry="1m")
    clock.advance(timedelta(seconds=59.999))
    assert await kvs.get("k") == 2
    clock.advance(timedelta(seconds=0.001))
    assert await kvs.get("k") is None
    await kvs.set("k", 3, expiry="1m")
    await kvs.set("k", 4, expiry="never")
    clock.advance(timedelta(days=1))
    assert await kvs.get("k") == 4


async def test_an_expired_key_is_gone_in_every_read(mem: Memory, clock: ManualClock) -> None:
    kvs = mem.kvs.for_bot(BOT_ID)
    await kvs.set("storage/users/u1/nickname", "Bob", expiry="1h")
    clock.advance(timedelta(hours=1))
    assert await kvs.get("storage/users/u1/nickname", default="absent") == "absent"
    assert await kvs.get("storage/users/u1/nickname", "x") is None
    assert not await kvs.exists("storage/users/u1/nickname")
    assert await kvs.keys("storage/users/") == []


# --- KvsService: exists and removeStorageKeysStartingWith ----------------------------


@pytest.mark.parametrize("value", [0, "", False, None])
async def test_exists_is_true_for_a_stored_falsy_value(mem: Memory, value: object) -> None:
    # Botpress's exists() is !!(await get(key)): false for a stored 0, "" or false.
    # botmemory answers whether the key holds a value (docs/memory.md: "exists is true
    # for a stored 0, "", false or null").
    kvs = mem.kvs.for_bot(BOT_ID)
    await kvs.set("k", value)  # type: ignore[arg-type]
    assert await kvs.exists("k")
    assert not await kvs.exists("missing")


async def test_removing_keys_by_prefix_stays_in_the_bot_and_reads_it_literally(
    mem: Memory,
) -> None:
    # Botpress deletes `key LIKE prefix%` in every bot's keys, '_' and '%' being
    # wildcards. botmemory's delete_prefix stays inside its bot (or the global space)
    # and takes the prefix literally (docs/memory.md, "The key-value store").
    kvs, other = mem.kvs.for_bot("bot1"), mem.kvs.for_bot("bot2")
    for key in ("storage/global/a_1", "storage/global/ab1", "storage/global/b"):
        await kvs.set(key, 1)
        await other.set(key, 1)
    await mem.kvs.for_global().set("storage/global/a_1", 1)
    assert await kvs.delete_prefix("storage/global/a_") == 1
    assert await kvs.keys() == ["storage/global/ab1", "storage/global/b"]
    assert len(await other.keys()) == 3
    assert await mem.kvs.for_global().keys() == ["storage/global/a_1"]
    assert await kvs.delete_prefix("storage/") == 2
    assert await kvs.keys() == []
