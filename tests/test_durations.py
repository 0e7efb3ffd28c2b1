"""Durations: every spelling a user may write, and every value that must be refused."""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Callable, Mapping
from datetime import timedelta

import pytest

import botmemory
from botmemory.clock import ManualClock
from botmemory.config import BotSettings, Settings, load_settings
from botmemory.durations import (
    NEVER,
    Seconds,
    format_duration,
    parse_duration,
    parse_interval,
    parse_lifetime,
    quoted,
    to_timedelta,
)
from botmemory.errors import InvalidDurationError
from botmemory.janitor import Janitor, JanitorReport
from botmemory.kvs import parse_expiry
from botmemory.retention import RetentionPolicies, VariablePolicy
from botmemory.storage.base import SessionRecord
from botmemory.storage.postgres.url import PostgresOptions
from botmemory.storage.redis import RedisOptions
from botmemory.storage.sqlite import SqliteStorage

UNITS = {
    0.001: ["ms", "msec", "msecs", "millisecond", "milliseconds"],
    1.0: ["s", "sec", "secs", "second", "seconds"],
    60.0: ["m", "min", "mins", "minute", "minutes"],
    3600.0: ["h", "hr", "hrs", "hour", "hours"],
    86400.0: ["d", "day", "days"],
    604800.0: ["w", "week", "weeks"],
    2629800.0: ["mo", "month", "months"],
    31557600.0: ["y", "yr", "yrs", "year", "years"],
}
GENERAL_EXAMPLES = "'500ms', '30s', '5m', '2h', '60d', '1w' or '1y'"
SPELLINGS = [(unit, size) for size, units in UNITS.items() for unit in units]


@pytest.mark.parametrize(("unit", "size"), SPELLINGS)
@pytest.mark.parametrize("space", ["", " "])
def test_every_unit_spelling_with_or_without_a_space(unit: str, size: float, space: str) -> None:
    assert parse_duration(f"3{space}{unit}") == pytest.approx(3 * size)


@pytest.mark.parametrize(("unit", "size"), SPELLINGS)
def test_units_are_case_insensitive(unit: str, size: float) -> None:
    assert parse_duration(f"2{unit.upper()}") == pytest.approx(2 * size)
    assert parse_duration(f"2{unit.capitalize()}") == pytest.approx(2 * size)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1.5h", 5400.0),
        ("0.5s", 0.5),
        (".5s", 0.5),
        ("0.25 d", 21600.0),
        ("2.5ms", 0.0025),
        ("  5m  ", 300.0),
        ("60d", 5184000.0),
        ("1d", 86400.0),
        ("2m", 120.0),
    ],
)
def test_decimals_and_surrounding_spaces(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", [5, 1500, "5", "1500", " 1500 ", 1.5, "2.5", 0, "0", "1e3", "-0", 10**400, 1e308]
)
def test_a_bare_number_is_refused_with_a_hint_to_add_a_unit(value: object) -> None:
    with pytest.raises(InvalidDurationError, match="has no unit: add one") as info:
        parse_duration(value, where="dataRetention.policies.mood", allow_never=True)
    assert "5s" in str(info.value) or "s'" in str(info.value)
    assert str(info.value).startswith("dataRetention.policies.mood: ")


