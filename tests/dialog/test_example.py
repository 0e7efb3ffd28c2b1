"""The example bot (examples/data/bots/welcome) through a whole conversation and months."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import json5
import pytest

from botmemory import ManualClock
from botmemory.dialog import DialogEngine
from tests.conftest import DAY, OpenMemory
from tests.dialog.conftest import Outbox

EXAMPLE = Path(__file__).parents[2] / "examples" / "data"


@pytest.fixture
async def welcome(open_memory: OpenMemory) -> DialogEngine:
    """The example data folder's bots over a memory on the backend under test."""
    config = json5.loads((EXAMPLE / "global" / "botmemory.config.json").read_text())
    bot = json5.loads((EXAMPLE / "bots" / "welcome" / "bot.config.json").read_text())
    memory = await open_memory(config, {"welcome": bot})
    return DialogEngine.open(memory, EXAMPLE)


async def say(engine: DialogEngine, text: str, user: str = "ada") -> list[str]:
    return await engine.process("welcome", user, text=text)


async def test_a_whole_conversation_then_the_mood_and_the_email_are_forgotten(
    welcome: DialogEngine, clock: ManualClock
) -> None:
    assert await say(welcome, "hi") == ["Hello! I'm the welcome bot. What's your name?"]
    assert await say(welcome, "Ada") == ["How are you feeling today, Ada?"]
    assert await say(welcome, "great") == ["What's your email address? I'll keep it for 60 days."]
    assert await say(welcome, "nope") == [
        '"nope" doesn\'t look like an email address.',
        "What's your email address? I'll keep it for 60 days.",
    ]
    assert await say(welcome, "ada@example.com") == ["Is ada@example.com right? (yes/no)"]
    assert await say(welcome, "yes") == ["Thanks, noted.", "What would you like to talk about?"]
    assert await say(welcome, "billing") == [
        "Let's talk about billing. I'm a simple bot, so that's all for now.",
        "Bye Ada! Conversations between us: 1. All my conversations: 1.",
    ]
    kvs = welcome.memory.kvs.for_bot("welcome")
    assert await kvs.get("storage/conversation/welcome::api::ada/topic") == "billing"
    assert await kvs.get("storage/users/ada/numberOfConversations") == 1
    assert await kvs.get("stats/messages") == 7  # the before_incoming hook

    # within the session: the name, the mood and the topic are known
    assert await say(welcome, "hello again") == [
        "Welcome back, Ada! This is conversation number 2 between us.",
        "We were talking about billing.",
        "You told me you feel great today.",
        "What would you like to talk about?",
    ]
    await say(welcome, "music")

    # the next day: the mood (1d) is forgotten, the name (no policy) and email (60d) are not
    clock.advance(timedelta(seconds=DAY + 60))
    await welcome.memory.janitor.run_once()
    assert await say(welcome, "hi") == [
        "Welcome back, Ada! This is conversation number 3 between us.",
        "How are you feeling today, Ada?",
    ]
    assert await say(welcome, "tired") == ["What would you like to talk about?"]
    await say(welcome, "sleep")

    # 61 days later the email is gone too; the name stays
    clock.advance(timedelta(seconds=61 * DAY))
    report = await welcome.memory.janitor.run_once()
    assert report.user_variables == 2  # mood and email
    assert await say(welcome, "hi") == [
        "Welcome back, Ada! This is conversation number 4 between us.",
        "How are you feeling today, Ada?",
    ]
    assert await say(welcome, "fine") == ["What's your email address? I'll keep it for 60 days."]
    async with welcome.memory.turn("welcome", "ada") as state:
        assert state.bot["conversations"] == 4
        assert set(state.user) == {"name", "mood"}


async def test_the_stored_topic_lives_its_hour_and_no_longer(
    welcome: DialogEngine, clock: ManualClock
) -> None:
    for text in ("hi", "Bob", "ok", "bob@example.com", "yes"):
        await say(welcome, text, user="bob")
    await say(welcome, "cats", user="bob")  # setConversationVariable topic, expiry "1h"
    kvs = welcome.memory.kvs.for_bot("welcome")
    key = "storage/conversation/welcome::api::bob/topic"
    entry = await kvs.entry(key)
    assert entry is not None
    assert entry.expires_at == clock.now + 3600
    clock.advance(timedelta(seconds=3600 - 0.001))
    assert await kvs.get(key) == "cats"
    clock.advance(timedelta(seconds=0.001))
    assert await kvs.get(key) is None


