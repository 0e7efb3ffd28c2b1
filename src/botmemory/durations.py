"""Parse durations: one parser for every setting and argument.

A duration is written as a number, optional spaces and a unit (``"60d"``,
``"2 min"``, ``"1.5h"``; the units of Botpress's ``ms``, a year being 365.25 days),
given from Python as a :class:`datetime.timedelta`, or ``"never"`` where an expiry may
be switched off. It is parsed once, where it was written, into :data:`Seconds`, the one
type a duration has inside the code (a ``float`` that mypy tells apart from other
numbers); nothing parses it twice, and no bare number travels where a duration is
meant. A bare number (``5``, ``1.5``, ``"5"``) has no unit and raises
:class:`~botmemory.errors.InvalidDurationError`, as does anything else that is not a
duration: a bad value is never read as an instant expiry.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from typing import Final, Literal, NewType, overload

from botmemory.errors import InvalidDurationError

__all__ = [
    "MIN_LIFETIME",
    "NEVER",
    "DurationInput",
    "Seconds",
    "format_duration",
    "parse_duration",
    "parse_interval",
    "parse_lifetime",
    "quoted",
    "to_timedelta",
]

NEVER: Final = "never"

Seconds = NewType("Seconds", float)
"""A duration inside the code, in seconds; made by :func:`parse_duration` (a constant in
code is written ``parse_duration("30m")``, with its unit) or :func:`parse_interval`.

Instants (epoch times such as ``now`` or ``expires_at``) stay plain ``float``: an instant
plus a ``Seconds`` is an instant.
"""

DurationInput = str | timedelta
"""What a user may write for a duration: text with a unit, or (from Python) a timedelta."""

_YEAR: Final = 365.25 * 86400.0
"""A year as Botpress's ``ms`` counts it (365.25 days); a month is a twelfth of it."""
_UNITS: Final[dict[str, float]] = {}
for _seconds, _names in (
    (0.001, ("ms", "msec", "msecs", "millisecond", "milliseconds")),
    (1.0, ("s", "sec", "secs", "second", "seconds")),
    (60.0, ("m", "min", "mins", "minute", "minutes")),
    (3600.0, ("h", "hr", "hrs", "hour", "hours")),
    (86400.0, ("d", "day", "days")),
    (604800.0, ("w", "week", "weeks")),
    (_YEAR / 12, ("mo", "month", "months")),
    (_YEAR, ("y", "yr", "yrs", "year", "years")),
):
    for _name in _names:
        _UNITS[_name] = _seconds

_PATTERN: Final = re.compile(r"(?P<number>\d+(?:\.\d+)?|\.\d+) *(?P<unit>[a-z]*)", re.ASCII)
MAX_LENGTH: Final = 100
"""The longest text read as a duration, in characters (as ``ms``)."""
MAX_SECONDS: Final = Seconds(1000 * _YEAR)
"""The longest duration accepted (1000 years); for longer, no expiry ('never')."""
_HINT: Final = "use a number and a unit such as '500ms', '30s', '5m', '2h', '60d', '1w' or '1y'"
_NUMERIC: Final = re.compile(
    r"(?P<sign>[+-]?)(?P<digits>\d+(?:\.\d*)?|\.\d+)(?:e(?P<exponent>[+-]?\d+))?", re.ASCII
)


@overload
def parse_duration(
    value: object, *, where: str = "duration", allow_never: Literal[False] = False
) -> Seconds: ...
@overload
def parse_duration(
    value: object, *, where: str = "duration", allow_never: bool
) -> Seconds | None: ...
def parse_duration(
    value: object, *, where: str = "duration", allow_never: bool = False
) -> Seconds | None:
    """Return the duration in seconds, or ``None`` for ``"never"``.

    ``where`` names the setting or argument in the error message. A zero duration is
    accepted (an immediate expiry asked for explicitly); use :func:`parse_interval`
    where zero makes no sense.
    """
    seconds = _to_seconds(value, where)
    if seconds is None:
        if not allow_never:
            raise InvalidDurationError(
                f"{where}: {quoted(value)} is not allowed here: give a duration"
            )
        return None
    if seconds < 0 or not math.isfinite(seconds):
        raise InvalidDurationError(f"{where}: {quoted(value)} is negative or not a finite duration")
    if seconds > MAX_SECONDS:
        advice = "use 'never'" if allow_never else "give at most 1000 years"
        raise InvalidDurationError(f"{where}: {quoted(value)} is longer than 1000 years: {advice}")
    return Seconds(seconds)


