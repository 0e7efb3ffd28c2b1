"""The keys of the storage actions: valid ids always make a key that can be stored.

Ids are up to 255 characters and escaping triples ``%``, ``/`` and ``:``, so a key of a
conversation's or a user's stored variable could pass the 1,024 characters of a key:
such a key writes its long ids as digests, and export and erasure still find it.
"""

from __future__ import annotations

import json5

from botmemory import Memory
from botmemory.dialog import DialogEngine
from botmemory.ids import Identity
from botmemory.kvs import MAX_KEY_LENGTH, conversation_storage_key, user_storage_key
from tests.conftest import OpenMemory
from tests.dialog.test_example import EXAMPLE

LONG = ":" * 255  # a valid id, 765 characters once escaped


def test_a_key_that_fits_keeps_its_ids_and_one_a_character_longer_writes_them_as_digests() -> None:
    ident = Identity.of("b", LONG)
    fits = conversation_storage_key(ident, "n" * 229)
    assert len(fits) == MAX_KEY_LENGTH
    assert fits == f"storage/conversation/b::api::{'%3A' * 255}/{'n' * 229}"
    longer = conversation_storage_key(ident, "n" * 230)
    assert len(longer) < MAX_KEY_LENGTH
    assert longer.startswith("storage/conversation/b::api::%#")
    assert longer.endswith("/" + "n" * 230)
    user = user_storage_key("/" * 255, "n" * 244)  # 14 + 765 + 1 + 244
    assert len(user) == MAX_KEY_LENGTH
    assert user.startswith("storage/users/%2F")
    assert user_storage_key("/" * 255, "n" * 245).startswith("storage/users/%#")
    other = conversation_storage_key(Identity.of("b", LONG[:-1] + "x"), "n" * 230)
    assert other != longer  # another long id, another digest


async def remember(mem: Memory, user: str, thread: str | None, name: str) -> str:
    """Store a conversation variable and a user variable, as the storage actions do."""
    key = conversation_storage_key(Identity.of("b", user, thread_id=thread), name)
    async with mem.turn("b", user, thread_id=thread) as state:
        await state.kvs.set(key, f"{name} of {user[:3]}")
        await state.kvs.set(user_storage_key(user, name), name)
    return key


async def test_keys_of_long_ids_are_stored_exported_and_erased_with_their_user(
    mem: Memory,
) -> None:
    kvs = mem.kvs.for_bot("b")
    mine = [
        await remember(mem, LONG, LONG, "topic"),  # digests
        await remember(mem, LONG, None, "topic"),  # fits: as it is
        await remember(mem, LONG, None, "t" * 255),  # digests
    ]
    assert ["%#" in key for key in mine] == [True, False, True]
    assert mine[0] != mine[2]
    assert await kvs.get(mine[0]) == "topic of :::"
    others = [
        await remember(mem, LONG[:-1] + "x", LONG, "topic"),
        await remember(mem, "u", LONG, "topic"),
    ]
    exported = await mem.export_user("b", LONG)
    assert set(mine) <= set(exported.kvs)
    assert user_storage_key(LONG, "t" * 255) in exported.kvs
    await mem.forget_user("b", LONG)
    assert [await kvs.exists(k) for k in mine] == [False] * 3
    assert not await kvs.exists(user_storage_key(LONG, "t" * 255))
    assert [await kvs.exists(k) for k in others] == [True, True]


async def test_a_user_with_long_ids_can_go_through_the_example_bot(
    open_memory: OpenMemory,
) -> None:
    config = json5.loads((EXAMPLE / "global" / "botmemory.config.json").read_text())
    bot = json5.loads((EXAMPLE / "bots" / "welcome" / "bot.config.json").read_text())
    engine = DialogEngine.open(await open_memory(config, {"welcome": bot}), EXAMPLE)
    user = "u:" * 127

    async def say(text: str) -> list[str]:
        return await engine.process("welcome", user, text=text, thread_id=LONG)

    for text in ("hi", "Ada", "great", "ada@example.com", "yes"):
        await say(text)
    assert await say("billing") == [  # setConversationVariable of the topic
        "Let's talk about billing. I'm a simple bot, so that's all for now.",
        "Bye Ada! Conversations between us: 1. All my conversations: 1.",
    ]
    assert (await say("hello again"))[1] == "We were talking about billing."
