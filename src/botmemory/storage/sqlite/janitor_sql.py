"""The SQL of the SQLite backend's janitor and retention: scans in bounded batches and
guarded updates, each applied only to rows unchanged since they were read.

The caller owns the transaction (``SqliteStorage._write``) and translates driver errors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

from botmemory.storage.base import (
    SessionRecord,
    SessionTimeouts,
    StoredVar,
    VarKey,
    VarUpdate,
    cleared_version,
    new_version,
)
from botmemory.storage.sqlite.sql import (
    NEW_VERSION,
    SESSION_COLUMNS,
    VAR_COLUMNS,
    session_from_row,
    var_from_row,
)


def expired_user_vars(db: sqlite3.Connection, now: float, limit: int) -> list[StoredVar]:
    """Return up to ``limit`` user variables expired at ``now``, soonest first."""
    rows = db.execute(
        f"SELECT {VAR_COLUMNS} FROM variables WHERE expires_at <= ? "
        "AND scope = 'user' ORDER BY expires_at LIMIT ?",
        (now, limit),
    )
    return [var_from_row(r) for r in rows]


def scan_user_vars(
    db: sqlite3.Connection, bot_id: str | None, after: VarKey | None, limit: int
) -> list[StoredVar]:
    """Return up to ``limit`` user variables after ``after``, in key order."""
    start = ("", "", "") if after is None else (after.bot_id, after.owner, after.name)
    rows = db.execute(
        f"SELECT {VAR_COLUMNS} FROM variables WHERE scope = 'user' "
        "AND (?1 IS NULL OR bot_id = ?1) AND (bot_id, owner, name) > (?2, ?3, ?4) "
        "ORDER BY bot_id, owner, name LIMIT ?5",
        (bot_id, *start, limit),
    )
    return [var_from_row(r) for r in rows]


def update_user_vars(db: sqlite3.Connection, updates: Sequence[VarUpdate]) -> list[VarUpdate]:
    """Apply the updates whose variable is unchanged since read; return those applied."""
    applied: list[VarUpdate] = []
    for u in updates:
        k = u.key
        where = (k.bot_id, k.scope, k.owner, k.name, u.changed_at)
        if u.value is None:
            cursor = db.execute(
                "DELETE FROM variables WHERE bot_id = ? AND scope = ? AND owner = ? "
                "AND name = ? AND changed_at = ?",
                where,
            )
        else:
            cursor = db.execute(
                "UPDATE variables SET value = ?, expires_at = ?, field_times = ?, version = ? "
                "WHERE bot_id = ? AND scope = ? AND owner = ? AND name = ? "
                "AND changed_at = ?",
                (u.value, u.expires_at, u.field_times, new_version(), *where),
            )
        if cursor.rowcount:
            applied.append(u)
    return applied


def expired_sessions(db: sqlite3.Connection, now: float, limit: int) -> list[SessionRecord]:
    """Return up to ``limit`` sessions expired at ``now``, soonest first."""
    rows = db.execute(
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?",
        (now, limit),
    )
    return [session_from_row(r) for r in rows]


def delete_sessions(db: sqlite3.Connection, sessions: Sequence[SessionRecord]) -> int:
    """Delete the sessions not seen since read, with their variables; return how many."""
    deleted = 0
    for s in sessions:
        if not db.execute(
            "DELETE FROM sessions WHERE bot_id = ? AND key = ? AND last_seen = ?",
            (s.bot_id, s.key, s.last_seen),
        ).rowcount:
            continue
        db.execute(
            "DELETE FROM variables WHERE bot_id = ? AND scope IN ('session', 'temp') AND owner = ?",
            (s.bot_id, s.key),
        )
        deleted += 1
    return deleted


def expired_temps(db: sqlite3.Connection, now: float, limit: int) -> list[SessionRecord]:
    """Return up to ``limit`` sessions whose temp variables expired at ``now``."""
    rows = db.execute(
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE temp_expires_at <= ? "
        "ORDER BY temp_expires_at LIMIT ?",
        (now, limit),
    )
    return [session_from_row(r) for r in rows]


def clear_temps(db: sqlite3.Connection, sessions: Sequence[SessionRecord]) -> int:
    """Empty the temp memory of sessions whose temp expiry is unchanged, or that a turn
    emptied since; return how many. One another call emptied (its version is
    ``cleared_version`` of the one read) is not counted again."""
    cleared = 0
    for s in sessions:
        if not db.execute(
            "UPDATE sessions SET temp_expires_at = NULL, version = ?1 "
            "WHERE bot_id = ?2 AND key = ?3 "
            "AND (temp_expires_at = ?4 OR (temp_expires_at IS NULL AND version <> ?1))",
            (cleared_version(s.version), s.bot_id, s.key, s.temp_expires_at),
        ).rowcount:
            continue
        db.execute(
            "DELETE FROM variables WHERE bot_id = ? AND scope = 'temp' AND owner = ?",
            (s.bot_id, s.key),
        )
        cleared += 1
    return cleared


SHORTEN_TIMERS: Final = f"""
    UPDATE sessions SET
        version = {NEW_VERSION},
        expires_at = MIN(expires_at, last_seen + ?1),
        temp_expires_at = CASE WHEN temp_expires_at IS NULL THEN NULL
            ELSE MIN(temp_expires_at, last_seen + ?2, last_seen + ?1) END
    WHERE bot_id = ?3
        AND (expires_at > last_seen + ?1 OR temp_expires_at > MIN(last_seen + ?2, last_seen + ?1))
"""


def shorten_session_timers(db: sqlite3.Connection, timeouts: SessionTimeouts) -> int:
    """Bring the sessions' timers within the timeouts in force; count those changed."""
    bots = [row[0] for row in db.execute("SELECT DISTINCT bot_id FROM sessions")]
    changed = 0
    for bot_id in bots:
        session_timeout, dialog_timeout = timeouts(bot_id)
        changed += db.execute(SHORTEN_TIMERS, (session_timeout, dialog_timeout, bot_id)).rowcount
    return changed


def delete_expired_kvs(db: sqlite3.Connection, now: float, limit: int) -> int:
    """Delete up to ``limit`` key-value records expired at ``now``; return how many."""
    return db.execute(
        "DELETE FROM kvs WHERE (namespace, key) IN (SELECT namespace, key FROM kvs "
        "WHERE expires_at <= ? LIMIT ?)",
        (now, limit),
    ).rowcount
