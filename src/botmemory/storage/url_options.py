"""botmemory's own options in a database URL's query string, read the same way by every backend.

Each backend declares the names of its options; :func:`split_options` takes them off the
query (the rest go to the driver), and the readers below turn one value into its type,
quoting the option and the bad value in the error.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import parse_qsl

from botmemory.durations import Seconds, parse_duration
from botmemory.errors import ConfigError, InvalidDurationError

__all__ = ["duration", "duration_or_never", "flag", "split_options", "whole_number"]


def split_options(
    query: str, names: Collection[str]
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Split ``query`` into the options named ``names`` and the pairs left for the driver.

    Blank values are kept; an option given twice keeps its last value.
    """
    pairs = parse_qsl(query, keep_blank_values=True)
    ours = {name: value for name, value in pairs if name in names}
    return ours, [(name, value) for name, value in pairs if name not in names]


def whole_number(name: str, value: str, *, minimum: int) -> int:
    """Read option ``name`` as a whole number of at least ``minimum``."""
    if not value.isdigit() or int(value) < minimum:
        raise ConfigError(
            [f"database.url: {name}={value!r} must be a whole number, at least {minimum}"]
        )
    return int(value)


def flag(name: str, value: str) -> bool:
    """Read option ``name`` as ``true`` or ``false``."""
    if value not in ("true", "false"):
        raise ConfigError([f"database.url: {name}={value!r} must be true or false"])
    return value == "true"


def duration(name: str, value: str, *, positive: bool = False) -> Seconds:
    """Read option ``name`` as a duration (``30s``, ``2m``); longer than zero if ``positive``."""
    seconds = parse_duration(value, where=f"database.url {name}")
    _check_positive(name, value, seconds, positive=positive)
    return seconds


def duration_or_never(name: str, value: str, *, positive: bool = False) -> Seconds | None:
    """Read option ``name`` as a duration, or ``never`` (``None``)."""
    seconds = parse_duration(value, where=f"database.url {name}", allow_never=True)
    if seconds is not None:
        _check_positive(name, value, seconds, positive=positive)
    return seconds


def _check_positive(name: str, value: str, seconds: Seconds, *, positive: bool) -> None:
    if positive and seconds <= 0:
        raise InvalidDurationError(f"database.url {name}: {value!r} must be longer than zero")
