"""The Redis client of a URL: one server, or a Redis Cluster.

``redis://`` and ``rediss://`` reach one server (or a proxy in front of several) through
redis-py's blocking connection pool. ``redis+cluster://host:port,host:port/`` and
``rediss+cluster://`` reach a Redis Cluster through redis-py's cluster client: the
listed nodes are where it starts, and it learns the others (and the slots they serve)
from them. Every key of one bot shares one hash tag (see
:mod:`~botmemory.storage.redis.layout`), so each turn is one script on one node.

Neither client retries a command by itself: a reply lost on the way may hide a write
that was applied, and only botmemory knows which writes are safe to send again (a
turn's commit carries an id for that). After a cluster's failover the next command
finds the new master.

botmemory's own URL parameters are read here; the others go to redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import inspect
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import urlencode

from redis import exceptions as rx
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from botmemory.durations import Seconds, parse_duration
from botmemory.errors import ConfigError, LockTimeoutError
from botmemory.storage.url_options import duration, split_options, whole_number

__all__ = ["CallSlots", "RedisOptions", "open_client"]

OPTIONS: Final = ("prefix", "lease_timeout", "lock_wait", "ttl_grace", "pool_max")
"""botmemory's own options in a Redis URL (see :class:`RedisOptions`)."""
_LEASE_TIMEOUT: Final = parse_duration("30s")
_LOCK_WAIT: Final = parse_duration("60s")
_TTL_GRACE: Final = parse_duration("1h")
_CLUSTER_SCHEMES: Final = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_CLUSTER_HEADROOM: Final = 4
"""Connections a cluster node may get per call slot: leases' polls and renewals run
outside the slots (see :class:`CallSlots`), and a cluster client fails at once when a
node has none free."""


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """botmemory's parameters in a Redis URL; ``client_url`` is the URL without them."""

    client_url: str
    prefix: str = "botmemory:"
    """Start of every key; ``{`` and ``}`` are not allowed (hash tags follow it)."""
    lease_timeout: Seconds = _LEASE_TIMEOUT
    """How long a session or janitor lease lives unless its holder renews it."""
    lock_wait: Seconds = _LOCK_WAIT
    """How long a turn waits for its session's lease before LockTimeoutError."""
    ttl_grace: Seconds = _TTL_GRACE
    """How long Redis keeps an expired whole key before freeing it by itself."""
    pool_max: int = 50
    """Connections this process opens at most (per node of a cluster)."""

    @classmethod
    def parse(cls, url: str) -> RedisOptions:
        """Split botmemory's parameters off ``url``; raise on a bad value."""
        base, _, query = url.partition("?")
        ours, pairs = split_options(query, OPTIONS)
        rest = urlencode(pairs)
        prefix = ours.pop("prefix", "botmemory:")
        if not prefix or "{" in prefix or "}" in prefix:
            raise ConfigError(
                [
                    f"database.url: prefix={prefix!r} must be non-empty without '{{' or '}}': "
                    "botmemory puts its own hash tags after it"
                ]
            )
        pool_max = whole_number("pool_max", ours.pop("pool_max", "50"), minimum=1)
        durations = {
            name: duration(name, value, positive=name == "lease_timeout")
            for name, value in ours.items()
        }
        return cls(f"{base}?{rest}" if rest else base, prefix, pool_max=pool_max, **durations)

    @property
    def cluster(self) -> bool:
        """Whether the URL names a Redis Cluster (``redis+cluster://``)."""
        return self.client_url.partition("://")[0].lower() in _CLUSTER_SCHEMES


class _Pool(BlockingConnectionPool):
    """redis-py's blocking pool, whose wait for a free connection ends in LockTimeoutError."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except rx.ConnectionError as exc:
            if not isinstance(exc.__cause__, asyncio.TimeoutError):
                raise
            raise LockTimeoutError(
                f"no free Redis connection within {self.timeout:g}s: all pool_max="
                f"{self.max_connections} were busy; raise pool_max or lock_wait in the URL"
            ) from None


class CallSlots:
    """At most ``pool_max`` storage calls in flight; a call waits up to ``lock_wait``.

    The single-server pool makes a call wait for a free connection; redis-py's cluster
    client raises ``MaxConnectionsError`` at once instead, so on a cluster the calls
    wait here, and each node may open :data:`_CLUSTER_HEADROOM` times ``pool_max``.
    """

    def __init__(self, options: RedisOptions) -> None:
        self._free = asyncio.Semaphore(options.pool_max)
        self._options = options

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the duration of a call."""
        try:
            await asyncio.wait_for(self._free.acquire(), self._options.lock_wait)
        except TimeoutError:
            raise LockTimeoutError(
                f"no free Redis call slot within {self._options.lock_wait:g}s: all "
                f"pool_max={self._options.pool_max} were busy; raise pool_max or lock_wait "
                "in the URL"
            ) from None
        try:
            yield
        finally:
            self._free.release()


