"""Conditions: a safe expression language, parsed once, never passed to eval."""

from __future__ import annotations

from typing import Any

import pytest

from botmemory.dialog import ExpressionError, compile_condition

CONTEXT: dict[str, Any] = {
    "event": {"type": "text", "text": "Yes please", "payload": None},
    "user": {"name": "Ada", "age": 36, "tags": ["vip", "beta"], "address": {"city": "Paris"}},
    "session": {},
    "temp": {"count": 3, "ratio": 0.5, "__dialog": {"node": "secret"}},
    "bot": {"open": True},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("temp.count > 2 and user.name", "Ada"),
        ("temp.count > 2 && user.name", "Ada"),
        ("temp.count > 5 or user.missing", None),
        ("temp.count > 5 || 'fallback'", "fallback"),
        ("not user.missing", True),
        ("!bot.open", False),
        ("temp.count == 3", True),
        ("temp.count === 3", True),
        ("temp.count != 3", False),
        ("'3' == temp.count", False),  # strict
        ("true == 1", False),
        ("user.address.city == 'Paris'", True),
        ("user['address']['city']", "Paris"),
        ("user.tags[0]", "vip"),
        ("user.tags[-1]", "beta"),
        ("user.tags[5]", None),
        ("'vip' in user.tags", True),
        ("'admin' not in user.tags", True),
        ("'Yes' in event.text", True),
        ("'city' in user.address", True),
        ("lower(event.text) in ['yes please', 'y']", True),
        ("startswith(lower(event.text), 'yes')", True),
        ("endswith(event.text, 'please')", True),
        ("contains(user.tags, 'beta')", True),
        ("len(user.tags) == 2", True),
        ("len(user.missing)", 0),
        ("exists(user.name) and not exists(user.email)", True),
        ("int('42') + 1", 43),
        ("number('2.5') * 2", 5.0),
        ("number('abc')", None),
        ("str(temp.count) + '!'", "3!"),
        ("'n=' + temp.count", "n=3"),
        ("upper(trim('  hi '))", "HI"),
        ("abs(-temp.count)", 3),
        ("round(temp.ratio * 3, 1)", 1.5),
        ("min(1, temp.count) + max(1, 2)", 3),
        ("7 % 4 - 6 / 4", 1.5),
        ("(1 + 2) * 3", 9),
        ("user.missing > 2", False),  # unlike kinds: false, not an error
        ("user.name < 'B'", True),
        ("null == user.missing", True),
        ("[1, 2] + [3]", [1, 2, 3]),
        ("temp.__dialog", None),
        ("[1] == [true]", False),  # strict at every depth
        ("[0] == [false]", False),
        ("[1] in [[true]]", False),
        ("[[1, 'a']] == [[1.0, 'a']]", True),
        ("[1] == [1]", True),
        ("user.address == user.address", True),
    ],
)
def test_evaluation(source: str, expected: object) -> None:
    if source == "temp.__dialog":
        with pytest.raises(ExpressionError):
            compile_condition(source)
        return
    assert compile_condition(source).evaluate(CONTEXT) == expected


def test_holds_uses_truthiness() -> None:
    for falsy in ("user.missing", "0", "''", "[]", "session"):
        assert not compile_condition(falsy).holds(CONTEXT)
    assert compile_condition("user.tags").holds(CONTEXT)


def test_private_keys_are_unreadable_even_when_computed() -> None:
    assert compile_condition("temp[lower('__DIALOG')]").evaluate(CONTEXT) is None


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os')",
        "user.__class__",
        "user._secret",
        "temp['__dialog']",
        "eval('1')",
        "getattr(user, 'name')",
        "user.name.upper()",
        "lambda: 1",
        "[x for x in user.tags]",
        "user.age ** 100",
        "x",
        "1 < 2 < 3",
        "temp.count = 1",
        "temp.count >",
        "'unterminated",
        "(" * 40 + "1" + ")" * 40,
        "",
        "a" * 1001,
    ],
)
def test_unsafe_or_malformed_conditions_are_rejected(source: str) -> None:
    with pytest.raises(ExpressionError):
        compile_condition(source)


@pytest.mark.parametrize("source", ["temp.count / 0", "user.name - 1", "min('a')"])
def test_run_time_errors_are_expression_errors(source: str) -> None:
    condition = compile_condition(source)
    with pytest.raises(ExpressionError):
        condition.evaluate(CONTEXT)


def test_errors_point_at_the_column() -> None:
    with pytest.raises(ExpressionError, match=r"unknown name 'tmp'.* at column 15"):
        compile_condition("user.name and tmp.x")


@pytest.mark.parametrize(
    "digits", [-(10**9), -(10**7), -400, -24, -23, -22, -21, -20, -5, -4, -3, -2, -1, 0, 3]
)
@pytest.mark.parametrize("value", [0, 7, 50, 51, 150, -250, 2**63 - 1, -(2**63), 9**1000, 1.5])
def test_round_gives_python_s_answer_without_work_beyond_its_values(
    value: int | float, digits: int
) -> None:
    """A digit count of -10**9 costs no more than -1: round's work is bounded by its
    values (10 ** 10**9 would take hours), and its answer is still Python's, on both
    sides of where it stops computing (for 2**63 - 1: -23 computed, -24 not; for 7: -3
    and -4; for 50: -4 and -5)."""
    condition = compile_condition("round(event.payload.v, event.payload.d)")
    got = condition.evaluate({"event": {"payload": {"v": value, "d": digits}}})
    expected = 0 if isinstance(value, int) and digits < -5000 else round(value, digits)
    assert got == expected
    assert type(got) is type(value)