@pytest.mark.parametrize(
    ("value", "examples"),
    [
        ("5", ["5s", "5m", "5d"]),
        ("0.5", ["0.5s", "0.5m", "0.5d"]),
        ("1e5", ["100000s", "100000m", "100000d"]),
        ("1E-3", ["0.001s", "0.001m", "0.001d"]),
        ("5.", ["5s", "5m", "5d"]),
        ("+5", ["5s", "5m", "5d"]),
        ("-0", ["0s", "0m", "0d"]),
        ("5.e1", ["50s", "50m", "50d"]),
        (1e-07, ["0.0000001s", "0.0000001m", "0.0000001d"]),
        ("1e9", ["1000000000s"]),  # 1e9 minutes or days is over 1000 years
        ("1e20", []),
        (1e308, []),
        ("1e-200", []),  # written out, longer than 100 characters
        ("1e99999999999999999999", []),
        pytest.param(10**400, [], id="10**400"),
    ],
)
def test_a_bare_number_hints_only_at_durations_that_parse(
    value: object, examples: list[str]
) -> None:
    with pytest.raises(InvalidDurationError, match="has no unit: add one") as info:
        parse_duration(value, where="x")
    message = str(info.value)
    if examples:
        suggested = re.findall(r"'([^']*)'", message.partition(" for example ")[2])
        assert suggested == examples
        for example in suggested:  # a hint that would itself be refused misleads
            assert parse_duration(example) >= 0
    else:  # no value of its own: the general hint
        assert " for example " not in message
        assert message.endswith(f"; use a number and a unit such as {GENERAL_EXAMPLES}")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("1e5", "without an exponent"),
        ("5.", "without a trailing dot"),
        ("+5", "without its sign"),
        ("-.0e1", "without its sign or an exponent"),
        ("5.e1", "without an exponent or a trailing dot"),
    ],
)
def test_a_bare_number_hint_names_what_else_to_change(value: str, words: str) -> None:
    with pytest.raises(
        InvalidDurationError,
        match=f"has no unit: add one, and write the number {words}, for example ",
    ):
        parse_duration(value, where="x")


@pytest.mark.parametrize("value", ["-5", " -5 ", "-0.5", "-1e3", "-.5", "-5.", -5, -0.5, -1e308])
def test_a_negative_number_is_reported_as_negative(value: object) -> None:
    with pytest.raises(InvalidDurationError) as info:
        parse_duration(value, where="dialog.timeoutInterval")
    message = str(info.value)
    quoted = repr(value.strip() if isinstance(value, str) else value)
    assert message.startswith(f"dialog.timeoutInterval: {quoted} is negative, not a duration")
    assert "no unit" not in message
    assert "-5s" not in message


@pytest.mark.parametrize("value", ["-5m", "-0.5s", "-.5 h", "-1 fortnight"])
def test_a_negative_duration_with_a_unit_is_reported_as_negative(value: str) -> None:
    with pytest.raises(InvalidDurationError, match=r"is negative, not a duration"):
        parse_duration(value, where="x")


@pytest.mark.parametrize(("value", "seconds"), [("+5m", 300.0), ("-0s", 0.0), ("+0.5s", 0.5)])
def test_a_signed_duration_says_to_drop_the_sign(value: str, seconds: float) -> None:
    with pytest.raises(
        InvalidDurationError, match=re.escape(f"write it without the '{value[0]}' sign")
    ):
        parse_duration(value, where="x")
    assert parse_duration(value[1:]) == seconds  # what it says to write parses


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_number_that_is_not_finite_gets_no_hint_to_add_a_unit(value: float) -> None:
    with pytest.raises(InvalidDurationError) as info:
        parse_duration(value, where="x")
    assert (
        str(info.value)
        == f"x: {value!r} is not a duration; use a number and a unit such as {GENERAL_EXAMPLES}"
    )


def test_to_timedelta() -> None:
    assert to_timedelta(parse_duration("90s")) == timedelta(seconds=90)
    assert to_timedelta(None) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(timedelta(minutes=5), 300.0), (timedelta(days=60), 5184000.0), (timedelta(0), 0.0)],
)
def test_timedelta(value: timedelta, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["0s", "0.999ms", "0.0005ms", "0.0000001s", timedelta(0)])
def test_a_lifetime_under_1ms_would_expire_at_once_and_is_refused(value: object) -> None:
    with pytest.raises(InvalidDurationError, match=r"would expire at once: give at least 1ms"):
        parse_lifetime(value, where="expiry")
    with pytest.raises(InvalidDurationError, match=r"would expire at once"):
        parse_expiry(value)


@pytest.mark.parametrize(
    ("value", "seconds"), [("1ms", 0.001), ("1.5ms", 0.0015), ("60d", 5184000.0)]
)
def test_a_lifetime_of_1ms_or_more_is_kept_as_written(value: str, seconds: float) -> None:
    assert parse_lifetime(value, where="expiry") == seconds
    assert parse_lifetime("never", where="expiry") is None


