"""SQLite commits skip the row checks only when nothing in the database changed.

A turn's load notes what the database looked like (``PRAGMA data_version`` for other
connections, ``total_changes`` for its own); a commit that finds the same skips the
session, variable and scope checks, which could only pass. Anything else checks.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from botmemory import ConflictError, ManualClock, Memory

URL = "sqlite:///{}/memory.db"


async def test_a_change_by_another_memory_on_the_file_is_caught(
    tmp_path: Path, clock: ManualClock
) -> None:
    first = await Memory.open(URL.format(tmp_path), clock=clock)
    second = await Memory.open(URL.format(tmp_path), clock=clock)
    try:
        async with first.turn("b", "u1") as state:
            state.bot["n"] = 1
        with pytest.raises(ConflictError):
            async with first.turn("b", "u1") as slow:
                n = slow.bot["n"]
                async with second.turn("b", "u2") as fast:
                    fast.bot["n"] = 10
                slow.bot["n"] = n + 1  # type: ignore[operator]
        async with first.turn("b", "u3") as state:
            assert state.bot["n"] == 10
    finally:
        await first.close()
        await second.close()


async def test_a_change_by_any_other_connection_is_caught(
    tmp_path: Path, clock: ManualClock
) -> None:
    mem = await Memory.open(URL.format(tmp_path), clock=clock)
    try:
        async with mem.turn("b", "u1") as state:
            state.bot["n"] = 1
        with pytest.raises(ConflictError):
            async with mem.turn("b", "u1") as slow:
                assert len(slow.bot) == 1
                other = sqlite3.connect(f"{tmp_path}/memory.db", isolation_level=None)
                other.execute(  # a program of the user's adds a variable behind our back
                    "INSERT INTO variables (bot_id, scope, owner, name, value, changed_at, "
                    "version) SELECT bot_id, scope, owner, 'm', '2', changed_at, 7 "
                    "FROM variables WHERE scope = 'bot'"
                )
                other.close()
                slow.bot["count"] = 1
    finally:
        await mem.close()


async def test_a_commit_of_this_connection_in_between_is_caught(
    tmp_path: Path, clock: ManualClock
) -> None:
    mem = await Memory.open(URL.format(tmp_path), clock=clock)
    try:
        kvs = mem.kvs.for_bot("b")
        with pytest.raises(ConflictError):
            async with mem.turn("b", "u1") as slow:
                assert "n" not in slow.user
                await kvs.set("unrelated", 1)  # this connection changes a row...
                async with mem.turn("b", "u1", thread_id="t") as fast:
                    fast.user["n"] = 1  # ...and then the row the slow turn read
                slow.user["n"] = 2
    finally:
        await mem.close()
