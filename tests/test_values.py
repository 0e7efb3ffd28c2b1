"""JSON values and paths inside them."""

from __future__ import annotations

import functools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botmemory.errors import InvalidValueError, ValueTooLargeError
from botmemory.values import (
    MAX_DEPTH,
    MISSING,
    delete_path,
    dumps,
    get_path,
    loads,
    parse_path,
    set_path,
    to_json_text,
    truncate_text,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_every_json_value_round_trips(value: object) -> None:
    text = to_json_text(value, "v", 1 << 20)
    assert loads(text) == value
    assert dumps(loads(text)) == text  # canonical: stable once stored


def test_canonical_text_sorts_keys() -> None:
    assert dumps({"b": 1, "a": {"d": None, "c": [True]}}) == '{"a":{"c":[true],"d":null},"b":1}'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": {1: 2}}, r"v\.a: object key 1"),
        ([1, (2,)], r"v\[1\]: a tuple"),
        (2**64, "18446744073709551616 is too large: integers must fit in 64 bits"),
        (10**40 - 1, "9" * 40 + " is too large"),  # printed in full up to 40 digits
        (10**40, "an integer of about 41 digits is too large"),
        pytest.param(-(10**5000), "an integer of about 5,001 digits", id="5001 digits"),
        pytest.param(
            functools.reduce(lambda inner, _: [inner], range(150), []),
            re.escape("v" + "[0]" * 13 + "...: nested deeper than 100 levels"),  # cut short
            id="deep",
        ),
        (float("nan"), "not a JSON number"),
    ],
)
def test_invalid_values_name_where_they_are(value: object, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        to_json_text(value, "v", 1 << 20)


def test_size_limit_counts_utf8_bytes() -> None:
    assert to_json_text("é" * 4, "v", 10) == '"éééé"'
    with pytest.raises(ValueTooLargeError, match="11 bytes"):
        to_json_text("é" * 4 + "x", "v", 10)


@pytest.mark.parametrize(
    ("path", "parsed"),
    [("a", ("a",)), ("a.b[0].c", ("a", "b", 0, "c")), ("[2]", (2,)), ("a[1][2]", ("a", 1, 2))],
)
def test_parse_path(path: str, parsed: tuple[object, ...]) -> None:
    assert parse_path(path) == parsed


@pytest.mark.parametrize("path", ["", "a..b", ".a", "a.", "a[x]", "a[-1]", "a b]"])
def test_malformed_paths(path: str) -> None:
    with pytest.raises(InvalidValueError, match="path"):
        parse_path(path)


def test_get_set_delete_path() -> None:
    value = set_path(MISSING, ("a", "b", 0), 1)
    assert value == {"a": {"b": [1]}}
    assert get_path(value, ("a", "b", 0)) == 1
    assert get_path(value, ("a", "x")) is MISSING
    assert get_path(value, ("a", "b", 5)) is MISSING
    assert delete_path(value, ("a", "b", 0))
    assert not delete_path(value, ("a", "b", 0))
    assert value == {"a": {"b": []}}
    with pytest.raises(InvalidValueError):
        set_path({"a": 1}, ("a", "b"), 2)
    with pytest.raises(InvalidValueError):
        set_path({"a": []}, ("a", 3), 2)


def nested(depth: int) -> object:
    value: object = 1
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


def test_values_may_nest_up_to_the_maximum_depth() -> None:
    assert loads(to_json_text(nested(MAX_DEPTH), "v", 1 << 20)) == nested(MAX_DEPTH)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 100_000])
def test_values_nested_deeper_are_invalid_not_a_recursion_error(depth: int) -> None:
    with pytest.raises(InvalidValueError, match=f"nested deeper than {MAX_DEPTH} levels"):
        to_json_text(nested(depth), "user.deep", 1 << 30)


def test_a_value_that_contains_itself_is_invalid() -> None:
    cyclic: list[object] = [1]
    cyclic.append(cyclic)
    looped: dict[str, object] = {}
    looped["self"] = {"again": looped}
    for value in (cyclic, looped):
        with pytest.raises(InvalidValueError, match="contains itself"):
            to_json_text(value, "v", 1 << 20)


def test_a_path_longer_than_the_maximum_depth_is_invalid() -> None:
    assert len(parse_path(".".join(["a"] * MAX_DEPTH))) == MAX_DEPTH
    with pytest.raises(InvalidValueError, match="longer than"):
        parse_path(".".join(["a"] * 5000))


@pytest.mark.parametrize("text", ["hello", "é" * 1000, "\x00" * 1000, "x" * 10_000, "😀" * 500])
@pytest.mark.parametrize("limit", [20, 100, 1000])
def test_truncate_text_fits_its_json_in_the_limit(text: str, limit: int) -> None:
    cut = truncate_text(text, limit)
    assert len(dumps(cut).encode()) <= limit
    assert cut == text or (cut.endswith("…") and text.startswith(cut[:-1]))
