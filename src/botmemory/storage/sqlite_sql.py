"""The SQL of the SQLite backend: its schema, built by migrations, and its operations.

Migrations are an append-only list; ``PRAGMA user_version`` records how many ran. A
database whose version is newer than this code knows is refused.

Each function runs the SQL of one storage operation on a ``sqlite3.Connection``,
synchronously, on the event loop's thread or the backend's worker thread
(``sqlite_connection``). The caller owns the transaction
(``SqliteStorage._write``) and translates driver errors; only :func:`load_turn`
opens its own read transaction, so that its two queries see one snapshot.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final, TypeVar

from botmemory.durations import parse_duration
from botmemory.errors import ConflictError, SchemaVersionError
from botmemory.storage.base import (
    KvsModifier,
    KvsRecord,
    SessionRecord,
    SessionTimeouts,
    StoredVar,
    TurnKeys,
    TurnSnapshot,
    TurnWrite,
    UserRecords,
    VarDelta,
    VarKey,
    VarUpdate,
    add_to_number,
    cleared_version,
    new_version,
)

T = TypeVar("T")

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
VAR_COLUMNS: Final = (
    "bot_id, scope, owner, name, value, changed_at, expires_at, field_times, version"
)
SESSION_COLUMNS: Final = (
    "bot_id, key, user_key, started_at, last_seen, expires_at, temp_expires_at, version"
)
NEW_VERSION: Final = "(abs(random()) % 4611686018427387904 + 1)"
"""SQL for a fresh row version, as :func:`~botmemory.storage.base.new_version` makes."""
_LOADED: Final = "name, value, changed_at, expires_at, field_times, version"
LOAD_TURN: Final = f"""
    SELECT 0, {_LOADED} FROM variables WHERE bot_id = ?1 AND scope = 'user' AND owner = ?2
    UNION ALL
    SELECT 1, {_LOADED} FROM variables WHERE bot_id = ?1 AND scope = 'bot' AND owner = ''
    UNION ALL
    SELECT 2, {_LOADED} FROM variables WHERE bot_id = ?1 AND scope = 'session' AND owner = ?3
    UNION ALL
    SELECT 3, {_LOADED} FROM variables WHERE bot_id = ?1 AND scope = 'temp' AND owner = ?3
