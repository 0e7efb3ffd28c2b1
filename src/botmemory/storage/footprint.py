"""Which rows commits wrote: to tell whether a later commit's checks could fail.

SQLite commits the turns queued at once in one transaction. A turn that loaded the
database as it was when that transaction began can only be invalidated by the turns
before it in the same transaction; if none of them wrote a row it checks, its checks
hold without reading anything.
"""

from __future__ import annotations

from itertools import chain

from botmemory.storage.base import TurnWrite, VarKey

__all__ = ["Footprint"]

Owner = tuple[str, str, str]
"""``(bot_id, scope, owner)``."""


class Footprint:
    """The variables, owners and sessions that some commits wrote (or may have)."""

    def __init__(self) -> None:
        self._vars: set[VarKey] = set()
        self._owners: set[Owner] = set()
        self._reset: set[Owner] = set()
        self._sessions: set[tuple[str, str]] = set()

    def add(self, write: TurnWrite) -> None:
        """Count every row ``write`` writes or deletes."""
        s = write.session
        if s is not None:
            self._sessions.add((s.bot_id, s.key))
            reset = ["session", "temp"] if write.reset_session else []
            reset += ["temp"] if write.reset_temp else []
            for scope in reset:
                self._reset.add((s.bot_id, scope, s.key))
                self._owners.add((s.bot_id, scope, s.key))
        keys = chain(write.deletes, (v.key for v in write.upserts), (d.key for d in write.deltas))
        for key in keys:
            self._vars.add(key)
            self._owners.add((key.bot_id, key.scope, key.owner))

    def touches(self, write: TurnWrite) -> bool:
        """Whether a session, variable or scope that ``write`` checks was written."""
        s = write.session
        if s is not None and write.session_version is not None:  # noqa: SIM102
            if (s.bot_id, s.key) in self._sessions:
                return True
        for check in write.checks:
            k = check.key
            if k in self._vars or (k.bot_id, k.scope, k.owner) in self._reset:
                return True
        return any((c.bot_id, c.scope, c.owner) in self._owners for c in write.scope_checks)
