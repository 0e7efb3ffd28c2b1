"""Locks between processes on one lock file: what SQLite turns of one session wait on."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from botmemory.storage.file_locks import KeyLocks

HOLDER = """
import asyncio, sys
from botmemory.storage.file_locks import KeyLocks

async def main():
    locks = KeyLocks(sys.argv[1], 5.0)
    locks.open()
    async with locks.hold(sys.argv[2]) as got:
        print("held" if got else "missed", flush=True)
        sys.stdin.readline()  # hold until told

asyncio.run(main())
"""


@pytest.fixture
def lock_path(tmp_path: Path) -> str:
    return str(tmp_path / "memory.db.sessions.lock")


@pytest.fixture
def holder(lock_path: str) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the lock of key ``a``."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, lock_path, "a"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


async def test_a_key_held_by_another_process_is_waited_for(
    lock_path: str, holder: subprocess.Popen[str]
) -> None:
    locks = KeyLocks(lock_path, 10.0)
    locks.open()
    try:
        waiting = asyncio.ensure_future(locks.hold("a").__aenter__())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # still held by the other process
        async with locks.hold("b") as got:  # another key is free meanwhile
            assert got
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert await asyncio.wait_for(waiting, 5) is True
    finally:
        locks.close()


async def test_a_stopped_holder_is_waited_for_until_the_timeout_only(
    lock_path: str, holder: subprocess.Popen[str]
) -> None:
    os.kill(holder.pid, signal.SIGSTOP)
    locks = KeyLocks(lock_path, 0.2)
    locks.open()
    try:
        started = time.monotonic()
        async with locks.hold("a") as got:
            assert got is False  # the turn goes on: its commit checks what it read
        assert 0.2 <= time.monotonic() - started < 2
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        locks.close()


async def test_a_killed_holder_releases_at_once(
    lock_path: str, holder: subprocess.Popen[str]
) -> None:
    holder.kill()
    holder.wait()
    locks = KeyLocks(lock_path, 10.0)
    locks.open()
    try:
        async with locks.hold("a") as got:
            assert got
    finally:
        locks.close()


async def test_closed_locks_hold_nothing(lock_path: str) -> None:
    locks = KeyLocks(lock_path, 1.0)
    async with locks.hold("a") as got:
        assert got is False
