"""Which glob policy applies when several match: never the order of the keys in a file.

The longest glob wins; at equal length the bot's own beats a global one, then the
shortest lifetime wins ("never" being the longest).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from botmemory import ManualClock, Memory
from botmemory.durations import Seconds
from botmemory.retention import RetentionPolicies
from tests.conftest import START, OpenMemory

HOUR = Seconds(3600.0)
DAY = Seconds(86400.0)
MS = timedelta(milliseconds=1)


def config(policies: dict[str, str]) -> dict[str, Any]:
    return {"dataRetention": {"policies": policies}}


def reordered(policies: dict[str, Any]) -> dict[str, Any]:
    return dict(reversed(policies.items()))


async def expiry(mem: Memory, name: str, value: object = 1) -> float | None:
    async with mem.turn("b", "u1") as state:
        state.user[name] = value  # type: ignore[assignment]
    return (await mem.peek("b", "u1")).scopes["user"][name].expires_at


@pytest.mark.parametrize("flip", [False, True])
async def test_the_bots_glob_beats_a_global_one_of_the_same_length(
    open_memory: OpenMemory, clock: ManualClock, flip: bool
) -> None:
    shared = {"*_id": "never", "x*": "1d"}
    mem = await open_memory(
        config(reordered(shared) if flip else shared),
        {"b": config({"tmp*": "1h"})},
    )
    assert await expiry(mem, "tmp_id") == START + HOUR
    clock.advance(timedelta(hours=1) - MS)
    async with mem.turn("b", "u1") as state:
        assert state.user["tmp_id"] == 1
    clock.advance(MS)
    async with mem.turn("b", "u1") as state:
        assert "tmp_id" not in state.user
    assert await expiry(mem, "user_id") is None  # the global glob still applies elsewhere


@pytest.mark.parametrize("flip", [False, True])
async def test_among_globs_of_one_length_the_shortest_lifetime_wins(
    open_memory: OpenMemory, clock: ManualClock, flip: bool
) -> None:
    policies = {"*_id": "never", "tmp*": "1d", "a*": "2h", "*b": "1h", "c*.f": "1h", "*d.f": "2h"}
    mem = await open_memory(config(reordered(policies) if flip else policies))
    assert await expiry(mem, "tmp_id") == START + DAY
    assert await expiry(mem, "ab") == START + HOUR
    assert await expiry(mem, "cd", {"f": 1, "g": 2}) == START + HOUR
    clock.advance(timedelta(hours=1) - MS)
    async with mem.turn("b", "u1") as state:
        assert (state.user["ab"], state.user["cd"]) == (1, {"f": 1, "g": 2})
    clock.advance(MS)
    async with mem.turn("b", "u1") as state:
        assert ("ab" in state.user, state.user["cd"]) == (False, {"g": 2})


def test_the_choice_and_the_fingerprint_ignore_the_order_of_the_keys() -> None:
    policies = {"*_id": None, "tmp*": HOUR, "a*.phone": DAY, "*a.phone": HOUR}
    first, second = RetentionPolicies(policies), RetentionPolicies(reordered(policies))
    assert first.fingerprint == second.fingerprint
    for name in ("tmp_id", "aa"):
        assert first.for_variable(name) == second.for_variable(name)
    assert second.for_variable("tmp_id").ttl == HOUR
    assert second.for_variable("aa").fields[0][2] == HOUR


def test_moving_a_policy_between_the_bot_and_the_global_file_changes_the_fingerprint() -> None:
    policies = {"*_id": None, "tmp*": HOUR}
    shared, own = RetentionPolicies(policies), RetentionPolicies(policies, {"*_id"})
    assert shared.for_variable("tmp_id").ttl == HOUR
    assert own.for_variable("tmp_id").ttl is None
    assert shared.fingerprint != own.fingerprint


async def test_rows_stored_under_one_order_keep_their_expiry_under_another(
    backend: str, open_memory: OpenMemory, clock: ManualClock
) -> None:
    if backend == "memory":
        pytest.skip("memory:// keeps nothing once closed")
    policies = {"*_id": "never", "tmp*": "1h"}
    first = await open_memory(config(policies))
    assert await expiry(first, "tmp_id") == START + HOUR
    await first.close()
    second = await open_memory(config(reordered(policies)))
    clock.advance(timedelta(hours=1) - MS)
    assert (await second.janitor.run_once()).user_variables == 0
    clock.advance(MS)
    assert (await second.janitor.run_once()).user_variables == 1
