"""Conversation sessions that expire after inactivity, on every backend.

Follows Rasa's session tests: ``tests/core/test_processor.py`` (``_has_session_expired``,
``_update_tracker_session`` with and without slots, ``fetch_tracker_with_initial_session``,
``handle_message`` with a session start, a restart starting a session) and
``tests/core/actions/test_actions.py`` (``ActionSessionStart`` with
``carry_over_slots_to_new_session``).

How Rasa's rules map here: ``session_config.session_expiration_time`` is
``dialog.sessionTimeoutInterval``; a new session is ``state.is_new_session``; the slots
that ``carry_over_slots_to_new_session`` keeps are user memory, which always outlives a
session, while session and temp memory never do. Where botmemory differs on purpose, the
test says so and asserts botmemory's documented behaviour.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from botmemory import ConfigError, ManualClock, Memory, SessionNotAliveError
from tests.conftest import OpenMemory

TIMEOUT = timedelta(minutes=30)
"""The default ``dialog.sessionTimeoutInterval``."""
MS = timedelta(milliseconds=1)


def text(t: str) -> dict[str, str]:
    return {"type": "text", "text": t}


async def start_session(mem: Memory, user: str = "u1") -> None:
    """A first turn that fills every memory a session start treats differently."""
    async with mem.turn("b", user, message=text("hello")) as state:
        assert state.is_new_session
        state.user["name"] = "Ada"
        state.session["topic"] = "billing"
        state.temp["step"] = 2


# -- _has_session_expired ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("silence", "session_timeout", "expired"),
    [
        pytest.param(timedelta(days=365), "60m", True, id="last-message-long-ago"),
        pytest.param(timedelta(0), "120m", False, id="last-message-just-now"),
        pytest.param(timedelta(minutes=59), "60m", False, id="within-the-timeout"),
        pytest.param(timedelta(minutes=61), "60m", True, id="past-the-timeout"),
    ],
)
async def test_a_session_expires_after_its_timeout_of_silence(
    open_memory: OpenMemory,
    clock: ManualClock,
    silence: timedelta,
    session_timeout: str,
    expired: bool,
) -> None:
    mem = await open_memory({"dialog": {"sessionTimeoutInterval": session_timeout}})
    await start_session(mem)
    clock.advance(silence)
    async with mem.turn("b", "u1", message=text("again")) as state:
        assert state.is_new_session is expired
        assert ("topic" in state.session) is not expired
        assert state.user["name"] == "Ada"


async def test_a_conversation_without_any_turn_starts_a_session(mem: Memory) -> None:
    # Rasa: an empty tracker "has not expired", and fetching it runs the session start.
    view = await mem.peek("b", "u1")
    assert not view.session.alive
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session
    async with mem.turn("b", "u1") as state:
        assert not state.is_new_session


@pytest.mark.parametrize("session_timeout", ["0m", "0s", "never"])
async def test_sessions_cannot_be_switched_off_with_a_zero_timeout(
    open_memory: OpenMemory, session_timeout: str
) -> None:
    # Rasa reads session_expiration_time 0 as "sessions never expire". botmemory refuses
    # a zero or "never" session timeout on purpose (configuration.md): a session always
    # ends; what must outlive it belongs in user memory.
    with pytest.raises(ConfigError, match="sessionTimeoutInterval"):
        await open_memory({"dialog": {"sessionTimeoutInterval": session_timeout}})


async def test_the_session_timeout_boundary_to_the_millisecond(
    mem: Memory, clock: ManualClock
) -> None:
    # Rasa expires a session when the silence is *greater* than the timeout, so at
    # exactly the timeout it is still alive. botmemory's expiry times are exclusive
    # everywhere (a session, a variable, a KVS key is gone at its expiry instant): at
    # exactly the timeout the session is over.
    await start_session(mem)
    clock.advance(TIMEOUT - MS)
    assert (await mem.peek("b", "u1")).session.alive
    async with mem.turn("b", "u1") as state:
        assert not state.is_new_session
        assert state.session["topic"] == "billing"
    clock.advance(TIMEOUT)  # exactly the timeout since the last turn
    assert not (await mem.peek("b", "u1")).session.alive
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session
        assert "topic" not in state.session
        state.session["topic"] = "refund"
    clock.advance(TIMEOUT + MS)
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session
        assert "topic" not in state.session


async def test_the_timeout_counts_from_the_last_turn(mem: Memory, clock: ManualClock) -> None:
    await start_session(mem)
    for _ in range(5):  # 5 x 29 min: far longer than one timeout, never silent that long
        clock.advance(TIMEOUT - timedelta(minutes=1))
        async with mem.turn("b", "u1", message=text("still here")) as state:
            assert not state.is_new_session
            assert state.session["topic"] == "billing"


async def test_looking_at_or_editing_a_session_does_not_keep_it_alive(
    mem: Memory, clock: ManualClock
) -> None:
    # Rasa: only a user message counts for the expiry; fetching the tracker
    # (fetch_tracker_with_initial_session) does not update the session.
    await start_session(mem)
    clock.advance(TIMEOUT - MS)
    view = await mem.peek("b", "u1")
    assert view.session.alive
    assert view.session.expires_at == pytest.approx(clock() + MS.total_seconds())
    async with mem.edit("b", "u1") as state:
        state.session["note"] = "set by an administrator"
    clock.advance(MS)
    view = await mem.peek("b", "u1")
    assert not view.session.alive
    assert view.scopes["session"] == {}
    assert view.scopes["user"]["name"].value == "Ada"


async def test_fetching_an_expired_session_leaves_it_as_it_was(
    mem: Memory, clock: ManualClock
) -> None:
    # Rasa's fetch_tracker_with_initial_session_does_not_update_session.
    await start_session(mem)
    clock.advance(TIMEOUT + MS)
    first = await mem.peek("b", "u1")
    again = await mem.peek("b", "u1")
    assert not first.session.alive
    assert first.scopes == again.scopes
    assert first.scopes["session"] == {}
    assert first.scopes["temp"] == {}


# -- ActionSessionStart and carry_over_slots_to_new_session -------------------------------------
async def test_a_new_session_carries_user_memory_over_and_nothing_else(
    mem: Memory, clock: ManualClock
) -> None:
    # Rasa's update_tracker_session_with_slots and ActionSessionStart with
    # carry_over_slots=True: the slots come back after SessionStarted. Here the user
    # scope plays that part (always carried over); session and temp memory start empty,
    # as carry_over_slots=False would have them.
    await start_session(mem)
    async with mem.turn("b", "u1") as state:
        for i in range(5):
            state.user[f"slot key {i}"] = f"test value {i}"
            state.session[f"session key {i}"] = i
    clock.advance(TIMEOUT + MS)
    async with mem.turn("b", "u1", message=text("back again")) as state:
        assert state.is_new_session
        assert dict(state.user) == {
            "name": "Ada",
            **{f"slot key {i}": f"test value {i}" for i in range(5)},
        }
        assert set(state.session) == {"lastMessages"}
        assert dict(state.temp) == {}
        assert [m["text"] for m in state.session["lastMessages"]] == ["back again"]  # type: ignore[index,union-attr]


async def test_a_message_after_the_timeout_runs_in_the_new_session(
    mem: Memory, clock: ManualClock
) -> None:
    # Rasa's handle_message_with_session_start: the message that finds the session
    # expired is the first message of the new one, and what it sets stays in it.
    async with mem.turn("b", "u1", message=text("/greet Core")) as state:
        state.user["name"] = "Core"
        state.session["greeted"] = "Core"
    clock.advance(TIMEOUT + MS)
    async with mem.turn("b", "u1", message=text("/greet post-session")) as state:
        assert state.is_new_session
        assert state.user["name"] == "Core"  # the carried-over slot
        assert "greeted" not in state.session
        state.user["name"] = "post-session start hello"
        state.session["greeted"] = "post-session start hello"
    async with mem.turn("b", "u1") as state:
        assert not state.is_new_session
        assert state.user["name"] == "post-session start hello"
        assert state.session["greeted"] == "post-session start hello"
        messages = state.session["lastMessages"]
        assert isinstance(messages, list)
        assert [m["text"] for m in messages] == ["/greet post-session"]  # type: ignore[index,call-overload]


async def test_ending_a_session_starts_a_new_one_and_keeps_user_memory(
    mem: Memory, clock: ManualClock
) -> None:
    # Rasa's restart_triggers_session_start. A Rasa restart also drops every slot;
    # botmemory's end of a session keeps user memory on purpose (memory.md: user memory
    # is kept across sessions; forget_user is what erases a user).
    await start_session(mem)
    assert await mem.end_session("b", "u1")
    assert not await mem.end_session("b", "u1")  # nothing left to end
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session
        assert "topic" not in state.session
        assert dict(state.temp) == {}
        assert state.user["name"] == "Ada"


async def test_each_conversation_has_a_session_of_its_own(mem: Memory, clock: ManualClock) -> None:
    # Rasa keeps one tracker per sender id; here a session per user, channel and thread.
    await start_session(mem, "u1")
    clock.advance(TIMEOUT - timedelta(minutes=10))
    await start_session(mem, "u2")
    clock.advance(timedelta(minutes=10))  # u1 silent for the whole timeout, u2 not
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session
    async with mem.turn("b", "u2") as state:
        assert not state.is_new_session
        assert state.session["topic"] == "billing"
    async with mem.turn("b", "u2", thread_id="t1") as state:
        assert state.is_new_session
        assert state.user["name"] == "Ada"


async def test_a_bot_of_its_own_timeout_on_both_sides_of_it(
    open_memory: OpenMemory, clock: ManualClock
) -> None:
    # Rasa's session_config belongs to a domain, i.e. to one assistant.
    mem = await open_memory(bot_configs={"b": {"dialog": {"sessionTimeoutInterval": "2m"}}})
    await start_session(mem)
    clock.advance(timedelta(minutes=2) - MS)
    async with mem.turn("b", "u1") as state:
        assert not state.is_new_session
    clock.advance(timedelta(minutes=2))
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session


async def test_an_expired_session_is_gone_before_and_after_the_janitor(
    mem: Memory, clock: ManualClock
) -> None:
    await start_session(mem)
    clock.advance(TIMEOUT - MS)
    assert (await mem.janitor.run_once()).sessions == 0
    assert len((await mem.export_user("b", "u1")).sessions) == 1
    clock.advance(MS)
    assert (await mem.export_user("b", "u1")).sessions == ()  # before the janitor ran
    assert (await mem.janitor.run_once()).sessions == 1
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session
        assert "topic" not in state.session
        assert state.user["name"] == "Ada"


async def test_a_session_start_is_stamped_with_its_first_turn(
    mem: Memory, clock: ManualClock
) -> None:
    # Rasa's SessionStarted event carries the time the session started; later
    # messages of the session move its last activity, not its start.
    first = clock()
    await start_session(mem)
    clock.advance(timedelta(minutes=20))
    async with mem.turn("b", "u1"):
        pass
    (session,) = (await mem.export_user("b", "u1")).sessions
    assert (session.started_at, session.last_seen) == (first, clock())
    assert session.expires_at == clock() + TIMEOUT.total_seconds()
    clock.advance(TIMEOUT)
    async with mem.turn("b", "u1"):
        pass
    (session,) = (await mem.export_user("b", "u1")).sessions
    assert session.started_at == session.last_seen == clock()


async def test_ending_or_editing_a_session_at_its_last_millisecond_and_after(
    mem: Memory, clock: ManualClock
) -> None:
    await start_session(mem)
    await start_session(mem, "u2")
    clock.advance(TIMEOUT - MS)
    async with mem.edit("b", "u1") as state:
        state.session["note"] = "still alive"
    assert await mem.end_session("b", "u2")
    clock.advance(MS)
    with pytest.raises(SessionNotAliveError):
        async with mem.edit("b", "u1") as state:
            state.session["note"] = "too late"
    assert not await mem.end_session("b", "u1")  # already over: nothing to end


async def test_the_last_session_stays_readable_for_timeout_handling_until_swept(
    mem: Memory, clock: ManualClock
) -> None:
    # Rasa's retrieve() gives the events since the last session start, and
    # retrieve_full_tracker() the previous sessions too. Here a timed-out session is
    # hidden from turns at once, a timeout handler's resumed turn still sees it (and
    # does not bring it back to life), and once the janitor swept it, it is gone: a
    # resumed turn then starts no session (it did, so that the user's next message
    # found a session it never had).
    await start_session(mem)
    clock.advance(TIMEOUT)
    async with mem.turn("b", "u1", resume=True) as state:
        assert state.session_expired
        assert state.session["topic"] == "billing"
    assert not (await mem.peek("b", "u1")).session.alive
    assert (await mem.janitor.run_once()).sessions == 1
    async with mem.turn("b", "u1", resume=True) as state:  # a handler come too late
        assert state.session_expired
        assert "topic" not in state.session
        state.user["seen"] = True  # user memory can still change
    assert (await mem.export_user("b", "u1")).sessions == ()  # it started no session
    with pytest.raises(SessionNotAliveError, match="not stored"):
        async with mem.turn("b", "u1", resume=True) as state:
            state.session["topic"] = "brought back"
    for scope in ("session", "temp"):  # an addition is a change too
        with pytest.raises(SessionNotAliveError, match="not stored"):
            async with mem.turn("b", "u1", resume=True) as state:
                getattr(state, scope).incr("count")
    async with mem.turn("b", "u1") as state:
        assert state.is_new_session
        assert "topic" not in state.session
        assert "count" not in state.session
    async with mem.turn("b", "u1") as state:  # nothing was stored for a later turn either
        assert ("count" not in state.session, "count" not in state.temp) == (True, True)
        assert (state.user["name"], state.user["seen"]) == ("Ada", True)
