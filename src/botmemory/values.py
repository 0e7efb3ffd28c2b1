"""JSON values: validation, canonical text, and paths inside a value (``a.b[0].c``)."""

from __future__ import annotations

import math
import re
from typing import Final, TypeAlias, cast

import orjson

from botmemory.errors import InvalidValueError, ValueTooLargeError

__all__ = [
    "MAX_DEPTH",
    "MISSING",
    "JsonValue",
    "Path",
    "delete_path",
    "dumps",
    "get_path",
    "loads",
    "parse_path",
    "set_path",
    "to_json_text",
    "truncate_text",
]

JsonValue: TypeAlias = dict[str, "JsonValue"] | list["JsonValue"] | str | int | float | bool | None
Path: TypeAlias = tuple[str | int, ...]


class _Missing:
    """Marks an absent value (distinct from a stored JSON ``null``)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

MAX_DEPTH: Final = 100
"""How deep values nest (objects and lists inside each other) and how long a path is."""

_INT_RANGE: Final = range(-(2**63), 2**64)
_SEGMENT: Final = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_PATH: Final = re.compile(r"(?:[^.\[\]]+|\[\d+\])(?:\.[^.\[\]]+|\[\d+\])*")


def dumps(value: JsonValue) -> str:
    """Return the canonical JSON text of ``value`` (sorted keys, no spaces)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def loads(text: str | bytes) -> JsonValue:
    """Parse JSON text stored by botmemory."""
    value: JsonValue = orjson.loads(text)
    return value


def to_json_text(value: object, where: str, max_bytes: int) -> str:
    """Validate ``value`` as JSON and return its canonical text.

    Raises :class:`InvalidValueError` naming ``where`` (for example ``user.email``)
    when the value is not JSON, nests deeper than :data:`MAX_DEPTH` or contains itself,
    and :class:`ValueTooLargeError` when its text is larger than ``max_bytes``.
    """
    if not _is_json(value, 0):
        _check(value, where, 0)  # raises, naming the first bad part
    try:
        text = dumps(value)  # type: ignore[arg-type]
    except orjson.JSONEncodeError as exc:  # a string that is not valid Unicode
        raise InvalidValueError(f"{where}: not a JSON value: {exc}") from None
    if len(text) * 4 > max_bytes and len(text.encode()) > max_bytes:
        raise ValueTooLargeError(
            f"{where}: value is {len(text.encode())} bytes of JSON, over the limit of "
            f"{max_bytes} bytes (limits.maxValueBytes)"
        )
    return text


