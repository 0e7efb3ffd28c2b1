"""How the PostgreSQL backend commits a turn: its locks, its checks, its final rows.

A commit is one short transaction of three statements:

1. Take transaction-scoped advisory locks on every key it checks or writes, in one
   sorted order (so two commits never wait for each other in a circle): each variable,
   the session record, each KVS key, exclusively. A scope is locked shared by a
   whole-scope check and by a commit that only reads or updates stored variables of it,
   exclusively by one that may add or remove a name (an insert, a delete, a delta, a
   reset): nothing can then be added to or removed from a scope a check read, while
   turns that list a scope (bot memory, say) do not wait for each other. The namespace
   of each KVS key is locked shared, exclusively by a prefix check.
   Locks on keys, not rows, cover rows that do not exist yet, which row locks cannot.
2. Read what it checks, rows locked, so that the janitor, which takes no advisory lock
   and never creates rows, waits or is waited for: ``FOR UPDATE`` the variables whose
   values it checks, ``FOR KEY SHARE`` the rows of a scope whose names it checks (only a
   delete changes those; turns listing the same scope do not wait for each other).
   Compare the versions in Python; on a difference, roll back and raise
   :class:`ConflictError`. Deltas (of variables and of KVS numbers, whose rows are read
   locked too) are added here, with Python's own arithmetic
   (:func:`~botmemory.storage.base.add_to_number`).
3. Write everything, every row with the commit's version, in one statement.

Both statements hold only the parts a turn needs (:mod:`.turn_sql`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from botmemory.errors import ConflictError
from botmemory.storage.base import (
    CurrentVars,
    KvsRecord,
    KvsRows,
    SessionRecord,
    StoredVar,
    TurnWrite,
    VarKey,
    reset_scopes,
)
from botmemory.storage.postgres import sql, turn_sql
from botmemory.storage.postgres.pool import lock_key
from botmemory.storage.postgres.turn_sql import ReadShape, WriteShape

__all__ = [
    "commit_locks",
    "kvs_locks",
    "read_statement",
    "session_params",
    "verify",
    "write_statement",
]

Locks = tuple[list[int], list[bool]]


class Current(NamedTuple):
    """What a commit's read found for its deltas: variables (value, expiry) and KVS
    records, expired or not."""

    vars: CurrentVars
    kvs: KvsRows


def _sorted_locks(wanted: dict[int, bool]) -> Locks:
    keys = sorted(wanted)
    return keys, [wanted[k] for k in keys]


def kvs_locks(schema: str, namespace: str, key: str) -> Locks:
    """Return the locks a write of one KVS key takes outside a turn."""
    return _sorted_locks(
        {
            lock_key("kvs-namespace", schema, namespace): False,
            lock_key("kvs", schema, namespace, key): True,
        }
    )


def commit_locks(schema: str, write: TurnWrite) -> Locks:
    """Return the advisory locks of ``write``: keys sorted, and which are exclusive."""
    wanted: dict[int, bool] = {}

    def want(exclusive: bool, kind: str, *parts: str) -> None:
        key = lock_key(kind, schema, *parts)
        wanted[key] = wanted.get(key, False) or exclusive

    for k, renames in _var_keys(write).items():
        want(True, "var", k.bot_id, k.scope, k.owner, k.name)
        want(renames, "scope", k.bot_id, k.scope, k.owner)
    for sc in write.scope_checks:
        want(False, "scope", sc.bot_id, sc.scope, sc.owner)
    s = write.session
    if s is not None:
        want(True, "session-row", s.bot_id, s.key)
        for scope in reset_scopes(write):
            want(True, "scope", s.bot_id, scope, s.key)
    for ns, key in _kvs_keys(write, checked=True):
        want(True, "kvs", ns, key)
        want(False, "kvs-namespace", ns)
    for pc in write.kvs_prefix_checks:
        want(True, "kvs-namespace", pc.namespace)
    return _sorted_locks(wanted)


def _kvs_keys(write: TurnWrite, *, checked: bool) -> list[tuple[str, str]]:
    """The KVS keys ``write`` adds to and writes, and with ``checked`` those it checks."""
    keys = [(d.namespace, d.key) for d in write.kvs_deltas]
    keys += [(w.namespace, w.key) for w in write.kvs_writes]
    if checked:
        keys += [(c.namespace, c.key) for c in write.kvs_checks]
    return keys


def _var_keys(write: TurnWrite) -> dict[VarKey, bool]:
    """Return every variable ``write`` checks or writes, and whether it may add or remove
    a name of its scope: a delete, a delta (it may create), an upsert of a variable the
    turn did not find stored. An upsert checked against a stored version only changes
    a value: if the check holds, the row is there, and its scope keeps its names."""
    stored = {c.key for c in write.checks if c.version != 0}
    keys = dict.fromkeys([c.key for c in write.checks], False)
    for v in write.upserts:
        keys[v.key] = keys.get(v.key, False) or v.key not in stored
    for k in [*write.deletes, *(d.key for d in write.deltas)]:
        keys[k] = True
    return keys


def read_statement(write: TurnWrite) -> tuple[str, list[Any]] | None:
    """Return the read of ``write`` and its parameters, or ``None`` if it reads nothing."""
    var_keys = sorted({c.key for c in write.checks} | {d.key for d in write.deltas})
    s = write.session
    checks_session = s is not None and write.session_version is not None
    prefixes = [(p.namespace, p.prefix, sql.prefix_end(p.prefix)) for p in write.kvs_prefix_checks]
    keyed = sorted({(c.namespace, c.key) for c in write.kvs_checks} | set(_delta_keys(write)))
    shape = ReadShape(
        bool(var_keys),
        bool(write.scope_checks),
        checks_session,
        bool(keyed),
        any(p[2] is not None for p in prefixes),
        any(p[2] is None for p in prefixes),
    )
    if not any(shape):
        return None
    params: list[Any] = []
    if shape.vars:
        params += _columns([(k.bot_id, k.scope, k.owner, k.name) for k in var_keys], 4)
    if shape.scoped:
        params += _columns([(c.bot_id, c.scope, c.owner) for c in write.scope_checks], 3)
    if s is not None and checks_session:
        params += [s.bot_id, s.key]
    if shape.keyed:
        params += _columns(keyed, 2)
    if shape.prefixed or shape.prefixed_open:
        params += _columns(prefixes, 3) * (shape.prefixed + shape.prefixed_open)
    return turn_sql.read_statement(shape), params


def _delta_keys(write: TurnWrite) -> list[tuple[str, str]]:
    return [(d.namespace, d.key) for d in write.kvs_deltas]


def verify(write: TurnWrite, rows: Iterable[Sequence[Any]]) -> Current:
    """Raise :class:`ConflictError` unless every check of ``write`` holds against ``rows``.

    Return what the deltas add to: the value and expiry of each variable read, and the
    record of each KVS key read.
    """
    current: CurrentVars = {}
    versions: dict[VarKey, int] = {}
    scopes: dict[tuple[str, str, str], list[tuple[str, int]]] = defaultdict(list)
    keyed: dict[tuple[str, str], KvsRecord] = {}
    prefixed: dict[int, list[tuple[str, int]]] = defaultdict(list)
    session_version = 0
    for kind, a, b, c, d, value, expires_at, version in rows:
        if kind == "v":
            key = VarKey(b, a, c, d)
            current[key], versions[key] = (value, expires_at), version
        elif kind == "s":
            scopes[(a, b, c)].append((d, version))
        elif kind == "r":
            session_version = version
        elif kind == "k":
            keyed[(a, b)] = KvsRecord(value, expires_at, version)
        elif _live(expires_at, write.now):
            prefixed[int(a)].append((b, version))
    s = write.session
    if s is not None and write.session_version not in (None, session_version):
        raise ConflictError(f"session {s.key} changed since the turn loaded it")
    for check in write.checks:
        if not check.holds(versions.get(check.key, 0)):
            k = check.key
            raise ConflictError(f"{k.scope} variable {k.name!r} changed since it was read")
    for sc in write.scope_checks:
        if {name for name, _ in scopes.get((sc.bot_id, sc.scope, sc.owner), [])} != sc.names:
            raise ConflictError(f"{sc.scope} memory changed since the turn read it all")
    for kc in write.kvs_checks:
        record = keyed.get((kc.namespace, kc.key))
        live = record is not None and _live(record.expires_at, write.now)
        if (record.version if record is not None and live else 0) != kc.version:
            raise ConflictError(f"key {kc.key!r} changed since the turn read it")
    for i, pc in enumerate(write.kvs_prefix_checks, start=1):
        if tuple(sorted(prefixed.get(i, []))) != pc.versions:
            raise ConflictError(f"keys under {pc.prefix!r} changed since the turn listed them")
    return Current(current, {key: keyed.get(key) for key in _delta_keys(write)})


def _live(expires_at: float | None, now: float) -> bool:
    return expires_at is None or expires_at > now


def write_statement(
    write: TurnWrite, variables: Sequence[StoredVar], records: KvsRows | None = None
) -> tuple[str, list[Any]]:
    """Return the write of ``write`` with its final ``variables`` and KVS ``records``
    (default: its KVS writes), and its parameters."""
    s, reset = write.session, reset_scopes(write)
    upserts = sorted(  # one order in which all writers lock rows
        (k.bot_id, k.scope, k.owner, k.name, v.value, v.changed_at, v.expires_at, v.field_times)
        for v in variables
        for k in (v.key,)
    )
    kvs = {(w.namespace, w.key): w.record for w in write.kvs_writes} if records is None else records
    stored = sorted((ns, key, r.value, r.expires_at) for (ns, key), r in kvs.items() if r)
    gone = sorted((ns, key) for (ns, key), r in kvs.items() if r is None)
    deletes = [(k.bot_id, k.scope, k.owner, k.name) for k in write.deletes]
    shape = WriteShape(s is not None, bool(reset), *map(bool, (deletes, upserts, stored, gone)))
    params: list[Any] = [write.version]
    if s is not None:
        params += session_params(s)
    if reset:
        params.append(reset)
    for rows, width in ((upserts, 8), (deletes, 4), (stored, 4), (gone, 2)):
        if rows:
            params += _columns(rows, width)
    return turn_sql.write_statement(shape), params


def session_params(s: SessionRecord) -> tuple[object, ...]:
    """Return a session's columns for SQL, without its version."""
    return (s.bot_id, s.key, s.user_key, s.started_at, s.last_seen, s.expires_at, s.temp_expires_at)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Turn rows into ``width`` column lists, for ``unnest($1::text[], ...)``."""
    return [[row[i] for row in rows] for i in range(width)]