def open_client(options: RedisOptions, masked_url: str) -> Redis:
    """The client of ``options`` (not connected yet); a bad URL is a ConfigError.

    A cluster client is returned as a :class:`Redis`: it offers every command and
    pipeline this backend uses, with the same signatures.
    """
    common: dict[str, Any] = {
        "decode_responses": True,
        "retry": Retry(NoBackoff(), 0),  # a lost reply may hide an applied write
        "protocol": 2,  # RESP3 makes redis-py skip its check of pooled connections
    }
    try:
        if options.cluster:
            return cast(Redis, _cluster(options, common))
        pool = _Pool.from_url(
            options.client_url,
            max_connections=options.pool_max,
            timeout=options.lock_wait,
            **common,
        )
    except (ValueError, rx.RedisClusterException) as exc:
        raise ConfigError([f"database.url {masked_url!r}: {exc}"]) from exc
    _check_options(pool.connection_kwargs, _parameters(pool.connection_class))
    return Redis.from_pool(pool)


def _parameters(cls: type) -> set[str]:
    """The keyword parameters that ``cls(...)`` takes, its base classes' included."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            params = inspect.signature(init).parameters.values()
            names.update(p.name for p in params if p.kind in kinds and p.name != "self")
    return names


def _check_options(given: Collection[str], accepted: Collection[str]) -> None:
    """Refuse the URL parameters that neither botmemory nor redis-py reads.

    redis-py hands them to its connections, which would fail with a TypeError on the
    first command instead of at start-up.
    """
    unknown = sorted(set(given) - set(accepted))
    if not unknown:
        return
    problems = []
    for name in unknown:
        hint = difflib.get_close_matches(name, [*OPTIONS, *accepted], n=1)
        why = f"did you mean {hint[0]!r}?" if hint else f"botmemory's are {', '.join(OPTIONS)}"
        problems.append(
            f"database.url: unknown parameter {name!r} (not botmemory's nor redis-py's): {why}"
        )
    raise ConfigError(problems)


def _cluster(options: RedisOptions, common: dict[str, Any]) -> RedisCluster:
    """A cluster client that starts from every node the URL lists."""
    scheme, _, rest = options.client_url.partition("://")
    netloc, slash, tail = rest.partition("/")
    credentials, at, hosts = netloc.rpartition("@")
    first, *others = hosts.split(",")
    _node(first)  # each node names its port, the first too
    url = f"{_CLUSTER_SCHEMES[scheme.lower()]}://{credentials}{at}{first}{slash}{tail}"
    given = set(parse_url(url)) - {"connection_class"}  # rediss: from_url takes it
    _check_options(given, _parameters(RedisCluster))
    client = RedisCluster.from_url(
        url,
        startup_nodes=[_node(host) for host in others],
        max_connections=options.pool_max * _CLUSTER_HEADROOM,
        **common,
    )
    callbacks = client.response_callbacks
    for name, callback in list(callbacks.items()):
        callbacks[name] = _without_keys(callback)
    return client


def _without_keys(callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback`` minus the ``keys`` option that commands add for routing.

    redis-py's cluster transactions (MULTI/EXEC) hand it to the reply callbacks, which
    do not take it (``HGETALL`` in a transaction raises TypeError); the single-server
    client drops it before.
    """

    def parse(response: Any, **options: Any) -> Any:
        options.pop("keys", None)
        return callback(response, **options)

    return parse


def _node(host_port: str) -> ClusterNode:
    host, colon, port = host_port.rpartition(":")
    if not host or not colon or not port.isdigit():
        raise ValueError(f"{host_port!r}: each cluster node is host:port")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"{host_port!r}: a port is 1 to 65535")
    return ClusterNode(host.strip("[]"), int(port))
