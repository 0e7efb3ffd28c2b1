"""PostgreSQL URLs: the DSN asyncpg gets and botmemory's own parameters (docs/backends.md)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from botmemory.durations import Seconds, parse_duration
from botmemory.errors import ConfigError
from botmemory.storage.postgres.sql import quote_ident
from botmemory.storage.url_options import duration_or_never, flag, split_options, whole_number

__all__ = ["PostgresOptions", "check_search_path", "parse_postgres_url"]

OPTIONS: Final = (
    "schema",
    "pool_min",
    "pool_max",
    "lock_timeout",
    "connect_timeout",
    "command_timeout",
    "pgbouncer",
)
"""botmemory's own options in a PostgreSQL URL (see :class:`PostgresOptions`)."""
SSL_MODES: Final = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
"""The values of ``sslmode`` (libpq's)."""
_SCHEMA_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_LOCK_TIMEOUT: Final = parse_duration("30s")
_CONNECT_TIMEOUT: Final = parse_duration("10s")
_COMMAND_TIMEOUT: Final = parse_duration("30s")


@dataclass(frozen=True, slots=True)
class PostgresOptions:
    """A PostgreSQL URL taken apart: the DSN for asyncpg and botmemory's own parameters."""

    dsn: str
    schema: str = "public"
    pool_min: int = 1
    pool_max: int = 10
    lock_timeout: Seconds | None = _LOCK_TIMEOUT
    """How long a call waits for a lock or a free connection; ``None`` waits for ever."""
    connect_timeout: Seconds = _CONNECT_TIMEOUT
    """How long to try to connect; ``"never"`` in the URL gives the default."""
    command_timeout: Seconds = _COMMAND_TIMEOUT
    """How long a call may wait for the server's answer (time spent waiting for a lock
    within ``lock_timeout`` not counted); ``"never"`` in the URL gives the default."""
    pgbouncer: bool = False
    """Whether the URL leads to PgBouncer in transaction mode (no statement cache, no
    session-level state: see docs/backends.md, "Behind PgBouncer")."""


def parse_postgres_url(url: str) -> PostgresOptions:
    """Split ``url`` into the DSN asyncpg gets and botmemory's own parameters."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # its message may quote the password: not shown
        reason = "the host has characters that Unicode normalization (NFKC) changes"
        if "IPv6" in str(exc):
            reason = "'[' opens an IPv6 address without its ']'"
        raise ConfigError([f"database.url: not a URL: {reason}"]) from None
    own, rest = split_options(parts.query, OPTIONS)
    query = dict(rest)
    _check_driver_options(query)
    _check_addresses(parts.netloc, query)
    query.setdefault("application_name", "botmemory")
    schema = own.get("schema", "public")
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigError(
            [
                f"database.url: schema={schema!r} is not a schema name: use letters, digits "
                "and '_', starting with a letter or '_', 63 characters at most"
            ]
        )
    options = PostgresOptions(
        dsn=urlunsplit(parts._replace(query=urlencode(query))),
        schema=schema,
        pool_min=whole_number("pool_min", own.get("pool_min", "1"), minimum=0),
        pool_max=whole_number("pool_max", own.get("pool_max", "10"), minimum=1),
        lock_timeout=_duration(own, "lock_timeout", "30s"),
        connect_timeout=_duration(own, "connect_timeout", "10s") or _CONNECT_TIMEOUT,
        command_timeout=_duration(own, "command_timeout", "30s") or _COMMAND_TIMEOUT,
        pgbouncer=flag("pgbouncer", own.get("pgbouncer", "false")),
    )
    if options.pool_min > options.pool_max:
        raise ConfigError([f"database.url: pool_min={options.pool_min} is over pool_max"])
    return options


def _check_driver_options(query: dict[str, str]) -> None:
    """Refuse what the server would refuse on connecting: a misspelt botmemory option
    (asyncpg sends unknown names to the server as settings) and a bad ``sslmode``.

    Any other name is a server setting (``statement_timeout=5s``): only the server knows
    its settings, so those are checked when connecting.
    """
    problems = []
    for name in query:
        hint = difflib.get_close_matches(name, OPTIONS, n=1, cutoff=0.9)
        if hint:
            problems.append(
                f"database.url: unknown parameter {name!r}: did you mean {hint[0]!r}? "
                "(the server would refuse it as a setting)"
            )
    mode = query.get("sslmode")
    if mode is not None and mode.replace("_", "-") not in SSL_MODES:  # asyncpg reads both
        problems.append(f"database.url: sslmode={mode!r} must be one of {', '.join(SSL_MODES)}")
    if problems:
        raise ConfigError(problems)


def _check_addresses(netloc: str, query: dict[str, str]) -> None:
    """Refuse what asyncpg would fail on with a Python error, not a connection error: an
    empty host in a list (``h1,,h2``), or a port that is not a number from 1 to 65535,
    after a host (``h:5432``, ``[::1]:5432``) or in ``port=`` (``host=`` lists hosts too)."""
    problems = []
    for hosts, encoded in ((netloc.rpartition("@")[2], True), (query.get("host", ""), False)):
        specs = hosts.split(",") if hosts else []
        if "" in specs:
            problems.append(f"database.url: {hosts!r} lists an empty host: remove the extra ','")
        ports = [_port_of(spec) for spec in specs if not spec.startswith("/")]
        ports = [unquote(port) if encoded else port for port in ports if port]
        problems += [_bad_port(port) for port in ports if not _is_port(port)]
    given = query.get("port", "")
    problems += [_bad_port(port) for port in given.split(",") if given and not _is_port(port)]
    if problems:
        raise ConfigError(problems)


def _port_of(spec: str) -> str:
    """The port of ``host:port`` or ``[address]:port``; ``""`` when it has none."""
    if spec.startswith("["):
        return spec.partition("]")[2].removeprefix(":")
    return spec.partition(":")[2]


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5 and 1 <= int(text) <= 65535


def _bad_port(port: str) -> str:
    return f"database.url: port {port!r} is not a port: give a number from 1 to 65535"


def _duration(own: dict[str, str], name: str, default: str) -> Seconds | None:
    return duration_or_never(name, own.get(name, default), positive=True)


def check_search_path(schema: str, path: str, *, has_user_schema: bool) -> None:
    """Raise :class:`ConfigError` unless ``search_path`` ``path`` leads to ``schema`` first.

    PgBouncer does not pass a ``search_path`` per client: the role's or the database's
    own must lead to the schema. ``"$user"`` counts only if the role has a schema.
    """
    names = [name.strip() for name in path.split(",")]
    if names[0] == '"$user"' and not has_user_schema:
        names = names[1:]
    if not names or names[0] not in (schema, quote_ident(schema)):
        raise ConfigError(
            [
                f"database.url: pgbouncer=true, but the search_path through PgBouncer is "
                f"{path!r}, which does not start with schema {schema!r}: PgBouncer cannot "
                f"set it per connection; give it to the role (ALTER ROLE <user> SET "
                f'search_path = "{schema}") or to the database'
            ]
        )
