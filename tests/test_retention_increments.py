"""Increments of a user variable under a retention policy, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from botmemory import ManualClock, Memory
from tests.conftest import DAY, START, OpenMemory

MS = timedelta(milliseconds=1)


@pytest.fixture
async def scored(open_memory: OpenMemory) -> Memory:
    return await open_memory({"dataRetention": {"policies": {"points": "30d", "score": "1d"}}})


async def test_increments_of_a_policed_user_variable_never_conflict(
    scored: Memory, clock: ManualClock
) -> None:
    async with scored.turn("b", "u1") as state:
        state.user["points"] = 0
    clock.advance("1h")
    async with scored.turn("b", "u1", thread_id="t1") as slow:  # two sessions of one user
        slow.user.incr("points")
        async with scored.turn("b", "u1", thread_id="t2") as fast:
            fast.user.incr("points")
    view = await scored.peek("b", "u1")
    assert view.scopes["user"]["points"].value == 2
    assert view.scopes["user"]["points"].expires_at == START + 3600 + 30 * DAY


@pytest.mark.parametrize("increments", [[0], [0.0], [1, -1]])
async def test_adding_nothing_does_not_extend_retention(
    scored: Memory, clock: ManualClock, increments: list[float]
) -> None:
    async with scored.turn("b", "u1") as state:
        state.user["score"] = 5
    clock.advance("12h")
    async with scored.turn("b", "u1") as state:
        for by in increments:
            state.user.incr("score", by)
        assert state.user["score"] == 5
    exported = (await scored.export_user("b", "u1")).user["score"]
    assert (exported.changed_at, exported.expires_at) == (START, START + DAY)  # nothing written
    clock.advance(timedelta(hours=12) - MS)
    async with scored.turn("b", "u1") as state:
        assert state.user["score"] == 5
    clock.advance(MS)  # a day after the value last changed
    async with scored.turn("b", "u1") as state:
        assert "score" not in state.user


async def test_adding_nothing_to_an_absent_variable_stores_zero(
    scored: Memory, clock: ManualClock
) -> None:
    async with scored.turn("b", "u1") as state:
        state.user.incr("score", 0)
    clock.advance(timedelta(days=1) - MS)
    async with scored.turn("b", "u1") as state:
        assert state.user["score"] == 0
    clock.advance(MS)
    async with scored.turn("b", "u1") as state:
        assert "score" not in state.user
