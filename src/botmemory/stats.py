"""Counters of what a Memory did, for a server to export as metrics.

Plain numbers, no metrics library. A :class:`StatsSink` added to ``sinks`` hears of each
event as it is counted: ``botmemory.server`` forwards them to Prometheus.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Final, Protocol

__all__ = ["Histogram", "MemoryStats", "StatsSink", "notify"]

log = logging.getLogger("botmemory")

LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Upper bounds in seconds of the latency histograms' buckets."""


@dataclass
class Histogram:
    """Observations counted in cumulative buckets, with their sum (Prometheus style)."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    total: int = 0
    sum: float = 0.0
    _hits: list[int] = field(default_factory=list, repr=False)
    """``_hits[i]``: observations above ``bounds[i - 1]`` and not above ``bounds[i]``."""

    def __post_init__(self) -> None:
        self._hits = [0] * (len(self.bounds) + 1)

    @property
    def counts(self) -> list[int]:
        """``counts[i]``: observations not above ``bounds[i]``."""
        return list(accumulate(self._hits[:-1]))

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.total += 1
        self.sum += value
        self._hits[bisect_left(self.bounds, value)] += 1


class StatsSink(Protocol):
    """Hears of what :class:`MemoryStats` counts, as it is counted."""

    def turn_done(self, seconds: float) -> None:
        """A turn was persisted; it took ``seconds`` (lock wait included)."""

    def turn_failed(self, backend: bool) -> None:
        """A turn raised and persisted nothing; ``backend`` if the storage failed."""

    def conflicted(self) -> None:
        """A turn attempt found that what it read had changed."""

    def retried(self) -> None:
        """A turn attempt runs again after a conflict."""

    def lock_waited(self, seconds: float) -> None:
        """A turn waited ``seconds`` for an earlier turn of its session and its load."""


@dataclass
class MemoryStats:
    """What one :class:`~botmemory.memory.Memory` has done since it was opened."""

    turns: int = 0
    """Turns persisted."""
    turn_errors: int = 0
    """Turns that raised and persisted nothing."""
    backend_errors: int = 0
    """Turns that failed because the storage failed."""
    conflicts: int = 0
    """Turn attempts whose commit found that what they read had changed (nothing written)."""
    retries: int = 0
    """Turn attempts run again after a conflict (by ``run_turn`` and the dialog engine)."""
    turn_seconds: Histogram = field(default_factory=Histogram)
    """Wall-clock duration of a turn, lock wait included."""
    lock_wait_seconds: Histogram = field(default_factory=Histogram)
    """Time a turn waited for an earlier turn of its session, its load included."""
    sinks: list[StatsSink] = field(default_factory=list, repr=False)
    """Told of every event counted here."""

    def turn_done(self, seconds: float) -> None:
        """Count a persisted turn that took ``seconds``."""
        self.turns += 1
        self.turn_seconds.observe(seconds)
        if self.sinks:
            notify(self.sinks, "turn_done", seconds)

    def turn_failed(self, backend: bool) -> None:
        """Count a turn that raised (not a conflict); ``backend`` if the storage failed."""
        self.turn_errors += 1
        self.backend_errors += backend
        if self.sinks:
            notify(self.sinks, "turn_failed", backend)

    def conflicted(self) -> None:
        """Count a turn attempt that conflicted."""
        self.conflicts += 1
        if self.sinks:
            notify(self.sinks, "conflicted")

    def retried(self) -> None:
        """Count a turn attempt run again."""
        self.retries += 1
        if self.sinks:
            notify(self.sinks, "retried")

    def lock_waited(self, seconds: float) -> None:
        """Count a wait for a session's earlier turn."""
        self.lock_wait_seconds.observe(seconds)
        if self.sinks:
            notify(self.sinks, "lock_waited", seconds)


def notify(sinks: Sequence[object], event: str, *args: object) -> None:
    """Call ``event`` on every sink; a failing sink is logged and never fails a turn."""
    for sink in sinks:
        try:
            getattr(sink, event)(*args)
        except Exception:
            log.exception("stats sink %r failed on %s", sink, event)
