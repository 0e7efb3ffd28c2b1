"""The clock every expiry decision reads: inject one in tests, move it, never sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from botmemory.durations import DurationInput, parse_duration

__all__ = ["Clock", "ManualClock", "iso_or_none", "iso_time", "system_clock"]

Clock = Callable[[], float]
"""A function that returns the current time in epoch seconds."""


def iso_time(epoch: float) -> str:
    """Render epoch seconds as an ISO 8601 UTC timestamp with milliseconds."""
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def iso_or_none(epoch: float | None) -> str | None:
    """Render epoch seconds as :func:`iso_time` does, keeping ``None``."""
    return None if epoch is None else iso_time(epoch)


def system_clock() -> float:
    """Return the wall-clock time in epoch seconds."""
    return time.time()


class ManualClock:
    """A clock that stands still until told to move: for tests and simulations."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, by: DurationInput) -> None:
        """Move the clock forward by a duration: ``"90s"``, ``"2d"`` or a ``timedelta``.

        A bare number is an :class:`~botmemory.errors.InvalidDurationError` asking for a
        unit, as everywhere a duration is written.
        """
        self.now += parse_duration(by, where="ManualClock.advance")
