"""The SQL of a PostgreSQL commit, composed of the parts a turn needs.

A turn's read and write statements are each one statement of common table expressions,
but only of those the turn uses: a turn that resets no scope, deletes nothing and
touches no key-value record sends a statement without those parts. Each shape is
prepared once per connection and its plan cached, so a part left out costs nothing,
and a cached generic plan has no step that could scan beyond the turn's own rows.

Every part looks rows up by their whole key, or by a key prefix that names one owner
(``bot_id, scope, owner`` of ``variables_pkey``): whatever the plan, no step reads
another owner's rows. ``tests/storage/test_postgres_plans.py`` checks the generic plan
of every shape.

``$?`` in a part stands for its next parameter; :func:`compose` numbers them.
"""

from __future__ import annotations

import functools
import itertools
import re
from typing import Final, NamedTuple

from botmemory.storage.postgres.sql import SESSION_COLUMNS, VAR_COLUMNS

__all__ = ["ReadShape", "WriteShape", "compose", "read_statement", "write_statement"]


def compose(template: str, first: int = 1) -> str:
    """Number the ``$?`` placeholders of ``template`` from ``$first`` on."""
    numbers = itertools.count(first)
    return re.sub(r"\$\?", lambda _: f"${next(numbers)}", template)


# -- the read: what a commit checks, its rows locked ----------------------------------------
_READS: Final = {
    "vars": (
        """SELECT v.bot_id, v.scope, v.owner, v.name, v.value, v.expires_at, v.version
        FROM unnest($?::text[], $?::text[], $?::text[], $?::text[])
            AS k (bot_id, scope, owner, name)
        JOIN variables v ON v.bot_id = k.bot_id AND v.scope = k.scope AND v.owner = k.owner
            AND v.name = k.name
        FOR UPDATE OF v""",
        "SELECT 'v', bot_id, scope, owner, name, value, expires_at, version FROM vars",
    ),
    "scoped": (
        """SELECT v.bot_id, v.scope, v.owner, v.name, v.version
        FROM unnest($?::text[], $?::text[], $?::text[]) AS k (bot_id, scope, owner)
        JOIN variables v ON v.bot_id = k.bot_id AND v.scope = k.scope AND v.owner = k.owner
        FOR KEY SHARE OF v""",
        "SELECT 's', bot_id, scope, owner, name, NULL, NULL, version FROM scoped",
    ),
    "session": (
        "SELECT version FROM sessions WHERE bot_id = $?::text AND key = $?::text FOR UPDATE",
        "SELECT 'r', NULL, NULL, NULL, NULL, NULL, NULL, version FROM session",
    ),
    "keyed": (
        """SELECT k.namespace, k.key, k.value, k.expires_at, k.version
        FROM unnest($?::text[], $?::text[]) AS q (namespace, key)
        JOIN kvs k ON k.namespace = q.namespace AND k.key = q.key
        FOR UPDATE OF k""",
        "SELECT 'k', namespace, key, NULL, NULL, value, expires_at, version FROM keyed",
    ),
    "prefixed": (
        """SELECT p.i, k.key, k.expires_at, k.version
        FROM unnest($?::text[], $?::text[], $?::text[]) WITH ORDINALITY
            AS p (namespace, prefix, stop, i),
        LATERAL (SELECT key, expires_at, version FROM kvs
            WHERE namespace = p.namespace AND key >= p.prefix AND key < p.stop
            FOR UPDATE OFFSET 0) AS k""",
        "SELECT 'p', i::text, key, NULL, NULL, NULL, expires_at, version FROM prefixed",
    ),
    "prefixed_open": (  # the same prefixes: those without an end run to the namespace's end
        """SELECT p.i, k.key, k.expires_at, k.version
        FROM unnest($?::text[], $?::text[], $?::text[]) WITH ORDINALITY
            AS p (namespace, prefix, stop, i),
        LATERAL (SELECT key, expires_at, version FROM kvs
            WHERE namespace = p.namespace AND key >= p.prefix AND p.stop IS NULL
            FOR UPDATE OFFSET 0) AS k""",
        "SELECT 'p', i::text, key, NULL, NULL, NULL, expires_at, version FROM prefixed_open",
    ),
}


class ReadShape(NamedTuple):
    """Which parts a commit's read has."""

    vars: bool
    scoped: bool
    session: bool
    keyed: bool
    prefixed: bool
    prefixed_open: bool


@functools.cache
def read_statement(shape: ReadShape) -> str:
    """Return the read of ``shape``: rows of (kind, key..., value, expiry, version).

    Kinds: ``v`` a variable ($ bot, scope, owner, name arrays), ``s`` a variable of a
    whole scope (bot, scope, owner arrays; its rows locked against deletes only, so that
    turns that list the same scope do not wait for each other), ``r`` the session (bot,
    key), ``k`` a KVS key checked or added to (namespace, key arrays), ``p`` a key under
    a prefix, with the prefix's 1-based number (namespace, prefix, end-or-NULL arrays,
    twice: for the prefixes with an end, then those without); parameters in that order.
    A prefix with an end is an index range; one without (see ``prefix_end``) runs to the
    namespace's end, all its own keys.
    """
    names = [name for name, wanted in zip(_READS, shape, strict=True) if wanted]
    ctes = ",\n".join(f"{name} AS ({_READS[name][0]})" for name in names)
    selects = "\nUNION ALL ".join(_READS[name][1] for name in names)
    return compose(f"WITH {ctes}\n{selects}")