def test_zero_is_a_duration_but_not_an_interval() -> None:
    assert parse_duration("0s") == 0.0
    with pytest.raises(InvalidDurationError, match="too short"):
        parse_interval("0s")


@pytest.mark.parametrize("text", ["never", "NEVER", " Never "])
def test_never_where_allowed(text: str) -> None:
    assert parse_duration(text, allow_never=True) is None


@pytest.mark.parametrize("text", ["never", "NEVER"])
def test_never_where_not_allowed(text: str) -> None:
    with pytest.raises(InvalidDurationError, match="not allowed here"):
        parse_duration(text, where="dialog.timeoutInterval")
    with pytest.raises(InvalidDurationError, match="not allowed here"):
        parse_interval(text)


@pytest.mark.parametrize(
    "value",
    [
        "1 fortnight",
        "",
        "   ",
        "60x",
        "-5m",
        "5 m s",
        "5\tm",
        "m",
        "5m5s",
        "1e3s",
        "five minutes",
        -5,
        -0.5,
        True,
        False,
        None,
        [5],
        {"m": 5},
        math.nan,
        math.inf,
        timedelta(seconds=-1),
    ],
)
def test_values_that_are_not_durations(value: object) -> None:
    with pytest.raises(InvalidDurationError):
        parse_duration(value, allow_never=True)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("1 fortnight", "unknown unit 'fortnight'"),
        ("60x", "unknown unit 'x'"),
        ("", "not a duration"),
        ("-5m", "not a duration"),
        (-5, "is negative"),
        (True, "not a duration"),
        (None, "not a duration"),
    ],
)
def test_errors_name_the_setting_and_quote_the_value(value: object, words: str) -> None:
    with pytest.raises(InvalidDurationError) as info:
        parse_duration(value, where="dataRetention.policies.email")
    message = str(info.value)
    assert message.startswith(f"dataRetention.policies.email: {quoted(value)}")
    assert words in message


def test_invalid_duration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="60x"):
        parse_duration("60x")


@pytest.mark.parametrize("value", ["0s", "0ms", timedelta(0), "1ms", "99ms"])
def test_interval_shorter_than_the_minimum(value: object) -> None:
    with pytest.raises(InvalidDurationError, match=r"too short.*at least 0\.1s"):
        parse_interval(value, where="dialog.janitorInterval")


@pytest.mark.parametrize(
    "value", ["1 fortnight", "", "60x", "-5m", -5, True, None, "never", math.inf]
)
def test_interval_refuses_what_is_not_a_duration(value: object) -> None:
    with pytest.raises(InvalidDurationError):
        parse_interval(value)


@pytest.mark.parametrize(("value", "seconds"), [("100ms", 0.1), ("10s", 10.0), ("2m", 120.0)])
def test_interval_at_or_above_the_minimum(value: object, seconds: float) -> None:
    assert parse_interval(value) == pytest.approx(seconds)


def test_interval_with_its_own_minimum() -> None:
    assert parse_interval("5s", minimum=parse_duration("5s")) == 5.0
    assert parse_interval("1ms", minimum=parse_duration("1ms")) == 0.001
    with pytest.raises(InvalidDurationError, match="at least 5s"):
        parse_interval("4s", minimum=parse_duration("5s"))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, NEVER),
        (5184000.0, "60d"),
        (86400.0, "1d"),
        (7200.0, "2h"),
        (300.0, "5m"),
        (120.0, "2m"),
        (90.0, "90s"),
        (604800.0, "1w"),
        (31557600.0, "1y"),
        (2629800.0, "1mo"),
        (365 * 86400.0, "365d"),
        (1.5, "1500ms"),
        (0.25, "250ms"),
        (0.0, "0ms"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["60d", "1d", "5m", "90s", "1500ms", "2w", "3y", "never"])
def test_format_then_parse_gives_the_same_duration(text: str) -> None:
    seconds = parse_duration(text, allow_never=True)
    assert parse_duration(format_duration(seconds), allow_never=True) == seconds