"""
"""A turn's variables: the key's scope as a number (its bot and owner are the
parameters), then the rest of the row; fewer columns, fewer objects."""
UPSERT_VAR: Final = (
    f"INSERT INTO variables ({VAR_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT (bot_id, scope, owner, name) DO UPDATE SET value = excluded.value, "
    "changed_at = excluded.changed_at, expires_at = excluded.expires_at, "
    "field_times = excluded.field_times, version = excluded.version"
)
UPSERT_SESSION: Final = (
    f"INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?) "
    "ON CONFLICT (bot_id, key) DO UPDATE SET started_at = excluded.started_at, "
    "last_seen = excluded.last_seen, expires_at = excluded.expires_at, "
    "temp_expires_at = excluded.temp_expires_at, version = excluded.version"
)


def var_from_row(row: Sequence[Any]) -> StoredVar:
    """Build a variable from a row of ``VAR_COLUMNS``."""
    return StoredVar(VarKey(row[1], row[0], row[2], row[3]), row[4], row[5], row[6], row[7], row[8])


def vars_by_scope(rows: Iterable[Sequence[Any]], keys: TurnKeys) -> list[list[StoredVar]]:
    """Build the variables of rows of ``LOAD_TURN``: user, bot, session and temp.

    The named tuples are made by ``tuple.__new__`` (twice as fast: a turn loads dozens).
    """
    b, u, s = keys.bot_id, keys.user_key, keys.session_key
    owners = (("user", b, u), ("bot", b, ""), ("session", b, s), ("temp", b, s))
    found: list[list[StoredVar]] = [[], [], [], []]
    new: Any = tuple.__new__
    for r in rows:
        key = new(VarKey, (*owners[r[0]], r[1]))
        found[r[0]].append(new(StoredVar, (key, r[2], r[3], r[4], r[5], r[6])))
    return found


def session_from_row(row: Sequence[Any]) -> SessionRecord:
    """Build a session from a row of ``SESSION_COLUMNS``."""
    return SessionRecord(*row)


def var_params(v: StoredVar, version: int) -> tuple[object, ...]:
    """Return the parameters of ``UPSERT_VAR`` for a variable written with ``version``."""
    k = v.key
    return (
        k.bot_id,
        k.scope,
        k.owner,
        k.name,
        v.value,
        v.changed_at,
        v.expires_at,
        v.field_times,
        version,
    )


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


# -- turns ---------------------------------------------------------------------
def load_turn(
    db: sqlite3.Connection, keys: TurnKeys, data_version: int | None = None
) -> TurnSnapshot:
    """Read a turn's variables and session in one read transaction.

    ``data_version``: the value of ``PRAGMA data_version`` last seen on ``db``, if the
    caller keeps it (it is read here otherwise). An older one is safe: the stamp then
    only differs more often, and the commit checks more.
    """
    db.execute("BEGIN")
    try:
        loaded = stamp(db, data_version)  # no newer than the snapshot the reads below see
        rows = db.execute(LOAD_TURN, (keys.bot_id, keys.user_key, keys.session_key))
        user, bot, session_vars, temp = vars_by_scope(rows, keys)
        session = db.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE bot_id = ? AND key = ?",
            (keys.bot_id, keys.session_key),
        ).fetchone()
    finally:
        db.commit()
    return TurnSnapshot(
        user,
        bot,
        None if session is None else session_from_row(session),
        session_vars,
        temp,
        loaded,
    )


def stamp(db: sqlite3.Connection, data_version: int | None = None) -> tuple[int, int, int]:
    """What the database looks like to ``db`` in its transaction: equal stamps, same data.

    ``data_version`` changes when another connection (of any process) commits,
    ``total_changes`` when this one changes a row (even if rolled back).
    """
    if data_version is None:
        data_version = read_data_version(db)
    return id(db), data_version, db.total_changes


def read_data_version(db: sqlite3.Connection) -> int:
    """``PRAGMA data_version``: it changes when another connection commits."""
    return int(db.execute("PRAGMA data_version").fetchone()[0])


def apply_turn(db: sqlite3.Connection, write: TurnWrite, *, rows_unchanged: bool = False) -> None:
    """Check a turn, then write it: resets, deletes, upserts, deltas, session, KVS.

    ``rows_unchanged``: no row the turn read changed since it loaded them (the caller
    knows): only its KVS checks, which judge liveness at the commit's time, run.
    """
    check_turn(db, write, rows_unchanged=rows_unchanged)
    s, version = write.session, write.version
    if s is not None and (write.reset_session or write.reset_temp):
        scopes = "('session', 'temp')" if write.reset_session else "('temp')"
        db.execute(
            f"DELETE FROM variables WHERE bot_id = ? AND scope IN {scopes} AND owner = ?",
            (s.bot_id, s.key),
        )
    if write.deletes:
        db.executemany(
            "DELETE FROM variables WHERE bot_id = ? AND scope = ? AND owner = ? AND name = ?",
            [(k.bot_id, k.scope, k.owner, k.name) for k in write.deletes],
        )
    if write.upserts:
        db.executemany(UPSERT_VAR, [var_params(v, version) for v in write.upserts])
    for delta in write.deltas:
        apply_delta(db, delta, write.now, version)
    if s is not None:
        db.execute(
            UPSERT_SESSION,
            (
                s.bot_id,
                s.key,
                s.user_key,
                s.started_at,
                s.last_seen,
                s.expires_at,
                s.temp_expires_at,
                version,
            ),
        )
    for w in write.kvs_writes:
        kvs_store(db, w.namespace, w.key, w.record, version)


def apply_delta(db: sqlite3.Connection, delta: VarDelta, now: float, version: int) -> None:
    """Add a delta to a number variable (0 when missing or expired at ``now``)."""
    k = delta.key
    row = db.execute(
        "SELECT value FROM variables WHERE bot_id = ? AND scope = ? AND owner = ? AND name = ? "
        "AND (expires_at IS NULL OR expires_at > ?)",
        (k.bot_id, k.scope, k.owner, k.name, now),
    ).fetchone()
    text = add_to_number(None if row is None else row[0], delta.by)
    var = StoredVar(k, text, now, delta.expires_at)
    db.execute(UPSERT_VAR, var_params(var, version))


def check_turn(db: sqlite3.Connection, write: TurnWrite, *, rows_unchanged: bool = False) -> None:
    """Raise ConflictError unless everything the turn read is as it read it."""
    if not rows_unchanged:
        check_rows(db, write)
    for kc in write.kvs_checks:
        live = kvs_live(db, kc.namespace, kc.key, write.now)
        if (0 if live is None else live.version) != kc.version:
            raise ConflictError(f"key {kc.key!r} changed since the turn read it")
    for pc in write.kvs_prefix_checks:
        if kvs_versions(db, pc.namespace, pc.prefix, write.now) != pc.versions:
            raise ConflictError(f"keys under {pc.prefix!r} changed since the turn listed them")


def check_rows(db: sqlite3.Connection, write: TurnWrite) -> None:
    """Raise ConflictError unless the session and variables the turn read are unchanged."""
    s = write.session
    if s is not None and write.session_version is not None:
        row = db.execute(
            "SELECT version FROM sessions WHERE bot_id = ? AND key = ?", (s.bot_id, s.key)
        ).fetchone()
        if (0 if row is None else row[0]) != write.session_version:
            raise ConflictError(f"session {s.key} changed since the turn loaded it")
    owned: dict[tuple[str, str, str], dict[str, int]] = {}  # read whole: one query each
    for scope in write.scope_checks:
        rows = db.execute(
            "SELECT name, version FROM variables WHERE bot_id = ? AND scope = ? AND owner = ?",
            (scope.bot_id, scope.scope, scope.owner),
        )
        versions = owned[(scope.bot_id, scope.scope, scope.owner)] = dict(rows.fetchall())
        if versions.keys() != scope.names:
            raise ConflictError(f"{scope.scope} memory changed since the turn read it all")
    for check in write.checks:
        k = check.key
        known = owned.get((k.bot_id, k.scope, k.owner))
        if known is not None:
            version = known.get(k.name, 0)
        else:
            row = db.execute(
                "SELECT version FROM variables WHERE bot_id = ? AND scope = ? AND owner = ? "
                "AND name = ?",
                (k.bot_id, k.scope, k.owner, k.name),
            ).fetchone()
            version = 0 if row is None else row[0]
        if version != check.version:
            raise ConflictError(f"{k.scope} variable {k.name!r} changed since it was read")


# -- key-value store -------------------------------------------------------------
def kvs_live(db: sqlite3.Connection, namespace: str, key: str, now: float) -> KvsRecord | None:
    """Return the record of ``key`` unless it is missing or expired at ``now``."""
    row = db.execute(
        "SELECT value, expires_at, version FROM kvs WHERE namespace = ? AND key = ? "
        "AND (expires_at IS NULL OR expires_at > ?)",
        (namespace, key, now),
    ).fetchone()
    return None if row is None else KvsRecord(row[0], row[1], row[2])


def kvs_versions(
    db: sqlite3.Connection, namespace: str, prefix: str, now: float
) -> tuple[tuple[str, int], ...]:
    """Return ``((key, version), ...)`` of the live keys under ``prefix``, sorted."""
    rows = db.execute(
        "SELECT key, version FROM kvs WHERE namespace = ? AND key >= ? AND substr(key, 1, ?) = ? "
        "AND (expires_at IS NULL OR expires_at > ?) ORDER BY key",
        (namespace, prefix, len(prefix), prefix, now),
    )
    return tuple((row[0], row[1]) for row in rows)


def kvs_store(
    db: sqlite3.Connection,
    namespace: str,
    key: str,
    record: KvsRecord | None,
    version: int | None = None,
) -> None:
    """Write the record of ``key`` (with ``version``, else a new one), or delete it."""
    if record is None:
        db.execute("DELETE FROM kvs WHERE namespace = ? AND key = ?", (namespace, key))
    else:
        db.execute(
            "INSERT OR REPLACE INTO kvs (namespace, key, value, expires_at, version) "
            "VALUES (?,?,?,?,?)",
            (namespace, key, record.value, record.expires_at, version or new_version()),
        )


def kvs_modify(
    db: sqlite3.Connection, namespace: str, key: str, now: float, modify: KvsModifier[T]
) -> T:
    """Replace the live record of ``key`` by what ``modify`` makes of it; return its result."""
    record, result = modify(kvs_live(db, namespace, key, now))
    kvs_store(db, namespace, key, record)
    return result


def kvs_delete(db: sqlite3.Connection, namespace: str, key: str, now: float) -> bool:
    """Delete ``key``; return whether it was live."""
    live = kvs_live(db, namespace, key, now) is not None
    kvs_store(db, namespace, key, None)
    return live


def kvs_keys(db: sqlite3.Connection, namespace: str, prefix: str, now: float) -> list[str]:
    """Return the live keys that start with ``prefix``, sorted."""
    rows = db.execute(
        "SELECT key FROM kvs WHERE namespace = ? AND key >= ? AND substr(key, 1, ?) = ? "
        "AND (expires_at IS NULL OR expires_at > ?) ORDER BY key",
        (namespace, prefix, len(prefix), prefix, now),
    )
    return [row[0] for row in rows]


def kvs_delete_prefix(db: sqlite3.Connection, namespace: str, prefix: str) -> int:
    """Delete the keys that start with ``prefix``, expired or not; return how many."""
    return db.execute(
        "DELETE FROM kvs WHERE namespace = ? AND key >= ? AND substr(key, 1, ?) = ?",
        (namespace, prefix, len(prefix), prefix),
    ).rowcount


# -- users -------------------------------------------------------------------------
def load_user(db: sqlite3.Connection, bot_id: str, user_key: str) -> UserRecords:
    """Read a user's variables, sessions and the variables of those sessions."""
    user = db.execute(
        f"SELECT {VAR_COLUMNS} FROM variables WHERE bot_id = ? AND scope = 'user' AND owner = ?",
        (bot_id, user_key),
    ).fetchall()
    sessions = [
        session_from_row(r)
        for r in db.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE bot_id = ? AND user_key = ?",
            (bot_id, user_key),
        )
    ]
    owned = [
        var_from_row(r)
        for s in sessions
        for r in db.execute(
            f"SELECT {VAR_COLUMNS} FROM variables WHERE bot_id = ? "
            "AND scope IN ('session', 'temp') AND owner = ?",
            (bot_id, s.key),
        )
    ]
    return UserRecords(
        [var_from_row(r) for r in user],
        sessions,
        [v for v in owned if v.key.scope == "session"],
        [v for v in owned if v.key.scope == "temp"],
    )


