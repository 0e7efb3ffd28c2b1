"""The SQLite backend's schema and connection settings.

Migrations are an append-only list; ``PRAGMA user_version`` records how many ran. A
database whose version is newer than this code knows is refused.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Final

from botmemory.durations import parse_duration
from botmemory.errors import SchemaVersionError

__all__ = ["BUSY_TIMEOUT", "MIGRATIONS", "configure", "get_meta", "set_busy_timeout", "set_meta"]


MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE variables (
        bot_id TEXT NOT NULL, scope TEXT NOT NULL, owner TEXT NOT NULL, name TEXT NOT NULL,
        value TEXT NOT NULL, changed_at REAL NOT NULL, expires_at REAL, field_times TEXT,
        PRIMARY KEY (bot_id, scope, owner, name)
    ) WITHOUT ROWID;
    CREATE INDEX variables_expiry ON variables (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE sessions (
        bot_id TEXT NOT NULL, key TEXT NOT NULL, user_key TEXT NOT NULL,
        started_at REAL NOT NULL, last_seen REAL NOT NULL, expires_at REAL NOT NULL,
        temp_expires_at REAL,
        PRIMARY KEY (bot_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX sessions_user ON sessions (bot_id, user_key);
    CREATE INDEX sessions_expiry ON sessions (expires_at);
    CREATE INDEX sessions_temp_expiry ON sessions (temp_expires_at)
        WHERE temp_expires_at IS NOT NULL;
    CREATE TABLE kvs (
        namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires_at REAL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    CREATE INDEX kvs_expiry ON kvs (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    """,
    # Versions for the commit's checks; rows stored before get version 1 (0 is "absent").
    """
    ALTER TABLE variables ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE sessions ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE kvs ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    """,
)

BUSY_TIMEOUT: Final = parse_duration("5s")
"""How long a statement waits for another connection's lock before failing."""
_BUSY_TIMEOUT_MS: Final = round(BUSY_TIMEOUT * 1000)  # what PRAGMA busy_timeout takes


def set_busy_timeout(db: sqlite3.Connection, *, wait: bool) -> None:
    """Let statements wait up to ``BUSY_TIMEOUT`` for other connections' locks, or not at all."""
    db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS if wait else 0}")


def configure(db: sqlite3.Connection) -> None:
    """Set the connection's pragmas and apply the migrations the database lacks."""
    db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    for attempt in range(50):  # switching a new file to WAL ignores busy_timeout
        try:
            db.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.1)
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA secure_delete = ON")
    db.execute("PRAGMA cache_size = -32768")  # 32 MiB: a large table's inner pages
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("PRAGMA wal_autocheckpoint = 0")  # a thread of its own checkpoints
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise SchemaVersionError(
            f"database schema version {version} is newer than this botmemory knows "
            f"({len(MIGRATIONS)}): upgrade botmemory"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        db.execute("BEGIN IMMEDIATE")
        if db.execute("PRAGMA user_version").fetchone()[0] >= number:
            db.commit()  # another process applied it meanwhile
            continue
        for statement in filter(str.strip, script.split(";")):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
        db.commit()


def get_meta(db: sqlite3.Connection, name: str) -> str | None:
    """Return the value of the meta entry ``name``, or None."""
    row = db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(db: sqlite3.Connection, name: str, value: str) -> None:
    """Set the meta entry ``name`` to ``value``."""
    db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))
