"""What the operators and functions of conditions mean, on JSON values.

Shared by :mod:`~botmemory.dialog.expressions` and :mod:`~botmemory.dialog.templates`,
so that a condition and a template read and print values the same way.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

from botmemory.dialog.errors import ExpressionError

__all__ = [
    "FUNCTIONS",
    "MAX_JOINED",
    "arithmetic",
    "compare",
    "is_number",
    "member",
    "plain",
    "to_text",
    "truthy",
]

MAX_JOINED: Final = 1_000_000
"""Characters (or list items) that ``+`` may join into one value of a condition."""

_Joinable = str | list[Any]

_ORDERS: Final[dict[str, Callable[[Any, Any], object]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_OPERATIONS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
}


def is_number(value: object) -> bool:
    """Return whether ``value`` is an int or a float (``true`` is not a number)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def truthy(value: object) -> bool:
    """Python truthiness: ``null``, ``false``, ``0``, ``""``, ``[]`` and ``{}`` are false."""
    return bool(value)


def to_text(value: object) -> str:
    """Print a value as a template does: ``null`` is empty, ``2.0`` is ``2``, true is ``true``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Mapping | list):
        return json.dumps(plain(value), ensure_ascii=False)
    return str(value)


def plain(value: object) -> object:
    """Return a copy of ``value`` made of plain dicts and lists (a memory becomes a dict),
    without the keys starting with ``_``, at any depth: flows never see them."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items() if not _private(key)}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def _private(key: object) -> bool:
    return isinstance(key, str) and key.startswith("_")


def _public_keys(value: Mapping[Any, object]) -> set[object]:
    return {key for key in value if not _private(key)}


def member(value: object, key: object) -> object:
    """Read ``value[key]`` in a JSON object or list; ``None`` if absent or private."""
    if _private(key):
        return None
    if isinstance(value, Mapping) and isinstance(key, str):
        return value.get(key)
    if isinstance(value, list):
        if isinstance(key, str) and key.isdigit():
            key = int(key)
        if isinstance(key, int) and not isinstance(key, bool):
            return value[key] if -len(value) <= key < len(value) else None
    return None


def _equal(a: object, b: object) -> bool:
    """Strict equality, at every depth: ``true`` is not ``1``, in a list or not."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if is_number(a) and is_number(b):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):  # private keys unseen, as always
        keys = _public_keys(a)
        return keys == _public_keys(b) and all(_equal(a[key], b[key]) for key in keys)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _in(needle: object, haystack: object) -> bool:
    if isinstance(haystack, str):
        return isinstance(needle, str) and needle in haystack
    if isinstance(haystack, list):
        return any(_equal(needle, item) for item in haystack)
    if isinstance(haystack, Mapping):
        return isinstance(needle, str) and not _private(needle) and needle in haystack
    return False


def compare(op: str, a: object, b: object) -> bool:
    """Apply a comparison; ``==`` is strict, an ordering of unlike kinds is false."""
    if op in ("==", "==="):
        return _equal(a, b)
    if op in ("!=", "!=="):
        return not _equal(a, b)
    if op == "in":
        return _in(a, b)
    if op == "not in":
        return not _in(a, b)
    if (is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
        return bool(_ORDERS[op](a, b))
    return False


def arithmetic(op: str, a: object, b: object) -> object:
    """Apply ``+ - * / %``: numbers, or ``+`` joining text or lists (up to MAX_JOINED)."""
    if op == "+" and (isinstance(a, str) or isinstance(b, str)):
        return _joined(to_text(a), to_text(b))
    if op == "+" and isinstance(a, list) and isinstance(b, list):
        return _joined(a, b)
    if not (is_number(a) and is_number(b)):
        raise ExpressionError(f"cannot compute {a!r} {op} {b!r}: {op} needs two numbers")
    if op in ("/", "%") and b == 0:
        raise ExpressionError(f"cannot compute {a!r} {op} {b!r}: division by zero")
    result = _OPERATIONS[op](a, b)
    if isinstance(result, float) and not math.isfinite(result):
        raise ExpressionError(f"cannot compute {a!r} {op} {b!r}: the result is not finite")
    return result


def _joined(a: _Joinable, b: _Joinable) -> _Joinable:
    if len(a) + len(b) > MAX_JOINED:
        raise ExpressionError(
            f"cannot join {len(a)} and {len(b)} characters or items: "
            f"the limit of a condition's value is {MAX_JOINED}"
        )
    return a + b  # type: ignore[operator]


def _to_number(value: object) -> int | float | None:
    if is_number(value):
        return value  # type: ignore[return-value]
    if not isinstance(value, str):
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    return int(number) if number.is_integer() and "." not in value else number


def _round(value: object, digits: object = 0) -> object:
    if not is_number(value) or not isinstance(digits, int) or isinstance(digits, bool):
        raise ExpressionError(f"round({value!r}, {digits!r}): give a number and whole digits")
    if isinstance(value, int) and digits < 0 and -digits > value.bit_length() // 3 + 2:
        return 0  # what round gives (|value| < 10 ** -digits / 100), without computing
        # 10 ** -digits, which takes seconds for -10**7 and hours for -10**9
    return round(value, digits)  # type: ignore[call-overload]


def _len(value: object) -> int:
    if isinstance(value, Mapping):
        return len(_public_keys(value))
    return len(value) if isinstance(value, str | list) else 0


def _on_text(name: str, method: Callable[[str, str], bool]) -> Callable[[object, object], bool]:
    def check(text: object, part: object) -> bool:
        return isinstance(text, str) and isinstance(part, str) and method(text, part)

    check.__name__ = name
    return check


def _extreme(pick: Callable[[list[Any]], object]) -> Callable[..., object]:
    def run(*values: object) -> object:
        if not values or not all(is_number(v) for v in values):
            raise ExpressionError(f"min() and max() take numbers, got {list(values)!r}")
        return pick(list(values))

    return run


def _integer(value: object) -> int | None:
    number = _to_number(value)
    return None if number is None else int(number)


FUNCTIONS: Final[dict[str, Callable[..., object]]] = {
    "len": _len,
    "lower": lambda v: v.lower() if isinstance(v, str) else v,
    "upper": lambda v: v.upper() if isinstance(v, str) else v,
    "trim": lambda v: v.strip() if isinstance(v, str) else v,
    "str": to_text,
    "number": _to_number,
    "int": _integer,
    "bool": truthy,
    "abs": lambda v: abs(v) if is_number(v) else None,
    "round": _round,
    "min": _extreme(min),
    "max": _extreme(max),
    "exists": lambda v: v is not None,
    "contains": lambda haystack, needle: _in(needle, haystack),
    "startswith": _on_text("startswith", str.startswith),
    "endswith": _on_text("endswith", str.endswith),
}
"""The only functions a condition may call: each takes and returns JSON values."""
