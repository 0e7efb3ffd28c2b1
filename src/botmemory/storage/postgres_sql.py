"""The queries of the PostgreSQL backend, one constant each.

Names are unqualified: every connection's ``search_path`` is botmemory's schema.
Batches travel as parallel arrays (``unnest($1::text[], ...)``), so a janitor batch or
a turn's writes are one statement: one round trip, one transaction.
"""

from __future__ import annotations

from typing import Final

VAR_COLUMNS: Final = "bot_id, scope, owner, name, value, changed_at, expires_at, field_times"
SESSION_COLUMNS: Final = "bot_id, key, user_key, started_at, last_seen, expires_at, temp_expires_at"

# -- advisory locks ------------------------------------------------------------------------
LOCK: Final = "SELECT true FROM pg_advisory_lock($1)"
TRY_LOCK: Final = "SELECT pg_try_advisory_lock($1)"
UNLOCK: Final = "SELECT pg_advisory_unlock($1)"

# -- turns -----------------------------------------------------------------------------------
LOAD_TURN: Final = """
    SELECT s.user_key, s.started_at, s.last_seen, s.expires_at, s.temp_expires_at,
           v.scope, v.owner, v.name, v.value, v.changed_at, v.expires_at, v.field_times
    FROM (VALUES (1)) AS one (x)
    LEFT JOIN sessions s ON s.bot_id = $1 AND s.key = $3
    LEFT JOIN variables v ON v.bot_id = $1 AND (
        (v.scope = 'user' AND v.owner = $2)
        OR (v.scope = 'bot' AND v.owner = '')
        OR (v.scope IN ('session', 'temp') AND v.owner = $3)
    )
"""
"""One row per variable of the turn (one row of NULLs if none), each with the session."""

COMMIT_TURN: Final = f"""
    WITH upserts AS (
        SELECT * FROM unnest($13::text[], $14::text[], $15::text[], $16::text[], $17::text[],
                             $18::float8[], $19::float8[], $20::text[])
            AS u ({VAR_COLUMNS})
    ), removed AS (
        DELETE FROM variables v
        WHERE ((v.bot_id = $1 AND v.owner = $2 AND v.scope = ANY ($8::text[]))
               OR (v.bot_id, v.scope, v.owner, v.name) IN (
                   SELECT * FROM unnest($9::text[], $10::text[], $11::text[], $12::text[])))
          AND (v.bot_id, v.scope, v.owner, v.name) NOT IN (
              SELECT bot_id, scope, owner, name FROM upserts)
    ), written AS (
        INSERT INTO variables ({VAR_COLUMNS}) SELECT * FROM upserts
        ON CONFLICT (bot_id, scope, owner, name) DO UPDATE SET
            value = excluded.value, changed_at = excluded.changed_at,
            expires_at = excluded.expires_at, field_times = excluded.field_times
    )
    INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (bot_id, key) DO UPDATE SET
        user_key = excluded.user_key, started_at = excluded.started_at,
        last_seen = excluded.last_seen, expires_at = excluded.expires_at,
        temp_expires_at = excluded.temp_expires_at
"""
"""A turn's writes as one statement: $1-$7 the session, $8 the scopes to reset,
$9-$12 the keys to delete, $13-$20 the variables to write.

The parts of one statement run on one snapshot in no set order, so they must touch
different rows: the deletes leave out the rows the upserts rewrite, which gives the
result of "resets, then deletes, then upserts".
"""

# -- key-value store --------------------------------------------------------------------
KVS_GET: Final = """
    SELECT value, expires_at FROM kvs WHERE namespace = $1 AND key = $2
        AND (expires_at IS NULL OR expires_at > $3)
"""
KVS_UPSERT: Final = """
    INSERT INTO kvs (namespace, key, value, expires_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (namespace, key) DO UPDATE SET
        value = excluded.value, expires_at = excluded.expires_at
"""
KVS_LOCK_ROW: Final = (
    "SELECT value, expires_at FROM kvs WHERE namespace = $1 AND key = $2 FOR UPDATE"
)
KVS_UPDATE: Final = "UPDATE kvs SET value = $3, expires_at = $4 WHERE namespace = $1 AND key = $2"
KVS_INSERT: Final = """
    INSERT INTO kvs (namespace, key, value, expires_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (namespace, key) DO NOTHING
"""
KVS_DELETE: Final = "DELETE FROM kvs WHERE namespace = $1 AND key = $2 RETURNING expires_at"
_PREFIX: Final = "namespace = $1 AND key >= $2 AND left(key, char_length($2)) = $2"
"""Keys starting with $2, taken literally (no LIKE patterns); the range uses the index."""
KVS_KEYS: Final = f"""
    SELECT key FROM kvs WHERE {_PREFIX} AND (expires_at IS NULL OR expires_at > $3) ORDER BY key
"""
KVS_DELETE_PREFIX: Final = f"DELETE FROM kvs WHERE {_PREFIX}"