async def test_the_example_times_out_and_keeps_the_topic_when_the_session_ends(
    welcome: DialogEngine, clock: ManualClock
) -> None:
    outbox = Outbox()
    welcome.on_timeout_replies = outbox
    for text in ("hi", "Bob", "ok", "bob@example.com", "yes", "cats"):
        await say(welcome, text, user="bob")
    assert (await say(welcome, "hello", user="bob"))[-1] == "What would you like to talk about?"
    # waiting in main's askTopic, which names no timeout target: timeout.flow.json answers,
    # and as its node ends the flow, conversation_end.flow.json runs too
    clock.advance(timedelta(seconds=5 * 60 + 1))
    await welcome.memory.janitor.run_once()
    assert outbox.replies == [
        "You went quiet, Bob. I'll start over when you write again.",
        "Bye Bob! Conversations between us: 2. All my conversations: 2.",
    ]
    clock.advance(timedelta(seconds=30 * 60))
    report = await welcome.memory.janitor.run_once()
    assert report.sessions == 1
    kvs = welcome.memory.kvs.for_bot("welcome")
    assert await kvs.get("storage/users/bob/lastTopic") == "cats"  # the on_session_end hook
    async with welcome.memory.turn("welcome", "bob") as state:
        assert state.user["timeouts"] == 1  # the before_session_timeout hook


async def test_the_email_question_has_its_own_timeout_node(
    welcome: DialogEngine, clock: ManualClock
) -> None:
    outbox = Outbox()
    welcome.on_timeout_replies = outbox
    for text in ("hi", "Cy", "ok"):
        await say(welcome, text, user="cy")
    clock.advance(timedelta(seconds=5 * 60 + 1))
    await welcome.memory.janitor.run_once()
    assert outbox.replies == [
        "No email then, no problem. Write to me when you want to go on.",
        "Bye Cy! Conversations between us: 1. All my conversations: 1.",
    ]
    async with welcome.memory.turn("welcome", "cy") as state:
        assert dict(state.temp) == {}
        assert state.user["mood"] == "ok"


async def test_a_timeout_before_the_name_says_bye_without_a_name(
    welcome: DialogEngine, clock: ManualClock
) -> None:
    outbox = Outbox()
    welcome.on_timeout_replies = outbox
    await say(welcome, "hi", user="dee")
    clock.advance(timedelta(seconds=5 * 60 + 1))
    await welcome.memory.janitor.run_once()
    assert outbox.replies == [
        "You went quiet. I'll start over when you write again.",
        "Bye! Conversations between us: 1. All my conversations: 1.",
    ]


async def test_ending_a_session_now_runs_the_hooks_its_timeout_would(
    welcome: DialogEngine,
) -> None:
    outbox = Outbox()
    welcome.on_timeout_replies = outbox
    for text in ("hi", "Bob", "ok", "bob@example.com", "yes", "cats"):
        await say(welcome, text, user="bob")
    assert await welcome.memory.end_session("welcome", "bob")
    kvs = welcome.memory.kvs.for_bot("welcome")
    assert await kvs.get("storage/users/bob/lastTopic") == "cats"  # the on_session_end hook
    async with welcome.memory.turn("welcome", "bob") as state:
        assert state.is_new_session


async def test_a_user_id_with_a_slash_keeps_its_topic_to_itself(welcome: DialogEngine) -> None:
    for text in ("hi", "Bob", "ok", "bob@example.com", "yes", "cats"):
        await say(welcome, text, user="a/b")
    assert await welcome.memory.end_session("welcome", "a/b")
    kvs = welcome.memory.kvs.for_bot("welcome")
    assert await kvs.keys("storage/users/a/") == []
    assert await kvs.get("storage/users/a%2Fb/lastTopic") == "cats"
