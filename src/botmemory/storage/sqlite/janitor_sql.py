"""The SQL of the SQLite backend's janitor and retention: scans in bounded batches and
guarded updates, each applied only to rows unchanged since they were read.

The caller owns the transaction (``SqliteStorage._write``) and translates driver errors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from botmemory.storage.base import (
    SessionCursor,
    SessionRecord,
    SessionUpdate,
    StoredVar,
    VarKey,
    VarUpdate,
    cleared_version,
    new_version,
)
from botmemory.storage.sqlite.sql import (
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
        where = (k.bot_id, k.scope, k.owner, k.name, u.changed_at, u.version)
        guard = "changed_at = ?5 AND coalesce(?6 = version, 1)"
        if u.value is None:
            cursor = db.execute(
                "DELETE FROM variables WHERE bot_id = ?1 AND scope = ?2 AND owner = ?3 "
                f"AND name = ?4 AND {guard}",
                where,
            )
        else:
            cursor = db.execute(
                "UPDATE variables SET value = ?7, expires_at = ?8, field_times = ?9, "
                "version = ?10 WHERE bot_id = ?1 AND scope = ?2 AND owner = ?3 AND name = ?4 "
                f"AND {guard}",
                (*where, u.value, u.expires_at, u.field_times, new_version()),
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


def scan_sessions(
    db: sqlite3.Connection, after: SessionCursor | None, limit: int
) -> tuple[list[SessionRecord], SessionCursor | None]:
    """Return up to ``limit`` sessions after ``(bot_id, key)`` ``after``, in key order,
    and the key of the last one (``None`` if the batch was the last)."""
    rows = db.execute(
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE (bot_id, key) > (?, ?) "
        "ORDER BY bot_id, key LIMIT ?",
        (*(after or ("", "")), limit),
    ).fetchall()
    sessions = [session_from_row(r) for r in rows]
    last = sessions[-1] if len(sessions) == limit else None
    return sessions, None if last is None else (last.bot_id, last.key)


def update_sessions(
    db: sqlite3.Connection, updates: Sequence[SessionUpdate]
) -> list[SessionUpdate]:
    """Apply the updates whose session still has the version read; return those applied."""
    return [
        u
        for u in updates
        if db.execute(
            "UPDATE sessions SET expires_at = ?, temp_expires_at = ?, version = ? "
            "WHERE bot_id = ? AND key = ? AND version = ?",
            (u.expires_at, u.temp_expires_at, u.version, u.read.bot_id, u.read.key, u.read.version),
        ).rowcount
    ]


def delete_expired_kvs(db: sqlite3.Connection, now: float, limit: int) -> int:
    """Delete up to ``limit`` key-value records expired at ``now``; return how many."""
    return db.execute(
        "DELETE FROM kvs WHERE (namespace, key) IN (SELECT namespace, key FROM kvs "
        "WHERE expires_at <= ? LIMIT ?)",
        (now, limit),
    ).rowcount