# -- users ------------------------------------------------------------------------------
USER_SESSIONS: Final = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE bot_id = $1 AND user_key = $2"
USER_VARS: Final = f"""
    SELECT {VAR_COLUMNS} FROM variables WHERE bot_id = $1 AND (
        (scope = 'user' AND owner = $2)
        OR (scope IN ('session', 'temp') AND owner = ANY ($3::text[])))
"""
DELETE_USER: Final = """
    WITH gone_sessions AS (
        DELETE FROM sessions WHERE bot_id = $1 AND user_key = $2 RETURNING key
    ), gone_session_vars AS (
        DELETE FROM variables WHERE bot_id = $1 AND scope IN ('session', 'temp')
            AND owner IN (SELECT key FROM gone_sessions) RETURNING 1
    ), gone_user_vars AS (
        DELETE FROM variables WHERE bot_id = $1 AND scope = 'user' AND owner = $2 RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone_user_vars)::int, (SELECT count(*) FROM gone_sessions)::int,
           (SELECT count(*) FROM gone_session_vars)::int
"""

# -- retention and the janitor ------------------------------------------------------------
EXPIRED_USER_VARS: Final = f"""
    SELECT {VAR_COLUMNS} FROM variables WHERE expires_at <= $1 AND scope = 'user'
    ORDER BY expires_at LIMIT $2
"""
SCAN_USER_VARS: Final = f"""
    SELECT {VAR_COLUMNS} FROM variables
    WHERE scope = 'user' AND ($1::text IS NULL OR bot_id = $1)
        AND (bot_id, owner, name) > ($2, $3, $4)
    ORDER BY bot_id, owner, name LIMIT $5
"""
UPDATE_USER_VARS: Final = """
    WITH u AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[],
                             $6::text[], $7::float8[], $8::text[])
            AS u (bot_id, scope, owner, name, changed_at, value, expires_at, field_times)
    ), deleted AS (
        DELETE FROM variables v USING u
        WHERE u.value IS NULL AND v.bot_id = u.bot_id AND v.scope = u.scope
            AND v.owner = u.owner AND v.name = u.name AND v.changed_at = u.changed_at
        RETURNING v.bot_id, v.scope, v.owner, v.name
    ), updated AS (
        UPDATE variables v
        SET value = u.value, expires_at = u.expires_at, field_times = u.field_times
        FROM u
        WHERE u.value IS NOT NULL AND v.bot_id = u.bot_id AND v.scope = u.scope
            AND v.owner = u.owner AND v.name = u.name AND v.changed_at = u.changed_at
        RETURNING v.bot_id, v.scope, v.owner, v.name
    )
    SELECT * FROM deleted UNION ALL SELECT * FROM updated
"""
"""Apply guarded updates ($1-$4 key, $5 guard, $6-$8 new row; $6 NULL deletes); return
the keys of those applied."""
EXPIRED_SESSIONS: Final = f"""
    SELECT {SESSION_COLUMNS} FROM sessions WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2
"""
DELETE_SESSIONS: Final = """
    WITH gone AS (
        DELETE FROM sessions s
        USING unnest($1::text[], $2::text[], $3::float8[]) AS d (bot_id, key, last_seen)
        WHERE s.bot_id = d.bot_id AND s.key = d.key AND s.last_seen = d.last_seen
        RETURNING s.bot_id, s.key
    ), gone_vars AS (
        DELETE FROM variables v USING gone
        WHERE v.bot_id = gone.bot_id AND v.scope IN ('session', 'temp') AND v.owner = gone.key
    )
    SELECT count(*) FROM gone
"""
EXPIRED_TEMPS: Final = f"""
    SELECT {SESSION_COLUMNS} FROM sessions WHERE temp_expires_at <= $1
    ORDER BY temp_expires_at LIMIT $2
"""
CLEAR_TEMPS: Final = """
    WITH emptied AS (
        UPDATE sessions s SET temp_expires_at = NULL
        FROM unnest($1::text[], $2::text[], $3::float8[]) AS d (bot_id, key, temp_expires_at)
        WHERE s.bot_id = d.bot_id AND s.key = d.key
            AND (s.temp_expires_at = d.temp_expires_at OR s.temp_expires_at IS NULL)
        RETURNING s.bot_id, s.key
    ), gone_vars AS (
        DELETE FROM variables v USING emptied e
        WHERE v.bot_id = e.bot_id AND v.scope = 'temp' AND v.owner = e.key
    )
    SELECT count(*) FROM emptied
"""
DELETE_EXPIRED_KVS: Final = """
    DELETE FROM kvs WHERE expires_at <= $1 AND (namespace, key) IN (
        SELECT namespace, key FROM kvs WHERE expires_at <= $1 LIMIT $2)
"""
"""The outer test sees a row again if a concurrent write renewed it while we waited."""

GET_META: Final = "SELECT value FROM meta WHERE name = $1"
SET_META: Final = """
    INSERT INTO meta (name, value) VALUES ($1, $2)
    ON CONFLICT (name) DO UPDATE SET value = excluded.value
"""
