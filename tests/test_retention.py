"""Data retention policies on user memory, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from botmemory import ManualClock, Memory
from botmemory.config import load_settings
from tests.conftest import DAY, START, OpenMemory

SEED_POLICIES = {"email": "60d", "mood": "1d", "someChoice": "5m"}


@pytest.fixture
async def retained(open_memory: OpenMemory) -> Memory:
    return await open_memory({"dataRetention": {"policies": SEED_POLICIES}})


async def user(mem: Memory) -> dict[str, object]:
    async with mem.turn("b", "u1") as state:
        return dict(state.user)


async def set_user(mem: Memory, **values: object) -> None:
    async with mem.turn("b", "u1") as state:
        state.user.update(values)  # type: ignore[arg-type]


async def test_variables_expire_after_their_policy(retained: Memory, clock: ManualClock) -> None:
    await set_user(retained, name="Ada", email="ada@example.com", mood="happy", someChoice="a")
    clock.advance(timedelta(seconds=5 * 60))
    assert await user(retained) == {"name": "Ada", "email": "ada@example.com", "mood": "happy"}
    clock.advance(timedelta(seconds=DAY))
    assert await user(retained) == {"name": "Ada", "email": "ada@example.com"}
    clock.advance(timedelta(seconds=60 * DAY))
    assert await user(retained) == {"name": "Ada"}


async def test_expiry_is_reset_when_the_value_changes(retained: Memory, clock: ManualClock) -> None:
    await set_user(retained, mood="happy")
    clock.advance(timedelta(seconds=DAY - 60))
    await set_user(retained, mood="sad")
    clock.advance(timedelta(seconds=DAY - 60))
    assert await user(retained) == {"mood": "sad"}
    clock.advance(timedelta(seconds=60))
    assert await user(retained) == {}


async def test_setting_the_same_value_again_does_not_extend_it(
    retained: Memory, clock: ManualClock
) -> None:
    await set_user(retained, mood="happy")
    clock.advance(timedelta(seconds=DAY - 60))
    await set_user(retained, mood="happy")
    clock.advance(timedelta(seconds=60))
    assert await user(retained) == {}


async def test_expiry_is_visible_to_the_turn(retained: Memory, clock: ManualClock) -> None:
    await set_user(retained, mood="happy", name="Ada")
    async with retained.turn("b", "u1") as state:
        assert state.user.expiry("mood") == clock.now + DAY
        assert state.user.expiry("name") is None


async def test_expired_data_is_invisible_before_the_janitor_runs(
    retained: Memory, clock: ManualClock
) -> None:
    await set_user(retained, mood="happy")
    clock.advance(timedelta(seconds=DAY))
    assert await user(retained) == {}
    report = await retained.janitor.run_once()
    assert report.user_variables == 1


async def test_a_variable_expiring_mid_turn_is_not_written_back(
    retained: Memory, clock: ManualClock
) -> None:
    await set_user(retained, mood="happy", email="a@b.c")
    clock.advance(timedelta(seconds=DAY - 1))
    async with retained.turn("b", "u1") as state:
        assert state.user["mood"] == "happy"
        state.user["name"] = "Ada"
        clock.advance(timedelta(seconds=2))
    assert await user(retained) == {"email": "a@b.c", "name": "Ada"}


async def test_a_variable_set_by_the_turn_is_kept_even_if_the_old_one_expired(
    retained: Memory, clock: ManualClock
) -> None:
    await set_user(retained, mood="happy")
    clock.advance(timedelta(seconds=DAY - 1))
    async with retained.turn("b", "u1") as state:
        state.user["mood"] = "sad"
        clock.advance(timedelta(seconds=2))
    assert await user(retained) == {"mood": "sad"}


async def test_glob_policies(open_memory: OpenMemory, clock: ManualClock) -> None:
    mem = await open_memory(
        {"dataRetention": {"policies": {"tmp_*": "1h", "tmp_keep*": "never", "tmp_x": "1d"}}}
    )
    await set_user(mem, tmp_a=1, tmp_keep_me=2, tmp_x=3, other=4)
    clock.advance(timedelta(seconds=3600))
    assert await user(mem) == {"tmp_keep_me": 2, "tmp_x": 3, "other": 4}
    clock.advance(timedelta(seconds=DAY))
    assert await user(mem) == {"tmp_keep_me": 2, "other": 4}


async def test_glob_characters_in_names_are_not_wildcards_elsewhere(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory({"dataRetention": {"policies": {"a_b": "1h"}}})
    await set_user(mem, a_b=1, axb=2)
    clock.advance(timedelta(seconds=3600))
    assert await user(mem) == {"axb": 2}


async def test_dotted_policy_removes_only_that_field(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory({"dataRetention": {"policies": {"profile.email": "1d"}}})
    await set_user(mem, profile={"name": "Ada", "email": "ada@example.com"})
    clock.advance(timedelta(seconds=DAY))
    assert await user(mem) == {"profile": {"name": "Ada"}}
    report = await mem.janitor.run_once()
    assert report.user_fields == 1
    assert report.user_variables == 0
    assert await user(mem) == {"profile": {"name": "Ada"}}


async def test_a_glob_with_a_field_removes_that_field_of_each_match(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    policies = {"prof*.phone": "1d", "profile.phone": "3d", "prof*.email": "2d"}
    mem = await open_memory({"dataRetention": {"policies": policies}})
    card = {"phone": "123", "email": "a@x", "name": "Ada"}
    await set_user(mem, profile=card, professor=card, other=card)
    clock.advance(timedelta(seconds=DAY - 0.001))
    assert await user(mem) == {"profile": card, "professor": card, "other": card}
    clock.advance(timedelta(seconds=0.001))  # the glob's phone: 1 day
    without_phone = {"email": "a@x", "name": "Ada"}
    assert await user(mem) == {"profile": card, "professor": without_phone, "other": card}
    assert (await mem.janitor.run_once()).user_fields == 1
    assert await user(mem) == {"profile": card, "professor": without_phone, "other": card}
    clock.advance(timedelta(seconds=DAY))  # the glob's email: 2 days, for both matches
    assert await user(mem) == {
        "profile": {"phone": "123", "name": "Ada"},
        "professor": {"name": "Ada"},
        "other": card,
    }
    clock.advance(timedelta(seconds=DAY))  # the exact name's phone: 3 days
    assert (await mem.janitor.run_once()).user_fields == 2  # variables rewritten
    assert await user(mem) == {
        "profile": {"name": "Ada"},
        "professor": {"name": "Ada"},
        "other": card,
    }


@pytest.mark.parametrize(
    ("config", "bots"),
    [
        ({"prof*.phone": "1d", "profile.phone": "never"}, {}),
        ({"prof*.phone": "1d"}, {"profile.phone": "never"}),  # a bot switches a global off
        ({"pro*.phone": "1d", "profile*.phone": "never"}, {}),  # the longest glob wins
    ],
)
async def test_never_on_a_field_wins_as_a_duration_would(
    open_memory: OpenMemory, clock: ManualClock, config: dict[str, str], bots: dict[str, str]
) -> None:
    mem = await open_memory(
        {"dataRetention": {"policies": config}}, {"b": {"dataRetention": {"policies": bots}}}
    )
    card = {"phone": "123", "name": "Ada"}
    await set_user(mem, profile=card, profession=card)
    clock.advance(timedelta(seconds=2 * DAY))
    kept = {"profile": card, "profession": {"name": "Ada"}}  # the 1d glob's only
    assert await user(mem) == kept
    await mem.janitor.run_once()
    assert await user(mem) == kept


async def test_dotted_policy_counts_from_the_fields_own_last_change(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory({"dataRetention": {"policies": {"profile.email": "1d"}}})
    await set_user(mem, profile={"name": "Ada", "email": "a@x"})
    clock.advance(timedelta(seconds=DAY / 2))
    await set_user(mem, profile={"name": "Ada L.", "email": "a@x"})  # email unchanged
    clock.advance(timedelta(seconds=DAY / 2))
    assert await user(mem) == {"profile": {"name": "Ada L."}}
    await set_user(mem, profile={"name": "Ada", "email": "new@x"})
    clock.advance(timedelta(seconds=DAY / 2))
    async with mem.turn("b", "u1") as state:
        state.user["profile"]["email"] = "newer@x"  # type: ignore[index]
    clock.advance(timedelta(seconds=DAY * 0.75))
    assert await user(mem) == {"profile": {"name": "Ada", "email": "newer@x"}}


async def test_bot_policies_merge_over_global(open_memory: OpenMemory, clock: ManualClock) -> None:
    mem = await open_memory(
        {"dataRetention": {"policies": {"email": "60d", "mood": "1d"}}},
        {"b": {"dataRetention": {"policies": {"mood": "1h", "email": "never"}}}},
    )
    for bot in ("b", "other"):
        async with mem.turn(bot, "u1") as state:
            state.user.update({"mood": "ok", "email": "e"})
    clock.advance(timedelta(seconds=3600))
    async with mem.turn("b", "u1") as state:
        assert dict(state.user) == {"email": "e"}
    async with mem.turn("other", "u1") as state:
        assert dict(state.user) == {"mood": "ok", "email": "e"}
    clock.advance(timedelta(seconds=365 * DAY))
    async with mem.turn("b", "u1") as state:
        assert dict(state.user) == {"email": "e"}


async def test_policy_added_later_applies_to_stored_data(
    backend: str, open_memory: OpenMemory, clock: ManualClock
) -> None:
    if backend == "memory":
        pytest.skip("memory:// keeps nothing once closed")
    first = await open_memory()
    await set_user(first, mood="happy", name="Ada")
    await first.close()
    clock.advance(timedelta(seconds=DAY / 2))
    second = await open_memory({"dataRetention": {"policies": {"mood": "1d"}}})
    assert await user(second) == {"mood": "happy", "name": "Ada"}
    clock.advance(
        timedelta(seconds=DAY / 2)
    )  # counted from the value's last change, not from the new policy
    assert await user(second) == {"name": "Ada"}
    assert (await second.janitor.run_once()).user_variables == 1


async def test_policy_removed_later_stops_the_expiry(
    backend: str, open_memory: OpenMemory, clock: ManualClock
) -> None:
    if backend == "memory":
        pytest.skip("memory:// keeps nothing once closed")
    first = await open_memory({"dataRetention": {"policies": {"mood": "1d"}}})
    await set_user(first, mood="happy")
    await first.close()
    second = await open_memory()
    clock.advance(timedelta(seconds=10 * DAY))
    assert (await second.janitor.run_once()).user_variables == 0
    assert await user(second) == {"mood": "happy"}


async def test_policy_shortened_later_expires_old_data(
    backend: str, open_memory: OpenMemory, clock: ManualClock
) -> None:
    if backend == "memory":
        pytest.skip("memory:// keeps nothing once closed")
    first = await open_memory({"dataRetention": {"policies": {"email": "60d"}}})
    await set_user(first, email="e")
    await first.close()
    clock.advance(timedelta(seconds=2 * DAY))
    second = await open_memory({"dataRetention": {"policies": {"email": "1d"}}})
    assert await user(second) == {}
    assert (await second.janitor.run_once()).user_variables == 1


@pytest.mark.parametrize("scope", ["global", "bot"])
async def test_a_policy_changed_while_open_applies_at_once(
    open_memory: OpenMemory, clock: ManualClock, scope: str
) -> None:
    """A reloaded configuration (``serve --reload``) applies its policies to turns, views,
    writes and the janitor, and to what is already stored, as a restart would."""
    mem = await open_memory({"dataRetention": {"policies": {"mood": "1d"}}})
    await set_user(mem, mood="great", email="e")
    clock.advance(timedelta(seconds=30))
    policies = {"dataRetention": {"policies": {"mood": "1m"}}}
    config, bots = (policies, None) if scope == "global" else ({}, {"b": policies})
    await mem.apply_settings(load_settings(config, bots))
    clock.advance(timedelta(seconds=29.999))  # 1 minute after the change, less 1 ms
    assert await user(mem) == {"mood": "great", "email": "e"}
    assert (await mem.peek("b", "u1")).scopes["user"]["mood"].expires_at == START + 60
    clock.advance(timedelta(seconds=0.001))
    assert await user(mem) == {"email": "e"}
    assert (await mem.janitor.run_once()).user_variables == 1
    await set_user(mem, mood="fine")  # a new write counts with the new policy too
    assert (await mem.peek("b", "u1")).scopes["user"]["mood"].expires_at == START + 120


async def test_a_turn_running_while_the_policies_change_writes_under_the_new_ones(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    mem = await open_memory({"dataRetention": {"policies": {"mood": "1d"}}})
    async with mem.turn("b", "u1") as state:
        shorter = {"dataRetention": {"policies": {"mood": "1m"}}}
        await mem.apply_settings(load_settings(shorter))  # a reload while the body runs
        state.user["mood"] = "great"
    assert (await mem.peek("b", "u1")).scopes["user"]["mood"].expires_at == START + 60
    clock.advance(timedelta(seconds=60))
    assert (await mem.janitor.run_once()).user_variables == 1  # due under the new policy


async def test_retention_does_not_apply_to_other_scopes(
    retained: Memory, clock: ManualClock
) -> None:
    async with retained.turn("b", "u1") as state:
        state.bot["mood"] = "shared"
    clock.advance(timedelta(seconds=2 * DAY))
    async with retained.turn("b", "u1") as state:
        assert state.bot["mood"] == "shared"


async def test_a_bot_named_underscore_does_not_hide_a_global_policy_change(
    backend: str, open_memory: OpenMemory, clock: ManualClock
) -> None:
    if backend == "memory":
        pytest.skip("memory:// keeps nothing once closed")
    bots = {"_": {"dataRetention": {"policies": {"email": "never"}}}}
    first = await open_memory({"dataRetention": {"policies": {"email": "60d"}}}, bots)
    await set_user(first, email="ada@example.com")
    await first.close()
    second = await open_memory({"dataRetention": {"policies": {"email": "1d"}}}, bots)
    clock.advance(timedelta(seconds=2 * DAY))
    assert await user(second) == {}
    assert (await second.janitor.run_once()).user_variables == 1
