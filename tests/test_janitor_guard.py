"""The janitor's change to a user variable never overwrites a turn that committed after
it read the variable, even a turn that wrote it at the same ``changed_at``.

Two commits at one clock reading are the common case with an injected or coarse clock:
``changed_at`` alone cannot tell them apart, the row's version can.
"""

from __future__ import annotations

from botmemory import ManualClock, Memory
from botmemory.durations import parse_duration
from botmemory.retention import RetentionPolicies
from tests.conftest import OpenMemory

POLICY = {"dataRetention": {"policies": {"profile.email": "10m"}}}
POLICIES = RetentionPolicies({"profile.email": parse_duration("10m")})
LATER = parse_duration("10m")


async def write_profile(mem: Memory, name: int) -> None:
    async with mem.turn("b", "u1") as state:
        state.user["profile"] = {"email": "a@example.com", "name": name}


async def test_a_turn_committed_between_the_janitors_read_and_write_is_kept(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory(POLICY)
    await write_profile(mem, 1)
    async with mem.turn("b", "u1") as state:  # a slow turn, begun at the same instant
        assert state.user["profile"]["name"] == 1
        state.user["profile"] = {"email": "b@example.com", "name": 2}
        # a janitor whose clock reads 10 minutes later (another machine's) reads
        (read,) = await mem.storage.expired_user_vars(clock() + LATER, 10)
        update = POLICIES.update_for(read, clock() + LATER)
        assert update is not None
    # the turn committed, at the changed_at of the row the janitor read
    assert await mem.storage.update_user_vars([update]) == []  # the janitor's write: refused
    (stored,) = await mem.storage.scan_user_vars("b", None, 10)
    assert stored.changed_at == read.changed_at
    assert '"name":2' in stored.value.replace(" ", "")
    fresh = POLICIES.update_for(stored, clock() + LATER)  # read anew, it applies
    assert fresh is not None
    assert await mem.storage.update_user_vars([fresh]) == [fresh]
    clock.advance("10m")
    async with mem.turn("b", "u1") as state:
        assert state.user["profile"] == {"name": 2}
