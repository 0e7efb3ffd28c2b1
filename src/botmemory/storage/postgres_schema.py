"""The PostgreSQL schema: an append-only list of migrations and the code that applies them.

Each migration runs in its own transaction and records its number in
``schema_version``. Processes that start at once apply them one at a time, under an
advisory lock, so each migration runs once. A database whose version is newer than
this code knows is refused: an older botmemory must not write to a schema it does
not understand.

Text keys use ``COLLATE "C"``: keys sort by code point, as Python sorts strings, and
comparisons are byte comparisons, the fastest PostgreSQL has. Times are
``double precision`` epoch seconds from the injected clock.
"""

from __future__ import annotations

import re
from typing import Any, Final

from botmemory.errors import ConfigError, SchemaVersionError

__all__ = ["MIGRATIONS", "apply_migrations", "check_schema_name", "quote_ident"]

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
)

_SCHEMA_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def check_schema_name(schema: str) -> str:
    """Return ``schema`` if it is a plain identifier (letters, digits, ``_``; 63 at most)."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigError(
            [
                f"database.url: schema={schema!r} is not a valid schema name: use letters, "
                "digits and '_', starting with a letter, 63 characters at most"
            ]
        )
    return schema


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
