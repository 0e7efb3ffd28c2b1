"""Retention policies against what Botpress's data retention service does, on every backend.

Follows Botpress's ``src/bp/core/services/retention/service.ts`` (an expiry set when a
policy's field changes, found by ``getPaths`` and ``deep-diff``), ``retention/util.ts``
(``getPaths``: nested objects as dotted paths, lists as values) and
``retention/janitor.ts`` (``_.omit`` of the expired field path), which have no tests of
their own in Botpress. Where botmemory differs on purpose (docs/memory.md, Retention),
the test asserts botmemory's documented behaviour and says why.
"""

from __future__ import annotations

from datetime import timedelta

from botmemory import ManualClock, Memory
from tests.conftest import DAY, OpenMemory

POLICIES = {"mood": "1d", "email": "60d", "profile.phone": "7d", "tags": "2d"}


async def open_with_policies(open_memory: OpenMemory) -> Memory:
    return await open_memory({"dataRetention": {"policies": POLICIES}})


async def user_memory(mem: Memory) -> dict[str, object]:
    view = await mem.peek("b", "u1")
    return {name: variable.value for name, variable in view.scopes["user"].items()}


async def expiry_is_at(
    mem: Memory, clock: ManualClock, after: timedelta, before: object, at: object
) -> None:
    """User memory shows ``before`` 1 ms before ``after`` from now, and ``at`` then."""
    clock.advance(after - timedelta(milliseconds=1))
    assert await user_memory(mem) == before
    clock.advance(timedelta(milliseconds=1))
    assert await user_memory(mem) == at


async def test_a_changed_field_expires_its_policy_later(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    # updateExpirationForChangedFields: expiry = now + ms(policy) for a changed field.
    mem = await open_with_policies(open_memory)
    async with mem.turn("b", "u1") as state:
        state.user["mood"] = "happy"
        state.user["name"] = "Bob"
    clock.advance(timedelta(seconds=DAY - 0.001))
    assert await user_memory(mem) == {"mood": "happy", "name": "Bob"}
    clock.advance(timedelta(seconds=0.001))
    # Botpress keeps the field until its janitor runs (every 15m by default); botmemory
    # hides it at once (docs/memory.md, Retention: "invisible at once").
    assert await user_memory(mem) == {"name": "Bob"}
    report = await mem.janitor.run_once()
    assert report.user_variables == 1


async def test_changing_a_field_again_pushes_its_expiry_back(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_with_policies(open_memory)
    async with mem.turn("b", "u1") as state:
        state.user["mood"] = "happy"
    clock.advance(timedelta(hours=20))
    async with mem.turn("b", "u1") as state:
        state.user["mood"] = "sad"
    clock.advance(timedelta(hours=20))
    assert await user_memory(mem) == {"mood": "sad"}
    # expires a day after the change
    await expiry_is_at(mem, clock, timedelta(hours=4), {"mood": "sad"}, {})


async def test_writing_the_same_value_again_does_not_push_it_back(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    # deep-diff finds no difference, so no new expiry.
    mem = await open_with_policies(open_memory)
    async with mem.turn("b", "u1") as state:
        state.user["mood"] = "happy"
    clock.advance(timedelta(hours=20))
    async with mem.turn("b", "u1") as state:
        state.user["mood"] = "happy"
    # expires a day after the first write
    await expiry_is_at(mem, clock, timedelta(hours=4), {"mood": "happy"}, {})


async def test_a_dotted_policy_expires_only_that_field(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    # getPaths gives 'profile.phone'; the janitor's _.omit(attributes, 'profile.phone')
    # removes that field and keeps the rest of the object.
    mem = await open_with_policies(open_memory)
    async with mem.turn("b", "u1") as state:
        state.user["profile"] = {"phone": "555", "city": "Paris"}
    clock.advance(timedelta(days=6))
    async with mem.turn("b", "u1") as state:
        profile = state.user["profile"]
        assert isinstance(profile, dict)
        profile["city"] = "Lyon"  # another field: the phone's expiry stays
    await expiry_is_at(
        mem,
        clock,
        timedelta(days=1),
        {"profile": {"phone": "555", "city": "Lyon"}},
        {"profile": {"city": "Lyon"}},
    )
    await mem.janitor.run_once()
    assert await user_memory(mem) == {"profile": {"city": "Lyon"}}


async def test_a_list_is_one_value(open_memory: OpenMemory, clock: ManualClock) -> None:
    # getPaths stops at arrays: changing an item changes the list's path.
    mem = await open_with_policies(open_memory)
    async with mem.turn("b", "u1") as state:
        state.user["tags"] = ["a", "b"]
    clock.advance(timedelta(days=1))
    async with mem.turn("b", "u1") as state:
        tags = state.user["tags"]
        assert isinstance(tags, list)
        tags[1] = "c"
    await expiry_is_at(mem, clock, timedelta(days=2), {"tags": ["a", "c"]}, {})


async def test_variables_without_a_policy_and_other_memories_never_expire(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    # Policies apply to user attributes only.
    mem = await open_with_policies(open_memory)
    async with mem.turn("b", "u1") as state:
        state.user["name"] = "Bob"
        state.bot["mood"] = "calm"
    clock.advance(timedelta(days=400))
    await mem.janitor.run_once()
    view = await mem.peek("b", "u1")
    assert view.scopes["user"]["name"].value == "Bob"
    assert view.scopes["bot"]["mood"].value == "calm"


async def test_policies_are_per_user_and_channel(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    # The data_retention table is keyed by (channel, user_id, field_path).
    mem = await open_with_policies(open_memory)
    async with mem.turn("b", "u1") as state:
        state.user["mood"] = "happy"
    clock.advance(timedelta(hours=12))
    async with mem.turn("b", "u1", channel="web") as state:
        state.user["mood"] = "sad"
    async with mem.turn("b", "u2") as state:
        state.user["mood"] = "calm"
    await expiry_is_at(mem, clock, timedelta(hours=12), {"mood": "happy"}, {})
    assert (await mem.peek("b", "u1", "web")).scopes["user"]["mood"].value == "sad"
    assert (await mem.peek("b", "u2")).scopes["user"]["mood"].value == "calm"
