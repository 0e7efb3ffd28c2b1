"""Parse durations: one parser for every setting and argument.

A duration is written as a number, an optional space and a unit (``"60d"``,
``"2 min"``, ``"1.5h"``), given from Python as a :class:`datetime.timedelta`, or
``"never"`` where an expiry may be switched off. It is parsed once, where it was
written, into seconds (a ``float``, or a ``timedelta`` when handed to the Python API);
nothing parses it twice. A bare number (``5``, ``1.5``, ``"5"``) has no unit and raises
:class:`~botmemory.errors.InvalidDurationError`, as does anything else that is not a
duration: a bad value is never read as an instant expiry.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Final, Literal, overload

from botmemory.errors import InvalidDurationError

__all__ = [
    "NEVER",
    "DurationInput",
    "format_duration",
    "parse_duration",
    "parse_interval",
    "to_timedelta",
]

NEVER: Final = "never"

DurationInput = str | timedelta
"""What a user may write for a duration: text with a unit, or (from Python) a timedelta."""

_UNITS: Final[dict[str, float]] = {}
for _seconds, _names in (
    (0.001, ("ms",)),
    (1.0, ("s", "sec", "secs", "second", "seconds")),
    (60.0, ("m", "min", "mins", "minute", "minutes")),
    (3600.0, ("h", "hr", "hrs", "hour", "hours")),
    (86400.0, ("d", "day", "days")),
    (604800.0, ("w", "week", "weeks")),
    (31536000.0, ("y", "yr", "yrs", "year", "years")),
):
    for _name in _names:
        _UNITS[_name] = _seconds

_PATTERN: Final = re.compile(r"(?P<number>\d+(?:\.\d+)?|\.\d+) ?(?P<unit>[a-z]*)", re.ASCII)
MAX_SECONDS: Final = 1000 * 31536000.0
"""The longest duration accepted (1000 years); for longer, no expiry ('never')."""
_HINT: Final = "use a number and a unit such as '500ms', '30s', '5m', '2h', '60d', '1w' or '1y'"
_NUMERIC: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?", re.ASCII)


@overload
def parse_duration(
    value: object, *, where: str = "duration", allow_never: Literal[False] = False
) -> float: ...
@overload
def parse_duration(
    value: object, *, where: str = "duration", allow_never: bool
) -> float | None: ...
def parse_duration(
    value: object, *, where: str = "duration", allow_never: bool = False
) -> float | None:
    """Return the duration in seconds, or ``None`` for ``"never"``.

    ``where`` names the setting or argument in the error message. A zero duration is
    accepted (an immediate expiry asked for explicitly); use :func:`parse_interval`
    where zero makes no sense.
    """
    seconds = _to_seconds(value, where)
    if seconds is None:
        if not allow_never:
            raise InvalidDurationError(f"{where}: {value!r} is not allowed here: give a duration")
        return None
    if seconds < 0 or not math.isfinite(seconds):
        raise InvalidDurationError(f"{where}: {value!r} is negative or not a finite duration")
    if seconds > MAX_SECONDS:
        raise InvalidDurationError(f"{where}: {value!r} is longer than 1000 years: use 'never'")
    return seconds


def parse_interval(value: object, *, where: str = "interval", minimum: float = 0.1) -> float:
    """Return a strictly positive interval in seconds, at least ``minimum`` seconds."""
    seconds = parse_duration(value, where=where)
    if seconds < minimum:
        raise InvalidDurationError(
            f"{where}: {value!r} is too short for an interval: give at least {minimum:g}s"
        )
    return seconds


def format_duration(seconds: float | None) -> str:
    """Render seconds as the largest exact unit: ``5184000.0`` gives ``"60d"``."""
    if seconds is None:
        return NEVER
    seconds = round(seconds, 6)
    for unit in ("y", "w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds * 1000:.3f}".rstrip("0").rstrip(".") + "ms"


def to_timedelta(seconds: float | None) -> timedelta | None:
    """Return parsed seconds as a :class:`~datetime.timedelta` (``None`` stays ``None``)."""
    return None if seconds is None else timedelta(seconds=seconds)


def _no_unit(value: object, where: str) -> InvalidDurationError:
    return InvalidDurationError(
        f"{where}: {value!r} has no unit: add one, for example '{value}s' or '{value}m' "
        "(a bare number is not a duration)"
    )


def _to_seconds(value: object, where: str) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool):
        raise InvalidDurationError(f"{where}: {value!r} is not a duration; {_HINT}")
    if isinstance(value, int | float):
        raise _no_unit(value, where)
    if not isinstance(value, str):
        raise InvalidDurationError(
            f"{where}: {value!r} is a {type(value).__name__}, not a duration; {_HINT}"
        )
    text = value.strip().lower()
    if text == NEVER:
        return None
    if _NUMERIC.fullmatch(text):
        raise _no_unit(value.strip(), where)
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise InvalidDurationError(f"{where}: {value!r} is not a duration; {_HINT}")
    number = float(match["number"])
    unit = match["unit"]
    if unit not in _UNITS:
        raise InvalidDurationError(f"{where}: {value!r} has an unknown unit {unit!r}; {_HINT}")
    return number * _UNITS[unit]