# -- the write: a turn's changes as one statement --------------------------------------------
class WriteShape(NamedTuple):
    """Which parts a commit's write has."""

    session: bool
    reset: bool
    deletes: bool
    upserts: bool
    kvs_writes: bool
    kvs_deletes: bool


_UPSERTS: Final = f"""upserts AS (
    SELECT * FROM unnest($?::text[], $?::text[], $?::text[], $?::text[], $?::text[],
                         $?::float8[], $?::float8[], $?::text[]) AS u ({VAR_COLUMNS})
)"""
_WRITTEN: Final = f"""written AS (
    INSERT INTO variables ({VAR_COLUMNS}, version) SELECT *, $1::bigint FROM upserts
    ON CONFLICT (bot_id, scope, owner, name) DO UPDATE SET
        value = excluded.value, changed_at = excluded.changed_at,
        expires_at = excluded.expires_at, field_times = excluded.field_times,
        version = excluded.version
)"""
_NOT_UPSERTED: Final = """
    AND (v.bot_id, v.scope, v.owner, v.name) NOT IN (
        SELECT bot_id, scope, owner, name FROM upserts)"""
_RESET: Final = """reset AS (
    DELETE FROM variables v
    WHERE v.bot_id = $2::text AND v.scope = ANY ($9::text[]) AND v.owner = $3::text{keep}
)"""
_DELETES: Final = """removed AS (
    DELETE FROM variables v
    USING unnest($?::text[], $?::text[], $?::text[], $?::text[])
        AS d (bot_id, scope, owner, name)
    WHERE v.bot_id = d.bot_id AND v.scope = d.scope AND v.owner = d.owner
        AND v.name = d.name{unreset}{keep}
)"""
_UNRESET: Final = """
        AND NOT (v.bot_id = $2::text AND v.scope = ANY ($9::text[]) AND v.owner = $3::text)"""
_KVS_WRITES: Final = """kvs_written AS (
    INSERT INTO kvs (namespace, key, value, expires_at, version)
    SELECT *, $1::bigint FROM unnest($?::text[], $?::text[], $?::text[], $?::float8[])
    ON CONFLICT (namespace, key) DO UPDATE SET
        value = excluded.value, expires_at = excluded.expires_at, version = excluded.version
)"""
_KVS_DELETES: Final = """kvs_removed AS (
    DELETE FROM kvs k USING unnest($?::text[], $?::text[]) AS d (namespace, key)
    WHERE k.namespace = d.namespace AND k.key = d.key
)"""
_SESSION: Final = f"""
INSERT INTO sessions ({SESSION_COLUMNS}, version)
VALUES ($2::text, $3::text, $4::text, $5::float8, $6::float8, $7::float8, $8::float8, $1::bigint)
ON CONFLICT (bot_id, key) DO UPDATE SET
    user_key = excluded.user_key, started_at = excluded.started_at,
    last_seen = excluded.last_seen, expires_at = excluded.expires_at,
    temp_expires_at = excluded.temp_expires_at, version = excluded.version"""


@functools.cache
def write_statement(shape: WriteShape) -> str:
    """Return the write of ``shape``.

    Parameters: $1 the commit's version; with a session, $2-$8 its columns; with a
    reset, $9 the scopes to reset; then, for each part present in this order, its
    arrays: the variables to write (8, deltas already added), the keys to delete (4),
    the KVS records to store (4), the KVS keys to delete (2). A reset needs the session.

    The parts of one statement run on one snapshot in no set order, so they must touch
    different rows: the reset leaves out the rows the upserts rewrite, and the deletes
    also those the reset deletes, which gives "resets, then deletes, then upserts".
    """
    if shape.reset and not shape.session:
        raise ValueError("a reset needs the session")
    keep = _NOT_UPSERTED if shape.upserts else ""
    parts = [_UPSERTS] if shape.upserts else []
    if shape.reset:
        parts.append(_RESET.format(keep=keep))
    if shape.deletes:
        parts.append(_DELETES.format(unreset=_UNRESET if shape.reset else "", keep=keep))
    if shape.upserts:
        parts.append(_WRITTEN)
    if shape.kvs_writes:
        parts.append(_KVS_WRITES)
    if shape.kvs_deletes:
        parts.append(_KVS_DELETES)
    main = _SESSION if shape.session else "\nSELECT $1::bigint"
    head = f"WITH {', '.join(parts)}" if parts else ""
    first = 10 if shape.reset else 9 if shape.session else 2
    return compose(head + main, first)