def delete_user(db: sqlite3.Connection, bot_id: str, user_key: str) -> dict[str, int]:
    """Delete a user's variables, sessions and session variables; return the counts."""
    counts = {
        "user_variables": db.execute(
            "DELETE FROM variables WHERE bot_id = ? AND scope = 'user' AND owner = ?",
            (bot_id, user_key),
        ).rowcount,
        "sessions": 0,
        "session_variables": 0,
    }
    keys = db.execute(
        "SELECT key FROM sessions WHERE bot_id = ? AND user_key = ?", (bot_id, user_key)
    ).fetchall()
    for (key,) in keys:
        counts["session_variables"] += db.execute(
            "DELETE FROM variables WHERE bot_id = ? AND scope IN ('session', 'temp') AND owner = ?",
            (bot_id, key),
        ).rowcount
        counts["sessions"] += db.execute(
            "DELETE FROM sessions WHERE bot_id = ? AND key = ?", (bot_id, key)
        ).rowcount
    return counts


def checkpoint(db: sqlite3.Connection) -> bool:
    """Copy the WAL into the database file and truncate it, so erased values leave both.

    Return whether it did: not while another connection reads or writes the WAL
    (SQLite's busy flag). It does not wait for them; the caller tries again.
    """
    db.execute("PRAGMA busy_timeout = 0")
    try:
        busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    return not busy


# -- retention and the janitor -------------------------------------------------------
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


def get_meta(db: sqlite3.Connection, name: str) -> str | None:
    """Return the value of the meta entry ``name``, or None."""
    row = db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(db: sqlite3.Connection, name: str, value: str) -> None:
    """Set the meta entry ``name`` to ``value``."""
    db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))