MIN_LIFETIME: Final = Seconds(0.001)
"""The shortest expiry, time to live or retention time: 1 ms, the smallest unit. A
shorter one would expire at once (an instant plus a nanosecond is the same float), or
round to zero on the way (a ``timedelta`` counts microseconds)."""


def parse_lifetime(value: object, *, where: str) -> Seconds | None:
    """Return how long something lives (an expiry, a time to live, a retention time):
    at least :data:`MIN_LIFETIME`, or ``None`` for ``"never"``."""
    seconds = parse_duration(value, where=where, allow_never=True)
    if seconds is not None and seconds < MIN_LIFETIME:
        raise InvalidDurationError(
            f"{where}: {quoted(value)} would expire at once: give at least 1ms, or 'never'"
        )
    return seconds


_MIN_INTERVAL: Final = Seconds(0.1)  # 100 ms


def parse_interval(
    value: object, *, where: str = "interval", minimum: Seconds = _MIN_INTERVAL
) -> Seconds:
    """Return a strictly positive interval, at least ``minimum`` (default 100 ms)."""
    seconds = parse_duration(value, where=where)
    if seconds < minimum:
        raise InvalidDurationError(
            f"{where}: {quoted(value)} is too short for an interval: give at least {minimum:g}s"
        )
    return seconds


def format_duration(duration: Seconds | None) -> str:
    """Render a duration as the largest exact unit: 60 days gives ``"60d"``."""
    if duration is None:
        return NEVER
    value = round(duration, 6)
    for unit in ("y", "mo", "w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if value >= size and (value / size).is_integer():
            return f"{int(value / size)}{unit}"
    return f"{value * 1000:.3f}".rstrip("0").rstrip(".") + "ms"


@overload
def to_timedelta(duration: Seconds) -> timedelta: ...
@overload
def to_timedelta(duration: Seconds | None) -> timedelta | None: ...
def to_timedelta(duration: Seconds | None) -> timedelta | None:
    """Return a duration as a :class:`~datetime.timedelta` (``None`` stays ``None``)."""
    return None if duration is None else timedelta(seconds=duration)


def quoted(value: object, limit: int = 80) -> str:
    """``value`` as JSON5 writes it (``true``, ``null``, ``'text'``, ``{a: [1]}``), cut to
    about ``limit`` characters: a value a user wrote is shown as written, not as Python
    prints it."""
    text = _json5(value, limit)
    return text if len(text) <= limit else f"{text[: limit - 4]}...{text[-1]}"


def _json5(value: object, limit: int) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str):
        inner = json.dumps(value[: limit + 1], ensure_ascii=False)[1:-1]
        return "'" + inner.replace('\\"', '"').replace("'", "\\'") + "'"
    if isinstance(value, dict):
        pairs = (f"{_json5(str(key), limit)}: {_json5(item, limit)}" for key, item in value.items())
        return f"{{{_joined(pairs, limit)}}}"
    if isinstance(value, list):
        return f"[{_joined((_json5(item, limit) for item in value), limit)}]"
    try:
        return repr(value)  # a number, or what Python code gave
    except ValueError:  # an int of more digits than Python writes out
        return f"a number of more than {sys.get_int_max_str_digits()} digits"


def _joined(parts: Iterable[str], limit: int) -> str:
    """``parts`` joined by commas, the ones after ``limit`` characters left out."""
    kept: list[str] = []
    length = 0
    for part in parts:
        if length > limit:
            kept.append("...")
            break
        kept.append(part)
        length += len(part) + 2
    return ", ".join(kept)


