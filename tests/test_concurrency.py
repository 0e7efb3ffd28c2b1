"""Turns are serializable: what a turn read is checked at commit, on every backend.

Conflicts are made here inside one process by nesting turns of different sessions:
the outer turn loads, the inner one commits, then the outer one commits. Real
processes are in ``test_exactness.py``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from botmemory import (
    ConflictError,
    DuplicateMessageError,
    InvalidIdError,
    InvalidValueError,
    ManualClock,
    Memory,
)
from botmemory.ids import Identity
from botmemory.storage.base import TurnKeys
from botmemory.turns import MESSAGE_IDS, TurnState
from botmemory.values import loads
from tests.conftest import DAY, OpenMemory


async def test_reading_a_missing_variable_that_another_turn_creates_conflicts(mem: Memory) -> None:
    with pytest.raises(ConflictError):
        async with mem.turn("b", "u1") as slow:
            assert "flag" not in slow.bot
            async with mem.turn("b", "u2") as fast:
                fast.bot["flag"] = True
            slow.bot["seen_flag"] = False
    async with mem.turn("b", "u3") as state:
        assert state.bot.get("seen_flag") is None
        assert state.bot["flag"] is True


async def test_a_turn_that_iterated_a_scope_conflicts_with_a_new_variable(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        state.bot["a"] = 1
    with pytest.raises(ConflictError):
        async with mem.turn("b", "u1") as slow:
            total = sum(v for v in slow.bot.values() if isinstance(v, int))
            async with mem.turn("b", "u2") as fast:
                fast.bot["b"] = 2
            slow.bot["total"] = total
    async with mem.turn("b", "u1") as state:
        assert "total" not in state.bot


@pytest.mark.parametrize("change", ["add", "remove", "change a value read"])
async def test_a_turn_that_read_every_value_conflicts_with_any_change(
    mem: Memory, change: str
) -> None:
    async with mem.turn("b", "u1") as state:
        state.bot.update({"a": 1, "b": 2})
    with pytest.raises(ConflictError):
        async with mem.turn("b", "u1") as slow:
            snapshot = dict(slow.bot.items())
            async with mem.turn("b", "u2") as fast:
                if change == "add":
                    fast.bot["c"] = 3
                elif change == "remove":
                    del fast.bot["b"]
                else:
                    fast.bot["b"] = 20
            slow.bot["copy"] = snapshot
    async with mem.turn("b", "u1") as state:
        assert "copy" not in state.bot


async def test_counting_a_scope_checks_its_names_not_the_values_left_unread(
    mem: Memory,
) -> None:
    async with mem.turn("b", "u1") as state:
        state.bot.update({"a": 1, "b": 2})
    async with mem.turn("b", "u1") as slow:
        count = len(slow.bot)
        async with mem.turn("b", "u2") as fast:
            fast.bot["b"] = 20  # a value the slow turn never read
        slow.bot["count"] = count
    async with mem.turn("b", "u3") as state:
        assert (state.bot["b"], state.bot["count"]) == (20, 2)
    with pytest.raises(ConflictError):
        async with mem.turn("b", "u1") as slow:
            count = len(slow.bot)
            async with mem.turn("b", "u2") as fast:
                del fast.bot["a"]  # the count would be wrong
            slow.bot["count"] = count


async def test_counting_then_incrementing_stays_a_delta(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        state.bot.incr("visits")
    async with mem.turn("b", "u1") as slow:
        assert len(slow.bot) == 1
        slow.bot.incr("visits")
        async with mem.turn("b", "u2") as fast:
            fast.bot.incr("visits")
    with pytest.raises(ConflictError):  # but a new name changes what was counted
        async with mem.turn("b", "u1") as slow:
            assert len(slow.bot) == 1
            slow.bot.incr("visits")
            async with mem.turn("b", "u2") as fast:
                fast.bot.incr("other")
    async with mem.turn("b", "u3") as state:
        assert state.bot.to_dict() == {"visits": 3, "other": 1}


async def test_a_blind_write_beside_an_unrelated_change_commits(mem: Memory) -> None:
    async with mem.turn("b", "u1") as slow:
        async with mem.turn("b", "u2") as fast:
            fast.bot["x"] = 1
        slow.bot["y"] = 2
    async with mem.turn("b", "u3") as state:
        assert dict(state.bot) == {"x": 1, "y": 2}


async def test_user_memory_read_from_two_sessions_conflicts(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        state.user["n"] = 1
    with pytest.raises(ConflictError):
        async with mem.turn("b", "u1", thread_id="a") as slow:
            n = slow.user["n"]
            async with mem.turn("b", "u1", thread_id="b") as fast:
                fast.user["n"] = fast.user["n"] + 1
            slow.user["n"] = n + 1
    async with mem.turn("b", "u1") as state:
        assert state.user["n"] == 2


# -- incr: deltas that never conflict -------------------------------------------------------
async def test_concurrent_increments_never_conflict_and_all_count(mem: Memory) -> None:
    async with mem.turn("b", "u1") as slow:
        slow.bot.incr("visits")
        async with mem.turn("b", "u2") as fast:
            fast.bot.incr("visits", 5)
    async with mem.turn("b", "u3") as slow:
        slow.bot.incr("visits")
        async with mem.turn("b", "u4") as fast:
            fast.bot.incr("visits", 2.5)
    async with mem.turn("b", "u1") as state:
        assert state.bot["visits"] == 9.5


async def test_reading_a_counter_after_incr_is_a_read_like_any_other(mem: Memory) -> None:
    with pytest.raises(ConflictError):
        async with mem.turn("b", "u1") as slow:
            slow.bot.incr("visits")
            assert slow.bot["visits"] == 1  # what was loaded (nothing) plus one
            async with mem.turn("b", "u2") as fast:
                fast.bot.incr("visits", 5)
    async with mem.turn("b", "u1") as state:
        assert state.bot["visits"] == 5


async def test_incr_refuses_what_is_not_a_number(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        state.bot["name"] = "Ada"
    async with mem.turn("b", "u1") as state:
        with pytest.raises(InvalidValueError):
            state.bot.incr("name")
        with pytest.raises(InvalidValueError):
            state.bot.incr("n", True)  # type: ignore[arg-type]


async def test_incr_of_a_user_variable_restarts_its_retention(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory({"dataRetention": {"policies": {"score": "1d"}}})
    async with mem.turn("b", "u1") as state:
        state.user.incr("score")
    clock.advance(timedelta(seconds=DAY / 2))
    async with mem.turn("b", "u1") as state:
        state.user.incr("score")
    clock.advance(timedelta(seconds=DAY - 0.001))  # just before a day after the last change
    async with mem.turn("b", "u1") as state:
        assert state.user["score"] == 2
    clock.advance(timedelta(seconds=0.001))
    async with mem.turn("b", "u1") as state:
        assert "score" not in state.user  # a day after the last change: gone
        state.user.incr("score")
    async with mem.turn("b", "u1") as state:
        assert state.user["score"] == 1  # an expired count starts again from 0


@pytest.mark.parametrize("how", ["set", "incr"])
async def test_listing_a_user_memory_sees_an_expired_variable_come_back(
    open_memory: OpenMemory, clock: ManualClock, how: str
) -> None:
    mem = await open_memory({"dataRetention": {"policies": {"mood": "1h"}}})
    async with mem.turn("b", "u1") as state:
        state.user.update(name="Ada", mood=1)
    clock.advance("2h")  # mood is expired: stored until the janitor runs, never shown
    with pytest.raises(ConflictError):
        async with mem.turn("b", "u1", thread_id="a") as slow:
            names = sorted(slow.user)  # ["name"]: mood is absent to this turn
            async with mem.turn("b", "u1", thread_id="b") as fast:
                if how == "set":
                    fast.user["mood"] = 2
                else:
                    fast.user.incr("mood")
            slow.bot["names"] = names  # would be wrong: mood is there again
    async with mem.turn("b", "u1") as state:
        assert "names" not in state.bot
        assert sorted(state.user) == ["mood", "name"]


async def test_showing_a_scope_reads_all_it_shows(mem: Memory) -> None:
    async with mem.turn("b", "u1") as state:
        state.bot["price"] = 1
    with pytest.raises(ConflictError):
        async with mem.turn("b", "u1") as slow:
            quote = repr(slow.bot)
            async with mem.turn("b", "u2") as fast:
                fast.bot["price"] = 2
            slow.user["quote"] = quote


# -- run_turn: running again on a conflict ----------------------------------------------------
async def test_run_turn_runs_the_body_again_from_a_fresh_load(mem: Memory) -> None:
    async with mem.turn("b", "u0") as state:
        state.bot["n"] = 0
    runs: list[int] = []

    async def body(state: TurnState) -> int:
        n = state.bot["n"]
        assert isinstance(n, int)
        runs.append(n)
        if len(runs) == 1:  # another turn commits while this one runs
            async with mem.turn("b", "u2") as other:
                other.bot["n"] = 10
        state.bot["n"] = n + 1
        await state.kvs.set(f"attempt/{len(runs)}", n)
        return n + 1

    assert await mem.run_turn(body, "b", "u1") == 11
    assert runs == [0, 10]
    assert mem.stats.retries == 1
    kvs = mem.kvs.for_bot("b")
    assert await kvs.keys("attempt/") == ["attempt/2"]  # the first attempt left nothing


async def test_run_turn_gives_up_after_max_attempts(open_memory: OpenMemory) -> None:
    mem = await open_memory({"concurrency": {"maxAttempts": 3}})
    runs = 0

    async def body(state: TurnState) -> None:
        nonlocal runs
        runs += 1
        state.bot.get("n")
        async with mem.turn("b", f"other{runs}") as other:
            other.bot["n"] = runs
        state.bot["seen"] = runs

    with pytest.raises(ConflictError):
        await mem.run_turn(body, "b", "u1")
    assert runs == 3
    async with mem.turn("b", "u9") as state:
        assert "seen" not in state.bot


# -- the key-value store inside a turn ---------------------------------------------------------
async def test_kvs_writes_of_a_turn_commit_with_it(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    async with mem.turn("b", "u1") as state:
        await state.kvs.set("k", 1)
        assert await state.kvs.get("k") == 1  # the turn sees its own write
        assert await kvs.get("k") is None  # nobody else does before the commit
        assert await state.kvs.incr("c", 2) == 2
        assert await state.kvs.keys() == ["c", "k"]
    assert await kvs.get("k") == 1
    assert await kvs.get("c") == 2


async def test_kvs_writes_of_a_failed_turn_are_discarded(mem: Memory) -> None:
    with pytest.raises(RuntimeError):
        async with mem.turn("b", "u1") as state:
            await state.kvs.set("k", 1)
            state.user["x"] = 1
            raise RuntimeError("boom")
    assert await mem.kvs.for_bot("b").get("k") is None


async def test_a_kvs_key_read_in_a_turn_and_changed_outside_conflicts(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("count", 1)
    with pytest.raises(ConflictError):
        async with mem.turn("b", "u1") as state:
            count = await state.kvs.get("count")
            await kvs.set("count", 5)
            assert isinstance(count, int)
            await state.kvs.set("count", count + 1)
    assert await kvs.get("count") == 5


async def test_a_kvs_prefix_listed_in_a_turn_conflicts_with_a_new_key(mem: Memory) -> None:
    kvs = mem.kvs.for_bot("b")
    with pytest.raises(ConflictError):
        async with mem.turn("b", "u1") as state:
            assert await state.kvs.keys("orders/") == []
            await kvs.set("orders/1", "tea")
            await state.kvs.set("summary", "no orders")
    assert await kvs.get("summary") is None


# -- message ids -------------------------------------------------------------------------------
async def test_a_message_id_runs_once_and_answers_the_same_replies(mem: Memory) -> None:
    message = {"type": "text", "text": "hi"}
    async with mem.turn("b", "u1", message=message, message_id="m1") as state:
        state.bot.incr("n")
        state.replies = ["hello", {"card": 1}]
    with pytest.raises(DuplicateMessageError) as caught:
        async with mem.turn("b", "u1", message=message, message_id="m1") as state:
            state.bot.incr("n")
    assert caught.value.replies == ["hello", {"card": 1}]
    async with mem.turn("b", "u1", message=message, message_id="m2") as state:
        assert state.bot["n"] == 1  # the repeated message did not run
        assert "\x01messageIds" not in state.session  # hidden from the bot
        assert len(state.session["lastMessages"]) == 2  # type: ignore[arg-type]
    view = await mem.peek("b", "u1")
    assert "\x01messageIds" not in view.scopes["session"]
    exported = await mem.export_user("b", "u1")
    assert "messageIds" not in str(exported.to_json())


async def test_a_session_remembers_its_last_message_ids(open_memory: OpenMemory) -> None:
    mem = await open_memory({"session": {"messageIds": 2}})
    for message_id in ("m1", "m2", "m3"):
        async with mem.turn("b", "u1", message_id=message_id) as state:
            state.bot.incr("n")
    for message_id in ("m2", "m3"):
        with pytest.raises(DuplicateMessageError):
            async with mem.turn("b", "u1", message_id=message_id):
                pass
    async with mem.turn("b", "u1", message_id="m1") as state:  # forgotten: runs again
        state.bot.incr("n")
    async with mem.turn("b", "u1") as state:
        assert state.bot["n"] == 4


async def test_remembered_message_ids_stay_within_the_value_limit(
    open_memory: OpenMemory,
) -> None:
    """Large replies: the oldest ids go first; replies that alone would not fit are not
    kept, but the id is, so the message still runs once."""
    mem = await open_memory({"limits": {"maxValueBytes": 4_096}, "session": {"messageIds": 20}})
    for n in range(10):
        async with mem.turn("b", "u1", message_id=f"m{n}") as state:
            state.replies = ["x" * 1_000]  # fits alone; ten of them do not
    stored = await stored_message_ids(mem)
    assert len(stored.encode()) <= 4_096
    assert [entry[0] for entry in loads(stored)] == ["m6", "m7", "m8", "m9"]  # type: ignore[index,union-attr]
    with pytest.raises(DuplicateMessageError) as caught:
        async with mem.turn("b", "u1", message_id="m9"):
            pass
    assert caught.value.replies == ["x" * 1_000]
    async with mem.turn("b", "u1", message_id="big") as state:
        state.bot.incr("n")
        state.replies = ["y" * 5_000]  # over the limit alone: the id is kept, not the replies
    with pytest.raises(DuplicateMessageError) as caught:
        async with mem.turn("b", "u1", message_id="big") as state:
            state.bot.incr("n")
    assert caught.value.replies == []
    async with mem.turn("b", "u1", message_id="after") as state:
        assert state.bot["n"] == 1


async def test_a_message_id_too_long_for_a_tiny_value_limit_is_still_remembered(
    open_memory: OpenMemory,
) -> None:
    mem = await open_memory({"limits": {"maxValueBytes": 200}})
    async with mem.turn("b", "u1", message_id="\x01" * 255) as state:  # 1.5 KB of JSON
        state.replies = ["hi"]
    with pytest.raises(DuplicateMessageError) as caught:
        async with mem.turn("b", "u1", message_id="\x01" * 255):
            pass
    assert caught.value.replies == []


async def stored_message_ids(mem: Memory) -> str:
    who = Identity.of("b", "u1")
    snapshot = await mem.storage.load_turn(TurnKeys("b", who.user_key, who.session_key))
    (row,) = [v for v in snapshot.session_vars if v.key.name == MESSAGE_IDS]
    return row.value


async def test_message_ids_go_with_their_session(mem: Memory, clock: ManualClock) -> None:
    async with mem.turn("b", "u1", message_id="m1"):
        pass
    clock.advance(timedelta(seconds=30 * 60))  # the session times out: a new one knows no ids
    async with mem.turn("b", "u1", message_id="m1") as state:
        assert state.is_new_session


async def test_a_message_id_must_be_a_short_string(mem: Memory) -> None:
    with pytest.raises(InvalidIdError):
        async with mem.turn("b", "u1", message_id="x" * 256):
            pass


async def test_a_kvs_key_read_live_that_expired_before_the_commit_conflicts(
    mem: Memory, clock: ManualClock
) -> None:
    kvs = mem.kvs.for_bot("b")
    await kvs.set("offer", "10%", expiry="1m")
    async with mem.turn("b", "u1") as state:
        assert await state.kvs.get("offer") == "10%"
        clock.advance(timedelta(seconds=59.999))  # still live at the commit
        state.bot["used_offer"] = 1
    with pytest.raises(ConflictError):
        async with mem.turn("b", "u1") as state:
            assert await state.kvs.get("offer") == "10%"
            clock.advance(timedelta(seconds=0.001))  # nothing else changes: only time passes
            state.bot["used_offer"] = 2
    async with mem.turn("b", "u1") as state:
        assert state.bot["used_offer"] == 1


async def test_an_increment_of_a_value_no_longer_a_number_writes_nothing(mem: Memory) -> None:
    with pytest.raises(ConflictError, match="no longer a number"):
        async with mem.turn("b", "u1") as outer:
            outer.bot.incr("visits")
            outer.user["name"] = "Ada"
            async with mem.turn("b", "u2") as inner:
                inner.bot["visits"] = "many"
    async with mem.turn("b", "u1") as state:
        assert "name" not in state.user
        assert state.bot["visits"] == "many"


async def test_an_increment_whose_sum_went_out_of_range_meanwhile_conflicts(mem: Memory) -> None:
    with pytest.raises(ConflictError, match="in range"):
        async with mem.turn("b", "u1") as outer:
            outer.bot.incr("n")
            async with mem.turn("b", "u2") as inner:
                inner.bot["n"] = 2**64 - 1
    async with mem.turn("b", "u1") as state:
        assert state.bot["n"] == 2**64 - 1
        with pytest.raises(InvalidValueError):
            state.bot.incr("n")  # the fresh load tells what is wrong