@pytest.mark.parametrize("text", ["1000.5s", "1.1h"])
def test_format_then_parse_of_uneven_durations(text: str) -> None:
    seconds = parse_duration(text)
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["\u0665m", "5\nm"])
def test_only_ascii_digits_and_a_space(text: str) -> None:
    with pytest.raises(InvalidDurationError):
        parse_duration(text)


@pytest.mark.parametrize("value", ["1001y", "9999999d", "366000d"])
def test_durations_over_a_thousand_years_are_refused(value: object) -> None:
    with pytest.raises(InvalidDurationError, match="longer than 1000 years: use 'never'"):
        parse_duration(value, allow_never=True)
    with pytest.raises(InvalidDurationError, match="1000 years: give at most 1000 years"):
        parse_duration(value)  # where 'never' is refused, the advice is not to use it


def test_a_thousand_years_is_the_longest_duration() -> None:
    assert parse_duration("1000y") == 1000 * 365.25 * 86400


# -- one type inside the code ----------------------------------------------------------------
def test_seconds_is_the_one_duration_type_and_is_exported() -> None:
    assert Seconds.__supertype__ is float  # a typed float: no cost on the hot path
    assert botmemory.Seconds is Seconds
    assert botmemory.DurationInput == str | timedelta


def _returns(function: Callable[..., object]) -> object:
    return typing.get_type_hints(function)["return"]


def test_the_parsers_return_seconds() -> None:
    assert _returns(parse_interval) is Seconds
    assert _returns(parse_expiry) == Seconds | None
    overloads = [_returns(f) for f in typing.get_overloads(parse_duration)]
    assert overloads == [Seconds, Seconds | None]
    assert typing.get_type_hints(format_duration)["duration"] == Seconds | None
    assert typing.get_type_hints(to_timedelta)["duration"] == Seconds | None


@pytest.mark.parametrize(
    ("holder", "name", "expected"),
    [
        (BotSettings, "session_timeout", Seconds),
        (BotSettings, "dialog_timeout", Seconds),
        (BotSettings, "dialog_janitor_interval", Seconds),
        (BotSettings, "policies", Mapping[str, Seconds | None]),
        (Settings, "janitor_interval", Seconds),
        (VariablePolicy, "ttl", Seconds | None),
        (JanitorReport, "duration", Seconds),
        (PostgresOptions, "lock_timeout", Seconds | None),
        (PostgresOptions, "connect_timeout", Seconds),
        (PostgresOptions, "command_timeout", Seconds),
        (RedisOptions, "lease_timeout", Seconds),
        (RedisOptions, "lock_wait", Seconds),
        (RedisOptions, "ttl_grace", Seconds),
        (SqliteStorage, "checkpoint_wait", Seconds),
    ],
)
def test_every_setting_that_is_a_duration_is_typed_seconds(
    holder: type, name: str, expected: object
) -> None:
    assert typing.get_type_hints(holder)[name] == expected


def test_interfaces_that_take_durations_take_seconds() -> None:
    janitor = typing.get_type_hints(Janitor.__init__)
    assert (janitor["interval"], janitor["session_interval"]) == (Seconds, Seconds | None)
    assert (
        typing.get_type_hints(RetentionPolicies.__init__)["policies"]
        == Mapping[str, Seconds | None]
    )
    within = typing.get_type_hints(SessionRecord.within)
    assert (within["session_timeout"], within["dialog_timeout"]) == (Seconds, Seconds)


def test_config_holds_the_durations_it_parsed_once() -> None:
    settings = load_settings(
        {
            "dialog": {"timeoutInterval": "2m", "sessionTimeoutInterval": "1h"},
            "dataRetention": {"janitorInterval": "30s", "policies": {"mood": "5m", "x": "never"}},
        }
    )
    bot = settings.for_bot("shop")
    assert (bot.dialog_timeout, bot.session_timeout, bot.dialog_janitor_interval) == (
        120.0,
        3600.0,
        10.0,
    )
    assert settings.janitor_interval == 30.0
    assert dict(bot.policies) == {"mood": 300.0, "x": None}
    assert RetentionPolicies(bot.policies).for_variable("mood").ttl == 300.0


