"""A user's export holds the replies their live sessions remember with message ids."""

from __future__ import annotations

from datetime import timedelta

from botmemory import ManualClock, Memory
from botmemory.views import ExportedMessage
from tests.conftest import OpenMemory

MS = timedelta(milliseconds=1)
REPLY = "Noted: card 4111-1111, email ada@example.com"


async def test_the_export_holds_the_remembered_replies_while_the_session_lives(
    mem: Memory, clock: ManualClock
) -> None:
    async with mem.turn("b", "u1", message={"type": "text", "text": "hi"}, message_id="m1") as s:
        s.replies = [REPLY]
    async with mem.turn("b", "u1", message_id="m2"):
        pass  # a message that got no reply
    clock.advance(timedelta(minutes=30) - MS)  # dialog.sessionTimeoutInterval, less 1 ms
    export = await mem.export_user("b", "u1")
    assert export.sessions[0].messages == (
        ExportedMessage("m1", (REPLY,)),
        ExportedMessage("m2", ()),
    )
    assert export.to_json()["sessions"][0]["messages"] == [  # type: ignore[index,call-overload]
        {"id": "m1", "replies": [REPLY]},
        {"id": "m2", "replies": []},
    ]
    clock.advance(MS)  # the session ends, and what it remembered with it
    assert (await mem.export_user("b", "u1")).sessions == ()


async def test_replies_too_large_to_keep_are_exported_as_none_kept(
    open_memory: OpenMemory,
) -> None:
    mem = await open_memory({"limits": {"maxValueBytes": 4_096}})
    async with mem.turn("b", "u1", message_id="big") as state:
        state.replies = ["y" * 5_000]  # the id is remembered, not the replies
    export = await mem.export_user("b", "u1")
    assert export.sessions[0].messages == (ExportedMessage("big", ()),)