def _no_unit(value: object, text: str, where: str) -> InvalidDurationError:
    """The error of a bare number: ``value`` as given, ``text`` the number as written.

    It says to add a unit, with examples only where they would parse themselves; a
    negative number is said to be negative, and a sign, an exponent or a trailing dot is
    named, since the number of a duration has none of them.
    """
    number = _NUMERIC.fullmatch(text)
    if number is None:  # nan, inf
        return InvalidDurationError(f"{where}: {quoted(value)} is not a duration; {_HINT}")
    if number["sign"] == "-" and number["digits"].strip("0.") != "":
        return InvalidDurationError(
            f"{where}: {quoted(value)} is negative, not a duration: a duration is zero or more, "
            f"with a unit; {_HINT}"
        )
    fixes = [
        fix
        for fix, found in (
            ("its sign", number["sign"] != ""),
            ("an exponent", number["exponent"] is not None),
            ("a trailing dot", number["digits"].endswith(".")),
        )
        if found
    ]
    examples = [
        f"{digits}{unit}"
        for digits in [_written_out(number["digits"], number["exponent"])]
        if digits is not None
        for unit in ("s", "m", "d")
        if _parses(f"{digits}{unit}")
    ]
    rewrite = f", and write the number without {' or '.join(fixes)}" if fixes else ""
    if not examples:
        return InvalidDurationError(
            f"{where}: {quoted(value)} has no unit: add one{rewrite} (a bare number is not a "
            f"duration); {_HINT}"
        )
    listed = ", ".join(repr(example) for example in examples[:-1])
    listed = f"{listed} or {examples[-1]!r}" if listed else repr(examples[-1])
    return InvalidDurationError(
        f"{where}: {quoted(value)} has no unit: add one{rewrite}, for example {listed} (a bare "
        "number is not a duration)"
    )


def _written_out(digits: str, exponent: str | None) -> str | None:
    """The number ``digits`` times ten to the ``exponent``, as a duration writes it: with
    no exponent, and a dot only before digits; ``None`` if far too long to be one."""
    if exponent is None:
        return digits.rstrip(".")
    if abs(int(exponent)) > MAX_LENGTH:
        return None
    return format(Decimal(f"{digits}e{exponent}"), "f")


def _parses(text: str) -> bool:
    try:
        parse_duration(text)
    except InvalidDurationError:
        return False
    return True


def _to_seconds(value: object, where: str) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if value is None or isinstance(value, bool):
        raise InvalidDurationError(f"{where}: {quoted(value)} is not a duration; {_HINT}")
    if isinstance(value, int | float):
        try:
            text = repr(value).lower()
        except ValueError:  # an int of more digits than Python writes out
            raise InvalidDurationError(f"{where}: {quoted(value)} is not a duration") from None
        raise _no_unit(value, text, where)
    if not isinstance(value, str):
        raise InvalidDurationError(
            f"{where}: {quoted(value)} is {_kind(value)}, not a duration; {_HINT}"
        )
    if len(value) > MAX_LENGTH:
        raise InvalidDurationError(
            f"{where}: {quoted(value[:20])}... is {len(value)} characters long, not a duration; "
            + _HINT
        )
    text = value.strip().lower()
    if text == NEVER:
        return None
    if _NUMERIC.fullmatch(text):
        raise _no_unit(value.strip(), text, where)
    match = _PATTERN.fullmatch(text)
    unsigned = _PATTERN.fullmatch(text[1:]) if text[:1] in ("+", "-") else None
    if match is None and unsigned is not None:
        if text[0] == "-" and float(unsigned["number"]) > 0:
            raise InvalidDurationError(
                f"{where}: {quoted(value)} is negative, not a duration: a duration is zero or "
                f"more; {_HINT}"
            )
        raise InvalidDurationError(
            f"{where}: {quoted(value)} is not a duration: write it without the {text[0]!r} sign"
        )
    if match is None:
        raise InvalidDurationError(f"{where}: {quoted(value)} is not a duration; {_HINT}")
    number = float(match["number"])
    unit = match["unit"]
    if unit not in _UNITS:
        raise InvalidDurationError(
            f"{where}: {quoted(value)} has an unknown unit {unit!r}; {_HINT}"
        )
    return number * _UNITS[unit]


def _kind(value: object) -> str:
    """What ``value`` is, in JSON's words where it is JSON."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"
