"""The SQL of the PostgreSQL backend: its schema, built by migrations, and its queries.

Migrations are an append-only list. Each runs in its own transaction and records its
number in ``schema_version``; processes that start at once apply them one at a time,
under an advisory lock. A database whose version is newer than this code knows is
refused: an older botmemory must not write to a schema it does not understand.

Text keys use ``COLLATE "C"``: keys sort by code point, as Python sorts strings, and
compare byte by byte, the fastest PostgreSQL can. Times are ``double precision`` epoch
seconds from the injected clock: no expiry decision reads the server's clock.

Queries use unqualified names: every connection's ``search_path`` is botmemory's
schema. Batches travel as parallel arrays (``unnest($1::text[], ...)``), so a janitor
batch or a turn's writes are one statement: one round trip, one transaction.
"""

from __future__ import annotations

from typing import Any, Final

from botmemory.errors import SchemaVersionError

MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE variables (
        bot_id text COLLATE "C" NOT NULL,
        scope text COLLATE "C" NOT NULL,
        owner text COLLATE "C" NOT NULL,
        name text COLLATE "C" NOT NULL,
        value text NOT NULL,
        changed_at double precision NOT NULL,
        expires_at double precision,
        field_times text,
        PRIMARY KEY (bot_id, scope, owner, name)
    );
    CREATE INDEX variables_expiry ON variables (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE sessions (
        bot_id text COLLATE "C" NOT NULL,
        key text COLLATE "C" NOT NULL,
        user_key text COLLATE "C" NOT NULL,
        started_at double precision NOT NULL,
        last_seen double precision NOT NULL,
        expires_at double precision NOT NULL,
        temp_expires_at double precision,
        PRIMARY KEY (bot_id, key)
    );
    CREATE INDEX sessions_user ON sessions (bot_id, user_key);
    CREATE INDEX sessions_expiry ON sessions (expires_at);
    CREATE INDEX sessions_temp_expiry ON sessions (temp_expires_at)
        WHERE temp_expires_at IS NOT NULL;
    CREATE TABLE kvs (
        namespace text COLLATE "C" NOT NULL,
        key text COLLATE "C" NOT NULL,
        value text NOT NULL,
        expires_at double precision,
        PRIMARY KEY (namespace, key)
    );
    CREATE INDEX kvs_expiry ON kvs (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE meta (name text COLLATE "C" PRIMARY KEY, value text NOT NULL);
    """,
    # 2: row versions (random 62-bit ids, never 0), and the commit's lock taker.
    """
    ALTER TABLE variables ADD COLUMN version bigint NOT NULL
        DEFAULT (1 + floor(random() * 4611686018427387903))::bigint;
    ALTER TABLE sessions ADD COLUMN version bigint NOT NULL
        DEFAULT (1 + floor(random() * 4611686018427387903))::bigint;
    ALTER TABLE kvs ADD COLUMN version bigint NOT NULL
        DEFAULT (1 + floor(random() * 4611686018427387903))::bigint;
    CREATE FUNCTION botmemory_lock(keys bigint[], exclusive boolean[]) RETURNS void
    LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
        FOR i IN 1 .. coalesce(array_length(keys, 1), 0) LOOP
            IF exclusive[i] THEN
                PERFORM pg_advisory_xact_lock(keys[i]);
            ELSE
                PERFORM pg_advisory_xact_lock_shared(keys[i]);
            END IF;
        END LOOP;
    END $$;
    """,
    # 3: a turn's session lock and load in one round trip (see LOCK_LOAD_TURN).
    """
    CREATE FUNCTION botmemory_lock_load_turn(
        p_bot text, p_user text, p_session text, p_lock bigint
    ) RETURNS TABLE (
        s_user_key text, s_started_at double precision, s_last_seen double precision,
        s_expires_at double precision, s_temp_expires_at double precision, s_version bigint,
        v_scope text, v_owner text, v_name text, v_value text, v_changed_at double precision,
        v_expires_at double precision, v_field_times text, v_version bigint
    ) LANGUAGE plpgsql VOLATILE AS $fn$
    BEGIN
        PERFORM pg_advisory_lock(p_lock);
        RETURN QUERY
        SELECT s.user_key, s.started_at, s.last_seen, s.expires_at, s.temp_expires_at,
               s.version, v.scope, v.owner, v.name, v.value, v.changed_at, v.expires_at,
               v.field_times, v.version
        FROM (VALUES (1)) AS one (x)
        LEFT JOIN sessions s ON s.bot_id = p_bot AND s.key = p_session
        LEFT JOIN (
            SELECT t.scope, t.owner, t.name, t.value, t.changed_at, t.expires_at,
                   t.field_times, t.version
            FROM variables t WHERE t.bot_id = p_bot AND t.scope = 'user' AND t.owner = p_user
            UNION ALL SELECT t.scope, t.owner, t.name, t.value, t.changed_at, t.expires_at,
                   t.field_times, t.version
            FROM variables t WHERE t.bot_id = p_bot AND t.scope = 'bot' AND t.owner = ''
            UNION ALL SELECT t.scope, t.owner, t.name, t.value, t.changed_at, t.expires_at,
                   t.field_times, t.version
            FROM variables t WHERE t.bot_id = p_bot AND t.scope = 'session'
                AND t.owner = p_session
            UNION ALL SELECT t.scope, t.owner, t.name, t.value, t.changed_at, t.expires_at,
                   t.field_times, t.version
            FROM variables t WHERE t.bot_id = p_bot AND t.scope = 'temp'
                AND t.owner = p_session
        ) AS v ON true;
    END $fn$;
    """,
)


def quote_ident(name: str) -> str:
    """Quote an identifier for SQL (case is kept)."""
    return '"' + name.replace('"', '""') + '"'


async def apply_migrations(conn: Any, schema: str, lock_key: int) -> int:
    """Create ``schema`` if missing and apply the migrations it lacks; return its version.

    ``conn`` is an asyncpg connection whose ``search_path`` is ``schema``. Holds the
    advisory lock ``lock_key`` meanwhile, so that concurrent callers wait their turn.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
    try:
        if not await conn.fetchval("SELECT true FROM pg_namespace WHERE nspname = $1", schema):
            await conn.execute(f"CREATE SCHEMA {quote_ident(schema)}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {quote_ident(schema)}.schema_version ("
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        version: int = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
        if version > len(MIGRATIONS):
            raise SchemaVersionError(
                f"database schema {schema!r} is at version {version}, newer than this "
                f"botmemory knows ({len(MIGRATIONS)}): upgrade botmemory"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            async with conn.transaction():
                await conn.execute(script)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
        return len(MIGRATIONS)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)


# -- queries ---------------------------------------------------------------------------
VAR_COLUMNS: Final = "bot_id, scope, owner, name, value, changed_at, expires_at, field_times"
SESSION_COLUMNS: Final = "bot_id, key, user_key, started_at, last_seen, expires_at, temp_expires_at"
VAR_ROW: Final = f"{VAR_COLUMNS}, version"
SESSION_ROW: Final = f"{SESSION_COLUMNS}, version"

# -- advisory locks ------------------------------------------------------------------------
LOCK: Final = "SELECT true FROM pg_advisory_lock($1)"
TRY_LOCK: Final = "SELECT pg_try_advisory_lock($1)"
UNLOCK: Final = "SELECT pg_advisory_unlock($1)"
XACT_LOCKS: Final = "SELECT botmemory_lock($1::bigint[], $2::boolean[])"
"""Take transaction locks $1 in this order, exclusive where $2 (else shared)."""


BEGIN_TURN: Final = (
    "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL plan_cache_mode = force_generic_plan"
)
"""A turn's commit reads, after its locks, what committed before they were granted (in
READ COMMITTED, whatever the database's default), and runs its statements' cached
generic plans, never planning them anew.

Left to itself, the server keeps making a custom plan for each run of a statement whose
parameters are arrays: planning then costs more than running. The generic plan of every
commit statement finds its rows by their owner or key (``turn_sql``; checked by
``tests/storage/test_postgres_plans.py``). ``SET LOCAL``: only until the commit ends.
"""


def begin_locked(keys: list[int], exclusive: list[bool]) -> str:
    """Return :data:`BEGIN_TURN` and ``XACT_LOCKS`` of ``keys`` as one query: one round
    trip.

    A query of several statements takes no parameters: the keys and flags are written
    in, which is safe as they are integers and booleans.
    """
    if not keys:
        return BEGIN_TURN
    numbers = ",".join(str(int(k)) for k in keys)
    flags = ",".join("t" if e else "f" for e in exclusive)
    locks = f"SELECT botmemory_lock('{{{numbers}}}'::bigint[], '{{{flags}}}'::boolean[])"
    return f"{BEGIN_TURN}; {locks}"


# -- turns -----------------------------------------------------------------------------------
_OWNED: Final = (
    "SELECT {columns} FROM variables WHERE bot_id = $1 AND scope = '{scope}' AND owner = "
)
_TURN_VAR: Final = "scope, owner, name, value, changed_at, expires_at, field_times, version"
LOAD_TURN: Final = f"""
    SELECT s.user_key, s.started_at, s.last_seen, s.expires_at, s.temp_expires_at, s.version,
           v.scope, v.owner, v.name, v.value, v.changed_at, v.expires_at, v.field_times,
           v.version
    FROM (VALUES (1)) AS one (x)
    LEFT JOIN sessions s ON s.bot_id = $1 AND s.key = $3
    LEFT JOIN (
        {_OWNED.format(columns=_TURN_VAR, scope="user")}$2
        UNION ALL {_OWNED.format(columns=_TURN_VAR, scope="bot")}''
        UNION ALL {_OWNED.format(columns=_TURN_VAR, scope="session")}$3
        UNION ALL {_OWNED.format(columns=_TURN_VAR, scope="temp")}$3
    ) AS v ON true
"""
"""One row per variable of the turn (one row of NULLs if none), each with the session."""
LOCK_LOAD_TURN: Final = "SELECT * FROM botmemory_lock_load_turn($1, $2, $3, $4)"
"""Take the session-level advisory lock $4, waiting, then return what ``LOAD_TURN``
returns for $1-$3: one round trip instead of two.

In one statement the lock would come too late: the statement's snapshot is taken
before the lock it waits for, so it could miss the commit of the turn it waited for.
The statements of a ``VOLATILE`` function each take a fresh snapshot: the load sees
every commit made before the lock was granted.
"""

# -- key-value store --------------------------------------------------------------------
KVS_GET: Final = """
    SELECT value, expires_at, version FROM kvs WHERE namespace = $1 AND key = $2
        AND (expires_at IS NULL OR expires_at > $3)
"""
KVS_PUT: Final = """
    INSERT INTO kvs (namespace, key, value, expires_at, version)
    SELECT $1, $2, $3, $4, $5 FROM botmemory_lock($6::bigint[], $7::boolean[])
    ON CONFLICT (namespace, key) DO UPDATE SET
        value = excluded.value, expires_at = excluded.expires_at, version = excluded.version
"""
"""Store a record ($5 its version) after taking the key's locks $6-$7 (see XACT_LOCKS)."""
KVS_LOCK_ROW: Final = (
    "SELECT value, expires_at, version FROM kvs WHERE namespace = $1 AND key = $2 FOR UPDATE"
)
KVS_UPDATE: Final = """
    UPDATE kvs SET value = $3, expires_at = $4, version = $5 WHERE namespace = $1 AND key = $2
"""
KVS_INSERT: Final = """
    INSERT INTO kvs (namespace, key, value, expires_at, version) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (namespace, key) DO NOTHING
"""
KVS_DELETE: Final = "DELETE FROM kvs WHERE namespace = $1 AND key = $2 RETURNING expires_at"
KVS_KEYS: Final = """
    SELECT key FROM kvs WHERE namespace = $1 AND key >= $2 AND key < $3
        AND (expires_at IS NULL OR expires_at > $4)
    ORDER BY key
"""
"""Live keys from $2 up to $3: the keys that start with a prefix (see ``prefix_end``)."""
KVS_KEYS_FROM: Final = """
    SELECT key FROM kvs WHERE namespace = $1 AND key >= $2
        AND (expires_at IS NULL OR expires_at > $3)
    ORDER BY key
"""
"""Live keys from $2 on: those that start with $2 when no ``prefix_end`` exists."""
KVS_DELETE_RANGE: Final = "DELETE FROM kvs WHERE namespace = $1 AND key >= $2 AND key < $3"
KVS_DELETE_FROM: Final = "DELETE FROM kvs WHERE namespace = $1 AND key >= $2"


def prefix_end(prefix: str) -> str | None:
    """Return the least string after every string that starts with ``prefix``.

    With ``COLLATE "C"`` strings sort by code point, so the keys that start with
    ``prefix`` are exactly those from ``prefix`` up to this one: an index range, and
    no LIKE pattern to escape. ``None`` when there is no such string (``prefix`` is
    empty or all U+10FFFF): then every key from ``prefix`` on starts with it.
    """
    stem = prefix.rstrip(chr(0x10FFFF))
    if not stem:
        return None
    following = ord(stem[-1]) + 1
    if following == 0xD800:  # surrogates are not text in PostgreSQL
        following = 0xE000
    return stem[:-1] + chr(following)


# -- users ------------------------------------------------------------------------------
USER_SESSIONS: Final = f"SELECT {SESSION_ROW} FROM sessions WHERE bot_id = $1 AND user_key = $2"
USER_VARS: Final = f"""
    SELECT {VAR_ROW} FROM variables WHERE bot_id = $1 AND (
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
    SELECT {VAR_ROW} FROM variables WHERE expires_at <= $1 AND scope = 'user'
    ORDER BY expires_at LIMIT $2
"""
SCAN_USER_VARS: Final = f"""
    SELECT {VAR_ROW} FROM variables
    WHERE scope = 'user' AND ($1::text IS NULL OR bot_id = $1)
        AND (bot_id, owner, name) > ($2, $3, $4)
    ORDER BY bot_id, owner, name LIMIT $5
"""
UPDATE_USER_VARS: Final = """
    WITH u AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[],
                             $6::text[], $7::float8[], $8::text[], $9::int8[])
            AS u (bot_id, scope, owner, name, changed_at, value, expires_at, field_times,
                  version)
    ), deleted AS (
        DELETE FROM variables v USING u
        WHERE u.value IS NULL AND v.bot_id = u.bot_id AND v.scope = u.scope
            AND v.owner = u.owner AND v.name = u.name AND v.changed_at = u.changed_at
            AND (u.version IS NULL OR v.version = u.version)
        RETURNING v.bot_id, v.scope, v.owner, v.name
    ), updated AS (
        UPDATE variables v
        SET value = u.value, expires_at = u.expires_at, field_times = u.field_times,
            version = DEFAULT
        FROM u
        WHERE u.value IS NOT NULL AND v.bot_id = u.bot_id AND v.scope = u.scope
            AND v.owner = u.owner AND v.name = u.name AND v.changed_at = u.changed_at
            AND (u.version IS NULL OR v.version = u.version)
        RETURNING v.bot_id, v.scope, v.owner, v.name
    )
    SELECT * FROM deleted UNION ALL SELECT * FROM updated
"""
"""Apply guarded updates ($1-$4 key, $5 and $9 guard: changed_at and version, $9 NULL
for none; $6-$8 new row, $6 NULL deletes); return the keys of those applied."""
EXPIRED_SESSIONS: Final = f"""
    SELECT {SESSION_ROW} FROM sessions WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2
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
    SELECT {SESSION_ROW} FROM sessions WHERE temp_expires_at <= $1
    ORDER BY temp_expires_at LIMIT $2
"""
CLEARED: Final = "1 + (hashtextextended(d.version::text, 0) & 4611686018427387903)"
"""The version a clear gives a session read with version ``d.version``: the same in
every janitor run, so a run can tell that another one emptied it from the same state."""
CLEAR_TEMPS: Final = f"""
    WITH emptied AS (
        UPDATE sessions s SET temp_expires_at = NULL, version = {CLEARED}
        FROM unnest($1::text[], $2::text[], $3::float8[], $4::bigint[])
            AS d (bot_id, key, temp_expires_at, version)
        WHERE s.bot_id = d.bot_id AND s.key = d.key AND (
            s.temp_expires_at = d.temp_expires_at
            OR (s.temp_expires_at IS NULL AND s.version <> {CLEARED}))
        RETURNING s.bot_id, s.key
    ), gone_vars AS (
        DELETE FROM variables v USING emptied e
        WHERE v.bot_id = e.bot_id AND v.scope = 'temp' AND v.owner = e.key
    )
    SELECT count(*) FROM emptied
"""
"""Empty the temp memory of sessions whose ``temp_expires_at`` is still the one read
($1-$4), or that a turn emptied since (a timeout flow that ended); count them. A session
that another janitor run emptied from the same state (its version is ``CLEARED``) is
left alone and not counted again."""
DELETE_EXPIRED_KVS: Final = """
    WITH gone AS (
        DELETE FROM kvs WHERE ctid = ANY (ARRAY(
            SELECT ctid FROM kvs WHERE expires_at <= $1 AND expires_at >= $3
            ORDER BY expires_at LIMIT $2)) AND expires_at <= $1
        RETURNING expires_at
    )
    SELECT count(*)::int, max(expires_at) FROM gone
"""
"""Delete a batch expired at $1 by row address, in expiry order from $3 on; return how
many and the last expiry. A row renewed meanwhile has a new address: it stays. Starting
where the previous batch ended, a run never walks the index entries of the rows it
deleted, which stay in the index until VACUUM."""

SCAN_SESSIONS: Final = f"""
    SELECT {SESSION_ROW} FROM sessions WHERE (bot_id, key) > ($1, $2)
    ORDER BY bot_id, key LIMIT $3
"""
UPDATE_SESSIONS: Final = """
    UPDATE sessions s
    SET expires_at = u.expires_at, temp_expires_at = u.temp_expires_at, version = u.new_version
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::float8[], $6::bigint[])
        AS u (bot_id, key, version, expires_at, temp_expires_at, new_version)
    WHERE s.bot_id = u.bot_id AND s.key = u.key AND s.version = u.version
    RETURNING s.bot_id, s.key
"""
"""Set the timers of sessions ($1-$2) whose version is still the one read ($3); return
the keys of those updated."""
GET_META: Final = "SELECT value FROM meta WHERE name = $1"
SET_META: Final = """
    INSERT INTO meta (name, value) VALUES ($1, $2)
    ON CONFLICT (name) DO UPDATE SET value = excluded.value
"""
