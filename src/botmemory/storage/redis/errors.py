"""The Redis backend's one translation of driver errors into botmemory's.

Every call of :class:`~botmemory.storage.redis.storage.RedisStorage` into redis-py runs
inside :func:`driver_errors`: a server or cluster that cannot be reached becomes
:class:`~botmemory.errors.BackendUnavailableError` (with the URL's password masked), a
plain server named as a cluster :class:`~botmemory.errors.ConfigError`, the rest
:class:`~botmemory.errors.BackendError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from redis import exceptions as rx

from botmemory.errors import BackendError, BackendUnavailableError, BotMemoryError, ConfigError

__all__ = ["driver_errors"]

_UNAVAILABLE: Final = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.ReadOnlyError,
    OSError,
    rx.ClusterDownError,  # a cluster's failover: its slots are not served for a moment
    rx.TryAgainError,
    rx.SlotNotCoveredError,
)


@contextmanager
def driver_errors(masked_url: str) -> Iterator[None]:
    """Raise botmemory's error for a driver error raised inside (on ``masked_url``)."""
    try:
        yield
    except BotMemoryError:
        raise  # translated already (by a nested call, or the pool): not wrapped twice
    except _UNAVAILABLE as exc:
        raise BackendUnavailableError(f"Redis at {masked_url} is unavailable: {exc}") from exc
    except rx.RedisClusterException as exc:
        raise _cluster_error(masked_url, exc) from exc
    except (rx.RedisError, UnicodeError) as exc:
        raise BackendError(f"Redis error on {masked_url}: {exc}") from exc


def _cluster_error(url: str, exc: rx.RedisClusterException) -> BotMemoryError:
    """What a cluster client's own error means: no node reachable, a plain server, a bug."""
    text = str(exc)
    if "Cluster mode is not enabled" in text:
        return ConfigError(
            [f"database.url {url!r}: this Redis is not a cluster: use redis:// for it"]
        )
    if "cannot be connected" in text:
        return BackendUnavailableError(f"Redis Cluster at {url} is unavailable: {text}")
    return BackendError(f"Redis Cluster error on {url}: {text}")
