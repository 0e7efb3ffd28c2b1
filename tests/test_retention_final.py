"""An expiry that has passed is final, whatever the retention policies say afterwards.

A changed policy moves only the expiries still ahead; a value (or field) whose stored
expiry is at or before now stays invisible to turns, views and exports, and the janitor
deletes it, on every backend.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from botmemory import ManualClock, Memory
from botmemory.config import load_settings
from botmemory.durations import Seconds
from botmemory.retention import RetentionPolicies, StoredExpiry
from botmemory.storage.base import StoredVar, VarKey, VarUpdate
from botmemory.values import JsonValue
from tests.conftest import DAY, START, OpenMemory

BEFORE = {"mood": "1d", "profile.phone": "1d"}
CHANGES: dict[str, dict[str, str]] = {
    "lengthened": {"mood": "7d", "profile.phone": "7d"},
    "removed": {},
}
STORED = {"mood": "sad", "profile": {"phone": "555-0100", "city": "Paris"}}
EXPIRED = {"profile": {"city": "Paris"}}
MS = timedelta(milliseconds=1)


def config(policies: dict[str, str]) -> dict[str, Any]:
    return {"dataRetention": {"policies": policies}}


async def user(mem: Memory) -> dict[str, object]:
    async with mem.turn("b", "u1") as state:
        return dict(state.user)


async def change_policies(
    mem: Memory, open_memory: OpenMemory, how: str, policies: dict[str, str]
) -> Memory:
    """Apply ``policies`` by a reload (``serve --reload``) or a restart."""
    if how == "reload":
        await mem.apply_settings(load_settings(config(policies)))
        return mem
    await mem.close()
    return await open_memory(config(policies))


async def stored(open_memory: OpenMemory) -> Memory:
    mem = await open_memory(config(BEFORE))
    async with mem.turn("b", "u1") as state:
        state.user.update(STORED)  # type: ignore[arg-type]
    return mem


@pytest.fixture(params=["reload", "restart"])
def how(request: pytest.FixtureRequest, backend: str) -> str:
    if request.param == "restart" and backend == "memory":
        pytest.skip("memory:// keeps nothing once closed")
    return str(request.param)


@pytest.mark.parametrize("change", CHANGES)
async def test_a_policy_changed_once_expired_does_not_bring_the_value_back(
    open_memory: OpenMemory, clock: ManualClock, how: str, change: str
) -> None:
    mem = await stored(open_memory)
    clock.advance(timedelta(seconds=DAY))  # mood and profile.phone expire now
    mem = await change_policies(mem, open_memory, how, CHANGES[change])
    assert await user(mem) == EXPIRED
    view = await mem.peek("b", "u1")
    assert {n: v.value for n, v in view.scopes["user"].items()} == EXPIRED
    export = await mem.export_user("b", "u1")
    assert {n: v.value for n, v in export.user.items()} == EXPIRED
    other = next(name for name in CHANGES if name != change)
    mem = await change_policies(mem, open_memory, how, CHANGES[other])  # again, before the janitor
    assert await user(mem) == EXPIRED
    report = await mem.janitor.run_once()
    assert (report.user_variables, report.user_fields) == (1, 1)
    clock.advance(timedelta(seconds=3 * DAY))
    assert await user(mem) == EXPIRED


@pytest.mark.parametrize("change", CHANGES)
async def test_a_policy_changed_just_before_the_expiry_moves_it(
    open_memory: OpenMemory, clock: ManualClock, how: str, change: str
) -> None:
    mem = await stored(open_memory)
    clock.advance(timedelta(seconds=DAY) - MS)
    mem = await change_policies(mem, open_memory, how, CHANGES[change])
    clock.advance(MS)  # the old expiry: no longer due
    assert await user(mem) == STORED
    expiry = (await mem.peek("b", "u1")).scopes["user"]["mood"].expires_at
    assert expiry == (START + 7 * DAY if change == "lengthened" else None)
    report = await mem.janitor.run_once()
    assert (report.user_variables, report.user_fields) == (0, 0)
    assert await user(mem) == STORED


@pytest.mark.parametrize("change", CHANGES)
async def test_a_process_with_longer_policies_does_not_show_what_expired(
    backend: str, open_memory: OpenMemory, clock: ManualClock, change: str
) -> None:
    """Two processes sharing a database with different policies (a rolling deploy): what
    one stored with an expiry stays expired for the other, before any janitor run."""
    if backend == "memory":
        pytest.skip("memory:// is one process's")
    other = await open_memory(config(CHANGES[change]))
    mem = await stored(open_memory)  # its start-up recomputes nothing: nothing stored yet
    clock.advance(timedelta(seconds=DAY) - MS)
    assert await user(other) == STORED
    clock.advance(MS)
    assert await user(other) == EXPIRED
    view = await other.peek("b", "u1")
    assert {n: v.value for n, v in view.scopes["user"].items()} == EXPIRED
    export = await other.export_user("b", "u1")
    assert {n: v.value for n, v in export.user.items()} == EXPIRED
    report = await other.janitor.run_once()
    assert (report.user_variables, report.user_fields) == (1, 1)
    assert await user(mem) == await user(other) == EXPIRED


def profile_row(field_times: str | None, expires_at: float) -> StoredVar:
    """``profile`` stored at START with a phone and a city."""
    value = '{"city":"Paris","phone":"555"}'
    return StoredVar(VarKey("user", "b", "u1", "profile"), value, START, expires_at, field_times)


def phone_times(due: float) -> str:
    """The stored form of a phone changed at START that expires at ``due``."""
    return json.dumps({"due": None, "fields": {"phone": [START, due]}}, sort_keys=True)


@pytest.mark.parametrize("offset", [-0.001, 0.0])
def test_a_write_keeps_the_passed_expiry_of_a_field_it_did_not_change(offset: float) -> None:
    """Under a policy changed since (7 days), the stored 1-day expiry of the phone holds."""
    policies = RetentionPolicies({"profile.phone": Seconds(7 * DAY)})
    old = StoredExpiry.of(profile_row(phone_times(START + DAY), START + DAY))
    now = START + DAY + offset
    new: JsonValue = {"city": "Lyon", "phone": "555"}
    kept = policies.evaluate("profile", new, now, {"phone": START}, now, old)
    assert kept.value == (new if offset < 0 else {"city": "Lyon"})
    again = policies.evaluate("profile", new, now, {"phone": now}, now, old)
    assert again.value == new  # the phone set anew: its old expiry is not its own


@pytest.mark.parametrize("offset", [-0.001, 0.0])
def test_rows_stored_before_expiries_were_kept_follow_the_policies_in_force(
    offset: float,
) -> None:
    """Field times stored as ``{path: last change}`` carry no expiry: as before, the
    policies in force decide, until the start-up after the upgrade rewrites them."""
    row = profile_row(f'{{"phone": {START!r}}}', START + DAY)
    now = START + DAY + offset
    same = RetentionPolicies({"profile.phone": Seconds(DAY)}).evaluate_row(row, now)
    assert same.value == ({"city": "Paris", "phone": "555"} if offset < 0 else {"city": "Paris"})
    longer = RetentionPolicies({"profile.phone": Seconds(7 * DAY)}).evaluate_row(row, now)
    assert longer.value == {"city": "Paris", "phone": "555"}
    assert longer.stored_times() == phone_times(START + 7 * DAY)


async def test_a_field_an_earlier_version_put_off_for_the_janitor_goes_alone(
    backend: str, open_memory: OpenMemory, clock: ManualClock
) -> None:
    """An earlier version put off an expired field for the janitor by setting the row's
    ``expires_at`` to now, without field times; the first start of this one must read it
    as that field's expiry, not the variable's."""
    if backend == "memory":
        pytest.skip("memory:// keeps nothing once closed")
    mem = await open_memory(config({}))
    async with mem.turn("b", "u1") as state:
        state.user["profile"] = {"email": "a@example.com", "name": "Ann"}
    (row,) = await mem.storage.scan_user_vars("b", None, 10)
    clock.advance(timedelta(hours=2))
    put_off = VarUpdate(row.key, row.changed_at, row.value, clock(), None)  # as it wrote it
    assert await mem.storage.update_user_vars([put_off]) == [put_off]
    await mem.storage.set_meta("retention-policies", json.dumps({"*": "[]"}))  # its form
    await mem.close()
    upgraded = await open_memory(config({"profile.email": "1h"}))
    assert await user(upgraded) == {"profile": {"name": "Ann"}}
    report = await upgraded.janitor.run_once()
    assert (report.user_variables, report.user_fields) == (0, 1)
    assert await user(upgraded) == {"profile": {"name": "Ann"}}
