"""The ``filter`` of a LangGraph search: which item values it keeps.

The semantics of LangGraph's own stores: each filter key names a top-level field of
the value; a plain value must equal the field (a dict compares field by field, a list
element by element); a dict of operators (``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``,
``$lte``) applies each. An order comparison with a string is between strings (by code
point, as LangGraph's SQL stores compare text); with a number, between numbers, a
field that reads as one (``"5"``, ``true``) counting as that number, as in
``InMemoryStore`` and ``PostgresStore``; with a missing field, or one that is no
number, it is false (``InMemoryStore`` raises).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

from botmemory.errors import InvalidValueError

__all__ = ["check_filter", "keeps"]

_ORDER: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
_OPERATORS: Final = frozenset({"$eq", "$ne", *_ORDER})


def check_filter(filter_: Mapping[str, Any] | None) -> None:
    """Raise :class:`InvalidValueError` for an operator LangGraph does not define."""
    for value in (filter_ or {}).values():
        if isinstance(value, Mapping):
            unknown = [k for k in value if k.startswith("$") and k not in _OPERATORS]
            if unknown:
                raise InvalidValueError(
                    f"search filter operator {unknown[0]!r} is unknown: "
                    f"use one of {', '.join(sorted(_OPERATORS))}"
                )
            fields = [k for k in value if not k.startswith("$")]
            if fields and len(fields) < len(value):
                raise InvalidValueError(
                    f"search filter {dict(value)!r} mixes operators and fields ({fields[0]!r}): "
                    "give operators only, or fields only"
                )
            check_filter({k: v for k, v in value.items() if not k.startswith("$")})


def keeps(filter_: Mapping[str, Any] | None, value: Mapping[str, Any]) -> bool:
    """Return whether an item whose value is ``value`` passes ``filter_``."""
    return all(_compare(value.get(key), wanted) for key, wanted in (filter_ or {}).items())


def _compare(found: Any, wanted: Any) -> bool:
    if isinstance(wanted, Mapping):
        if any(k.startswith("$") for k in wanted):
            return all(_apply(found, op, operand) for op, operand in wanted.items())
        return isinstance(found, Mapping) and all(
            _compare(found.get(k), v) for k, v in wanted.items()
        )
    if isinstance(wanted, list | tuple):
        return (
            isinstance(found, list | tuple)
            and len(found) == len(wanted)
            and all(_compare(f, w) for f, w in zip(found, wanted, strict=True))
        )
    return bool(found == wanted)


def _apply(found: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return bool(found == operand)
    if op == "$ne":
        return bool(found != operand)
    if isinstance(operand, str):
        return isinstance(found, str) and bool(_ORDER[op](found, operand))
    try:
        return _ORDER[op](float(found), float(operand))
    except (TypeError, ValueError):
        return False
