"""Locks between processes that share a database file: one lock file, one byte per key.

SQLite has one write lock for the whole file; these locks order the turns of one
session across processes (``serve`` and ``chat`` side by side), so that they wait for
each other instead of conflicting at commit. They only spare work: a turn's commit
still checks what it read, so a lock given up after ``timeout`` (a holder stopped with
SIGSTOP, say) or two keys sharing a byte never cost an update. The kernel releases the
locks of a process that dies, SIGKILL included.

Every process holds a shared lock on byte 0 while the file is open; a process that
finds itself alone (it can turn its own into an exclusive one, looked at every 50 ms
at most) takes no key locks: a lone ``serve`` makes no lock calls per turn.

The locks belong to the open file, not to the process (Linux's open file description
locks, ``F_OFD_SETLK``): two :class:`KeyLocks` on one file in one process (two
``Memory`` objects on one database) exclude each other like two processes, and closing
one releases none of the other's locks (a child made by ``fork`` shares them, as it
shares the open file). A POSIX lock (``lockf``), where the system has no such locks
(another system, or a kernel or sandbox that refuses them), belongs to the process:
there, closing any descriptor of the file releases all of them. Both kinds conflict
with each other, so processes of either kind still exclude each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import struct
import sys
import time
from collections.abc import AsyncIterator
from typing import Final

from botmemory.durations import Seconds

__all__ = ["KeyLocks"]

_BYTES: Final = 1 << 40
"""The bytes a key may hash to (locks are on bytes past the end of an empty file)."""
_FIRST_WAIT: Final = Seconds(0.0005)  # 0.5 ms
_LONGEST_WAIT: Final = Seconds(0.02)  # 20 ms
_ALONE_FOR: Final = Seconds(0.05)  # 50 ms
"""How long a finding that no other process has the file open is trusted."""


_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None) if sys.platform == "linux" else None
"""Open file description locks (Linux 3.15 and later); ``None`` once found unusable."""
_KINDS: Final = {
    fcntl.F_RDLCK: fcntl.LOCK_SH,
    fcntl.F_WRLCK: fcntl.LOCK_EX,
    fcntl.F_UNLCK: fcntl.LOCK_UN,
}


def _lock(fd: int, kind: int, offset: int) -> None:
    """Take (``F_RDLCK``, ``F_WRLCK``) or give up (``F_UNLCK``) the lock of one byte, or
    raise ``OSError`` (``EAGAIN`` or ``EACCES`` while another holds it) without waiting."""
    global _OFD_SETLK
    if _OFD_SETLK is not None:
        # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for these locks)
        try:
            fcntl.fcntl(fd, _OFD_SETLK, struct.pack("hhqqi4x", kind, os.SEEK_SET, offset, 1, 0))
            return
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS):  # held, or another failure
                raise
            _OFD_SETLK = None  # a kernel (or sandbox) without them: POSIX locks from now on
    unlock = kind == fcntl.F_UNLCK  # lockf refuses LOCK_UN with LOCK_NB
    fcntl.lockf(fd, _KINDS[kind] | (0 if unlock else fcntl.LOCK_NB), 1, offset)


class KeyLocks:
    """Exclusive locks by key between processes, through ``fcntl`` on one lock file.

    Tasks sharing one :class:`KeyLocks` must be ordered by other means (the storage's
    in-process session locks): its locks are those of its open file.
    """

    def __init__(self, path: str, timeout: Seconds) -> None:
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None
        self._alone_until = 0.0
        self._announced = False

    def open(self) -> None:
        """Open (or create) the lock file, and say so to the other processes (blocking).

        Another process holds byte 0 exclusively for an instant only (see :meth:`alone`);
        one stopped in that instant is waited for up to ``timeout``, then this process
        goes on unannounced: the others may then believe they are alone, which costs
        conflicts, never an update.
        """
        if self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._fd = fd
            deadline = time.monotonic() + self.timeout
            while not self._announce() and time.monotonic() < deadline:
                time.sleep(_FIRST_WAIT)

    def _announce(self) -> bool:
        """Take the shared lock on byte 0 that says this process has the file open."""
        if not self._announced and self._fd is not None:
            try:
                _lock(self._fd, fcntl.F_RDLCK, 0)
                self._announced = True
            except OSError:
                pass
        return self._announced

    def close(self) -> None:
        """Close the lock file, which releases every lock held through it."""
        fd, self._fd = self._fd, None
        self._announced = False
        if fd is not None:
            os.close(fd)

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[bool]:
        """Hold the lock of ``key``; yield whether it was got within ``timeout``."""
        fd = self._fd
        if fd is None or self.alone():
            yield fd is not None
            return
        digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
        offset = 1 + int.from_bytes(digest) % _BYTES  # byte 0 says who has the file open
        got = await self._acquire(fd, offset)
        try:
            yield got
        finally:
            if got and self._fd == fd:
                _lock(fd, fcntl.F_UNLCK, offset)

    def alone(self) -> bool:
        """Whether nothing else (another process, another :class:`KeyLocks` of this one)
        has the lock file open (as of at most 50 ms ago).

        ``False`` when the file is not open: nothing can be said.
        """
        now = time.monotonic()
        if now < self._alone_until:
            return True
        fd = self._fd
        if fd is None or not self._announce():  # unannounced: others may think they are alone
            return False
        try:  # a lock changes type in one step, or stays as it was
            _lock(fd, fcntl.F_WRLCK, 0)
        except OSError:
            return False  # another process holds its shared lock
        _lock(fd, fcntl.F_RDLCK, 0)
        self._alone_until = now + _ALONE_FOR
        return True

    async def _acquire(self, fd: int, offset: int) -> bool:
        deadline = time.monotonic() + self.timeout
        wait: float = _FIRST_WAIT
        while True:
            try:
                _lock(fd, fcntl.F_WRLCK, offset)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):  # not held: unusable
                    return False
                if time.monotonic() >= deadline:  # held by another process, too long
                    return False
            await asyncio.sleep(wait)
            wait = min(wait * 2, _LONGEST_WAIT)