def test_the_manual_clock_moves_by_durations_with_units_only() -> None:
    clock = ManualClock(1000.0)
    clock.advance("1.5s")
    clock.advance(timedelta(minutes=1))
    assert clock() == 1061.5
    for bare in (60, 0.5, "60"):
        with pytest.raises(InvalidDurationError, match="unit"):
            clock.advance(bare)  # type: ignore[arg-type]
    assert clock() == 1061.5


# What Botpress's duration parser, ``ms``, reads, from its own tests (src/parse.test.ts and
# src/whitespace.test.ts), in seconds rather than milliseconds.
MS_PARSES = [
    ("1m", 60.0),
    ("1h", 3600.0),
    ("2d", 172800.0),
    ("3w", 1814400.0),
    ("1s", 1.0),
    ("100ms", 0.1),
    ("1y", 31557600.0),
    ("1.5h", 5400.0),
    ("1   s", 1.0),
    ("53 YeArS", 1672552800.0),
    ("53 WeEkS", 32054400.0),
    ("53 DaYS", 4579200.0),
    ("53 HoUrs", 190800.0),
    ("53 MiLliSeCondS", 0.053),
    (".5ms", 0.0005),
    ("53 milliseconds", 0.053),
    ("17 msecs", 0.017),
    ("1 sec", 1.0),
    ("1 min", 60.0),
    ("1 hr", 3600.0),
    ("2 days", 172800.0),
    ("1 week", 604800.0),
    ("1 month", 2629800.0),
    ("1 year", 31557600.0),
    ("1.5 hours", 5400.0),
    (" 1h ", 3600.0),
    ("\t1 h\n", 3600.0),
    (" 5m ", 300.0),
    (" 1.5s ", 1.5),
]


@pytest.mark.parametrize(("text", "seconds"), MS_PARSES)
def test_what_botpress_ms_parses_means_the_same(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "\u2603",
        "10-.5",
        "foo",
        "",
        "   ",
        "\n\t ",
        "\u25b2" * 101,
        # ms reads these; botmemory refuses them on purpose: a bare number is
        # milliseconds to ms but has no unit here, and no expiry is negative
        "100",
        "-100ms",
        "-1.5h",
        "-.5h",
        "-100 milliseconds",
        " -3d ",
    ],
)
def test_what_botpress_ms_refuses_or_botmemory_refuses_on_purpose(text: str) -> None:
    with pytest.raises(InvalidDurationError):
        parse_duration(text)


def test_a_duration_is_at_most_100_characters() -> None:
    assert parse_duration("1" + " " * 98 + "s") == 1.0
    with pytest.raises(InvalidDurationError, match="101 characters long"):
        parse_duration("1" + " " * 99 + "s")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "x: null is not a duration; "),
        (True, "x: true is not a duration; "),
        (False, "x: false is not a duration; "),
        ({"a": "1d"}, "x: {'a': '1d'} is an object, not a duration; "),
        (["1d", None], "x: ['1d', null] is a list, not a duration; "),
        ("1 fortnight", "x: '1 fortnight' has an unknown unit 'fortnight'; "),
        ("it's", "x: 'it\\'s' is not a duration; "),
    ],
)
def test_a_bad_value_is_quoted_as_json5_writes_it(value: object, message: str) -> None:
    with pytest.raises(InvalidDurationError) as info:
        parse_duration(value, where="x")
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    "value",
    [int("9" * 4000), 10**5000, ["1d"] * 1000, {"k": "v" * 5000}],
    ids=["4000 digits", "5000 digits", "a long list", "a long object"],
)
def test_a_long_bad_value_is_cut_in_its_error(value: object) -> None:
    with pytest.raises(InvalidDurationError) as info:
        parse_duration(value, where="x")
    message = str(info.value)
    assert len(message) < 250, message  # the value cut to about 80 characters, the advice
    assert "sys.set_int_max_str_digits" not in message
