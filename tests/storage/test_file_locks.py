"""Locks between processes on one lock file: what SQLite turns of one session wait on."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from botmemory.storage import file_locks
from botmemory.storage.file_locks import KeyLocks

HOLDER = """
import asyncio, sys
from botmemory.storage import file_locks
from botmemory.storage.file_locks import KeyLocks

async def main():
    locks = KeyLocks(sys.argv[1], float(sys.argv[3]) if len(sys.argv) > 3 else 5.0)
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
def locks(lock_path: str) -> Iterator[KeyLocks]:
    """This process's locks, open before the other process starts."""
    locks = KeyLocks(lock_path, 10.0)
    locks.open()
    yield locks
    locks.close()


def start_holder(lock_path: str, key: str = "a", timeout: str = "5") -> subprocess.Popen[str]:
    """Start a process that takes the lock of ``key`` and says whether it got it."""
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, lock_path, key, timeout],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def holder(lock_path: str, locks: KeyLocks) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the lock of key ``a`` (it is not alone: ``locks`` is open)."""
    process = start_holder(lock_path)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


async def test_a_key_held_by_another_process_is_waited_for(
    locks: KeyLocks, holder: subprocess.Popen[str]
) -> None:
    waiting = asyncio.ensure_future(locks.hold("a").__aenter__())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # still held by the other process
    async with locks.hold("b") as got:  # another key is free meanwhile
        assert got
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert await asyncio.wait_for(waiting, 5) is True


async def test_a_stopped_holder_is_waited_for_until_the_timeout_only(
    locks: KeyLocks, holder: subprocess.Popen[str]
) -> None:
    os.kill(holder.pid, signal.SIGSTOP)
    locks.timeout = 0.2
    try:
        started = time.monotonic()
        async with locks.hold("a") as got:
            assert got is False  # the turn goes on: its commit checks what it read
        assert 0.2 <= time.monotonic() - started < 2
    finally:
        os.kill(holder.pid, signal.SIGCONT)


async def test_a_killed_holder_releases_at_once(
    locks: KeyLocks, holder: subprocess.Popen[str]
) -> None:
    holder.kill()
    holder.wait()
    async with locks.hold("a") as got:
        assert got


async def test_a_process_alone_takes_no_key_locks(lock_path: str) -> None:
    alone = KeyLocks(lock_path, 0.2)
    alone.open()
    try:
        async with alone.hold("a") as got:
            assert got
            process = start_holder(lock_path)  # a process that arrives meanwhile
            try:
                assert process.stdout is not None
                assert process.stdout.readline().strip() == "held"  # nothing was held
            finally:
                process.kill()
                process.wait()
    finally:
        alone.close()


async def test_closed_locks_hold_nothing(lock_path: str) -> None:
    locks = KeyLocks(lock_path, 1.0)
    async with locks.hold("a") as got:
        assert got is False


async def test_closing_other_locks_on_the_file_in_this_process_keeps_these(
    lock_path: str, locks: KeyLocks
) -> None:
    """A second Memory on the same database, closed: the first one's locks stay (POSIX
    locks, which belong to the process, were all released by closing any descriptor)."""
    other = start_holder(lock_path, "b")  # another process: this one is not alone
    try:
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "held"
        async with locks.hold("a") as got:
            assert got
            second = KeyLocks(lock_path, 1.0)
            second.open()
            second.close()
            late = start_holder(lock_path, "a", "0.2")
            assert late.stdout is not None
            assert late.stdout.readline().strip() == "missed"  # still held here
            late.kill()
            late.wait()
    finally:
        other.kill()
        other.wait()


async def test_two_locks_on_one_file_in_one_process_exclude_each_other(
    lock_path: str, locks: KeyLocks
) -> None:
    """Two Memory objects on one database in one process order a session's turns too."""
    second = KeyLocks(lock_path, 0.2)
    second.open()
    try:
        assert not locks.alone()  # the second one has the file open
        async with locks.hold("a") as got:
            assert got
            async with second.hold("a") as also:
                assert also is False  # waited 0.2 s: held by the first
            async with second.hold("b") as other_key:
                assert other_key
        async with second.hold("a") as after:
            assert after
    finally:
        second.close()


async def test_posix_locks_where_the_system_has_none_of_its_own_and_both_conflict(
    lock_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without open file description locks, POSIX ones; a process of either kind waits
    for the other (an upgrade may run beside an older process)."""
    monkeypatch.setattr(file_locks, "_OFD_SETLK", None)
    locks = KeyLocks(lock_path, 0.2)
    locks.open()
    processes = [start_holder(lock_path, "b"), start_holder(lock_path)]  # with their own kind
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "held"
        async with locks.hold("a") as got:
            assert got is False  # held by the other kind
        processes[1].kill()
        processes[1].wait()
        async with locks.hold("a") as got:
            assert got
            processes.append(start_holder(lock_path, "a", "0.2"))
            assert processes[-1].stdout is not None
            assert processes[-1].stdout.readline().strip() == "missed"  # and the reverse
    finally:
        for process in processes:
            process.kill()
            process.wait()
        locks.close()


async def test_a_kernel_that_refuses_open_file_locks_gets_posix_ones(
    lock_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some kernels and sandboxes know F_OFD_SETLK and answer EINVAL: the locks fall back
    to POSIX ones at the first refusal, instead of announcing nothing and holding nothing."""
    monkeypatch.setattr(file_locks, "_OFD_SETLK", fcntl.F_OFD_SETLK)

    def refuse(fd: int, command: int, arg: object = 0) -> object:
        if command == fcntl.F_OFD_SETLK:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, command, arg)

    real = fcntl.fcntl
    monkeypatch.setattr(fcntl, "fcntl", refuse)
    locks = KeyLocks(lock_path, 0.2)
    started = time.monotonic()
    locks.open()
    try:
        assert time.monotonic() - started < 0.1  # announced at once, no wait for a timeout
        assert file_locks._OFD_SETLK is None
        process = start_holder(lock_path, "b")  # open file locks: they conflict with POSIX
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "held"
            assert not locks.alone()
            async with locks.hold("a") as got:
                assert got
                late = start_holder(lock_path, "a", "0.2")
                assert late.stdout is not None
                assert late.stdout.readline().strip() == "missed"
                late.kill()
                late.wait()
        finally:
            process.kill()
            process.wait()
    finally:
        locks.close()
