"""Typed usage of durations, checked by mypy (``make check``), never run by pytest.

A duration is parsed once into :data:`botmemory.Seconds`; a bare number where a
duration is expected is a type error. Each ``# type: ignore[arg-type]`` below marks a
call mypy must refuse: mypy's strict mode reports an ignore that is not needed, so the
check fails if a bare number were ever accepted again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import assert_type

from botmemory import Seconds, format_duration, load_settings, parse_duration, parse_interval
from botmemory.durations import to_timedelta
from botmemory.kvs import parse_expiry
from botmemory.retention import RetentionPolicies


def parsers_return_seconds() -> None:
    assert_type(parse_duration("5m"), Seconds)
    assert_type(parse_duration("never", allow_never=True), Seconds | None)
    assert_type(parse_duration(timedelta(minutes=5)), Seconds)
    assert_type(parse_interval("10s"), Seconds)
    assert_type(parse_expiry("1h"), Seconds | None)
    assert_type(to_timedelta(parse_duration("90s")), timedelta)


def settings_hold_seconds() -> None:
    settings = load_settings({"dialog": {"timeoutInterval": "2m"}})
    bot = settings.for_bot("shop")
    assert_type(bot.dialog_timeout, Seconds)
    assert_type(bot.session_timeout, Seconds)
    assert_type(bot.dialog_janitor_interval, Seconds)
    assert_type(bot.policies["mood"], Seconds | None)
    assert_type(settings.janitor_interval, Seconds)
    policy = RetentionPolicies(bot.policies).for_variable("mood")
    assert_type(policy.ttl, Seconds | None)


def seconds_are_cheap_floats(now: float) -> float:
    ttl = parse_duration("30d")
    format_duration(ttl)
    return now + ttl  # an instant plus a duration is an instant (a plain float)


def bare_numbers_are_refused() -> None:
    format_duration(300.0)  # type: ignore[arg-type]
    to_timedelta(90)  # type: ignore[call-overload]
    RetentionPolicies({"mood": 300.0})  # type: ignore[dict-item]
    parse_interval("5s", minimum=5.0)  # type: ignore[arg-type]