def is_json_number(value: object) -> bool:
    """Whether ``value`` is a number botmemory stores: finite, an integer in range."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value in _INT_RANGE
    return isinstance(value, float) and math.isfinite(value)


def truncate_text(text: str, max_json_bytes: int) -> str:
    """Return ``text``, cut (ending in "…") so that its JSON string fits in ``max_json_bytes``."""
    size = len(dumps(text).encode())
    if size <= max_json_bytes:
        return text
    cut = text
    while size > max_json_bytes and cut:
        cut = cut[: max(0, len(cut) * max_json_bytes // size - 1)]
        size = len(dumps(cut + "…").encode())
    return cut + "…"


def _is_json(value: object, depth: int) -> bool:
    """Whether ``value`` passes :func:`_check` (quickly: no paths built for messages)."""
    kind = type(value)
    if value is None or kind is str or kind is bool:
        return True
    if kind is int:
        return value in _INT_RANGE
    if kind is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    if depth >= MAX_DEPTH:
        return False
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str or not _is_json(item, depth + 1):
                return False
        return True
    if kind is list:
        for item in value:  # type: ignore[attr-defined]  # noqa: SIM110 - a loop is faster
            if not _is_json(item, depth + 1):
                return False
        return True
    return False


def _check(value: object, where: str, depth: int) -> None:
    kind = type(value)
    if value is None or kind is str or kind is bool:
        return
    if kind is int:
        if value not in _INT_RANGE:
            raise InvalidValueError(
                f"{where}: {_shown_int(value)} is too large: integers must fit in 64 bits"
            )
        return
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise InvalidValueError(f"{where}: {value!r} is not a JSON number")
        return
    if (kind is dict or kind is list) and depth >= MAX_DEPTH:
        raise InvalidValueError(
            f"{where if len(where) <= 60 else where[:40] + '...'}: nested deeper than "
            f"{MAX_DEPTH} levels (or it contains itself)"
        )
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                raise InvalidValueError(
                    f"{where}: object key {key!r} is a {type(key).__name__}; JSON keys are strings"
                )
            _check(item, f"{where}.{key}", depth + 1)
        return
    if kind is list:
        for index, item in enumerate(value):  # type: ignore[arg-type]
            _check(item, f"{where}[{index}]", depth + 1)
        return
    raise InvalidValueError(
        f"{where}: a {kind.__name__} is not a JSON value; "
        "use dicts, lists, strings, numbers, booleans or None"
    )


_INDEX: Final = re.compile(r"0|[1-9][0-9]*")


def parse_path(path: str) -> Path:
    """Split ``"a.b[0].c"`` into ``("a", "b", 0, "c")``."""
    if not isinstance(path, str) or _PATH.fullmatch(path) is None:
        raise InvalidValueError(f"path {path!r} is invalid: use a form like 'a.b[0].c'")
    segments = tuple(name if name else int(index) for name, index in _SEGMENT.findall(path))
    if len(segments) > MAX_DEPTH:
        raise InvalidValueError(f"path {path[:80]!r}... is longer than {MAX_DEPTH} segments")
    return segments


def get_path(value: JsonValue, path: Path) -> JsonValue | _Missing:
    """Return what ``path`` points at inside ``value``, or ``MISSING``."""
    current: JsonValue = value
    for segment in path:
        if isinstance(segment, int):
            if not isinstance(current, list) or segment >= len(current):
                return MISSING
            current = current[segment]
        else:
            if not isinstance(current, dict) or segment not in current:
                return MISSING
            current = current[segment]
    return current


def list_indexes(value: JsonValue | _Missing, path: Path) -> Path:
    """``path`` with each name made of digits that meets a list of ``value`` read as that
    list's index, as Botpress's key-value store (lodash) reads ``items.0``: the first
    item of a list, a key of an object."""
    found: list[str | int] = []
    current: JsonValue | _Missing = value
    for segment in path:
        if isinstance(current, list) and isinstance(segment, str) and _INDEX.fullmatch(segment):
            segment = int(segment)
        found.append(segment)
        current = MISSING if isinstance(current, _Missing) else get_path(current, (segment,))
    return tuple(found)


def set_path(value: JsonValue | _Missing, path: Path, new: JsonValue) -> JsonValue:
    """Return ``value`` with ``new`` stored at ``path``, creating objects on the way.

    A list index may point at an existing item or one past the end (append). Going
    through a string, number, boolean or null raises :class:`InvalidValueError`.
    """
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        if isinstance(value, _Missing):
            value = []
        if not isinstance(value, list) or head > len(value):
            raise InvalidValueError(f"cannot set index [{head}] in {_describe(value)}")
        if head == len(value):
            value.append(set_path(MISSING, rest, new))
        else:
            value[head] = set_path(value[head], rest, new)
        return value
    if isinstance(value, _Missing):
        value = {}
    if not isinstance(value, dict):
        raise InvalidValueError(f"cannot set key {head!r} in {_describe(value)}")
    value[head] = set_path(value.get(head, MISSING), rest, new)
    return value


def delete_path(value: JsonValue, path: Path) -> bool:
    """Remove what ``path`` points at inside ``value``; return whether it was there."""
    parent = get_path(value, path[:-1])
    last = path[-1]
    if isinstance(last, int) and isinstance(parent, list) and last < len(parent):
        del parent[last]
        return True
    if isinstance(last, str) and isinstance(parent, dict) and last in parent:
        del parent[last]
        return True
    return False


def _describe(value: object) -> str:
    return "a list" if isinstance(value, list) else f"a {type(value).__name__} value"


def _shown_int(value: object) -> str:
    """An integer for an error message: a long one by its number of digits, not in full
    (Python refuses to print one of over 4,300 digits anyway)."""
    size = abs(int(cast(int, value)))
    if size < 10**40:
        return str(value)
    return f"an integer of about {int(size.bit_length() * math.log10(2)) + 1:,} digits"
