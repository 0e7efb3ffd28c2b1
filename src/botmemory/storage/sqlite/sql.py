"""The SQL of the SQLite backend's operations: turns, the key-value store and users.

The schema is in :mod:`.schema`, the janitor's SQL in :mod:`.janitor_sql`. Each
function runs the SQL of one storage operation on a ``sqlite3.Connection``,
synchronously, on the event loop's thread or the backend's worker thread
(:mod:`.connection`). The caller owns the transaction
(``SqliteStorage._write``) and translates driver errors; :func:`load_turn` reads in
one statement, so that it sees one snapshot without a transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Final, TypeVar

from botmemory.errors import ConflictError
from botmemory.storage.base import (
    KvsModifier,
    KvsRecord,
    SessionRecord,
    StoredVar,
    TurnKeys,
    TurnSnapshot,
    TurnWrite,
    UserRecords,
    VarDelta,
    VarKey,
    add_to_number,
    kvs_added,
    new_version,
)
from botmemory.storage.sqlite.schema import set_busy_timeout

T = TypeVar("T")

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
    UNION ALL
    SELECT 4, user_key, started_at, last_seen, expires_at, temp_expires_at, version
        FROM sessions WHERE bot_id = ?1 AND key = ?3
"""
"""A turn's variables and its session, in one statement (so one snapshot, without a
transaction around it): the key's scope as a number (its bot and owner are the
parameters), then the rest of the row; fewer columns, fewer objects. The session's
row (scope 4) is ``user_key`` and the rest of ``SESSION_COLUMNS`` after it."""
_SESSION: Final = 4
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


def vars_by_scope(
    rows: Iterable[Sequence[Any]], keys: TurnKeys
) -> tuple[list[list[StoredVar]], SessionRecord | None]:
    """Build the variables of rows of ``LOAD_TURN`` (user, bot, session and temp) and
    its session, if it has one.

    The named tuples are made by ``tuple.__new__`` (twice as fast: a turn loads dozens).
    """
    b, u, s = keys.bot_id, keys.user_key, keys.session_key
    owners = (("user", b, u), ("bot", b, ""), ("session", b, s), ("temp", b, s))
    found: list[list[StoredVar]] = [[], [], [], []]
    session: SessionRecord | None = None
    new: Any = tuple.__new__
    for r in rows:
        scope = r[0]
        if scope == _SESSION:
            session = SessionRecord(b, s, *r[1:])
            continue
        key = new(VarKey, (*owners[scope], r[1]))
        found[scope].append(new(StoredVar, (key, r[2], r[3], r[4], r[5], r[6])))
    return found, session


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


# -- turns ---------------------------------------------------------------------
def load_turn(
    db: sqlite3.Connection, keys: TurnKeys, data_version: int | None = None
) -> TurnSnapshot:
    """Read a turn's variables and session, in one statement: one snapshot.

    ``data_version``: the value of ``PRAGMA data_version`` last seen on ``db``, if the
    caller keeps it (it is read here otherwise). An older one is safe: the stamp then
    only differs more often, and the commit checks more.
    """
    loaded = stamp(db, data_version)  # no newer than the snapshot the read below sees
    rows = db.execute(LOAD_TURN, (keys.bot_id, keys.user_key, keys.session_key))
    (user, bot, session_vars, temp), session = vars_by_scope(rows, keys)
    return TurnSnapshot(user, bot, session, session_vars, temp, loaded)


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
    """Check a turn, then write it: resets, deletes, upserts, deltas, session, KVS, KVS deltas.

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
    for kd in write.kvs_deltas:
        record = kvs_added(kvs_row(db, kd.namespace, kd.key), kd, write.now)
        kvs_store(db, kd.namespace, kd.key, record, version)


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
        if not check.holds(version):
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


def kvs_row(db: sqlite3.Connection, namespace: str, key: str) -> KvsRecord | None:
    """Return the record of ``key`` as stored, expired or not."""
    row = db.execute(
        "SELECT value, expires_at, version FROM kvs WHERE namespace = ? AND key = ?",
        (namespace, key),
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
        set_busy_timeout(db, wait=True)
    return not busy
