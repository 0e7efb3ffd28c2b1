"""Reading configuration files and reporting every problem in them.

Each problem names its file (relative to the data folder), the line of the key where it
can be found, the key path, and the quoted bad value.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn, TypeVar

import json5
from pydantic import AliasChoices, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from botmemory.config.files import GLOBAL_FILE, BotFile, GlobalFile, Section
from botmemory.durations import quoted

__all__ = [
    "ContentError",
    "Document",
    "dangling_link",
    "duplicate_keys",
    "key_line",
    "key_problem",
    "load_json5",
    "read_document",
    "syntax_problem",
    "validate",
]

_SYNTAX: Final = re.compile(r"<string>:(?P<line>\d+) (?P<reason>.*) at column (?P<column>\d+)")

_COMMENT: Final = re.compile(r"(?:^|\s)//")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")

MAX_FILE_DEPTH: Final = 32
"""How deep lists and objects may nest in a configuration or flow file."""


@dataclass(frozen=True)
class Document:
    """One source of configuration: where it comes from, what it holds, its text."""

    place: str
    data: object
    text: str | None = None


def read_document(root: Path, relative: str, problems: list[str]) -> Document | None:
    """Read the file at ``relative`` in ``root``; one that does not exist is empty.

    A link that leads nowhere is a problem, not a missing file: its settings (a bot's
    retention policies, say) would be silently dropped.
    """
    path = root / relative
    if not path.exists():
        dangling = (p for p in [path, *path.parents] if p.is_symlink() and not p.exists())
        link = next(dangling, None)
        if link is None or not link.is_relative_to(root):
            return Document(relative, {})
        problems.append(dangling_link(link.relative_to(root).as_posix(), link))
        return None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeError) as exc:
        problems.append(f"{relative}: cannot be read: {exc}")
        return None
    try:
        data, twice = load_json5(text)
    except ValueError as exc:
        problems.append(syntax_problem(relative, exc))
        return None
    problems.extend(duplicate_keys(relative, text, twice))  # and go on: report the rest too
    return Document(relative, data, text)


def dangling_link(place: str, link: Path) -> str:
    """The problem of ``link``, at ``place``, which leads to nothing."""
    return f"{place}: is a link to {os.readlink(link)!r}, which does not exist"


def load_json5(text: str) -> tuple[object, set[str]]:
    """Parse JSON5 text; return the value and the keys some object was given twice.

    Raise ``ValueError`` for a syntax error, :class:`ContentError` for lists and objects
    nested deeper than :data:`MAX_FILE_DEPTH` levels (what reads a file further recurses
    into it), a lone half of a surrogate pair (``"\\ud83d"``), ``NaN``/``Infinity`` or a
    whole number of more digits than Python reads (4300).
    """
    twice: set[str] = set()

    def pairs(items: Iterable[tuple[str, object]]) -> dict[str, object]:
        found: dict[str, object] = {}
        for key, value in items:
            if key in found:
                twice.add(key)
            found[key] = value
        return found

    too_long: list[str] = []

    def integer(digits: str, base: int = 10) -> int:
        try:
            return int(digits, base)
        except ValueError:  # more digits than Python reads: say where, not its advice
            too_long.append(digits)
            return 0

    json5_syntax = False
    try:  # plain JSON (a Botpress export is) parses thousands of times faster this way
        data = json.loads(text, object_pairs_hook=pairs, parse_int=integer)
    except RecursionError:
        _too_deep()
    except ValueError:
        twice.clear()  # JSON5 then, which also words the syntax errors
        too_long.clear()
        json5_syntax = True
        try:
            data = json5.loads(text, object_pairs_hook=pairs, parse_int=integer)
        except RecursionError:  # deeper than its parser goes, which is deeper than allowed
            _too_deep()
    if too_long:
        raise ContentError(_too_long(text, too_long[0]))
    if _depth(data) > MAX_FILE_DEPTH:
        _too_deep()
    if json5_syntax:
        data = _paired(data)  # as json pairs them
    _refuse_unstorable(data, text)
    return data, twice


class ContentError(ValueError):
    """A file parsed, but holds what botmemory cannot take: lists and objects nested
    deeper than :data:`MAX_FILE_DEPTH` levels, half of a surrogate pair, or a number
    that is not finite or has too many digits to be read."""


def _too_deep() -> NoReturn:
    raise ContentError(f"brackets and braces are nested deeper than {MAX_FILE_DEPTH} levels")


def _too_long(text: str, digits: str) -> str:
    """The problem of a whole number of more digits than Python reads, with its line."""
    line = text.count("\n", 0, max(0, text.find(digits))) + 1
    count = len(digits.lstrip("+-"))
    return f"line {line}: a number of {count} digits is longer than any value botmemory takes"


def _depth(data: object) -> int:
    """How many levels of lists and objects ``data`` nests (without recursion), counted
    up to one past :data:`MAX_FILE_DEPTH`."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, level)
            if level <= MAX_FILE_DEPTH:
                stack.extend((child, level + 1) for child in value)
    return deepest


def _paired(data: object) -> object:
    """``data`` with each escaped surrogate pair (``"\\ud83d\\ude00"``) made the one
    character it stands for: the JSON5 parser leaves the two halves apart."""
    if isinstance(data, str):
        if not _SURROGATE.search(data):
            return data
        return data.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    if isinstance(data, list):
        return [_paired(item) for item in data]
    if isinstance(data, dict):
        return {_paired(key): _paired(value) for key, value in data.items()}
    return data


def _refuse_unstorable(data: object, text: str) -> None:
    """Raise :class:`ContentError`, naming where (line and key path), for what no JSON
    value botmemory stores or sends can hold: a string with half of a surrogate pair (no
    UTF-8 text carries it), or JSON5's ``NaN`` and ``Infinity``."""
    stack: list[tuple[object, list[str | int]]] = [(data, [])]
    while stack:
        value, loc = stack.pop()
        if isinstance(value, dict):
            stack.extend((key, loc) for key in value)
            stack.extend((item, [*loc, key]) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, [*loc, i]) for i, item in enumerate(value))
        elif isinstance(value, str) and (lone := _SURROGATE.search(value)):
            problem = (
                f"{value[:40]!r} holds the escape \\u{ord(lone[0]):04x}, half of a surrogate "
                "pair without its other half"
            )
            raise ContentError(_at(text, loc, problem))
        elif isinstance(value, float) and not math.isfinite(value):
            number = "NaN" if math.isnan(value) else "a number past ±1.8e308 (or Infinity)"
            problem = f"{number} is not a JSON number: no value botmemory stores can hold it"
            raise ContentError(_at(text, loc, problem))


def _at(text: str, loc: list[str | int], problem: str) -> str:
    """``problem`` after the line and the path of ``loc`` in ``text``."""
    if not loc:
        return problem
    line = key_line(text, loc)
    path = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in loc).lstrip(".")
    return f"{'' if line is None else f'line {line}: '}{path}: {problem}"


def duplicate_keys(place: str, text: str, names: set[str]) -> list[str]:
    """Return a problem for each of ``names`` given twice in one object, with both lines.

    JSON5 keeps the last of two equal keys silently: a block pasted above an existing
    one would do nothing.
    """
    if not names:
        return []
    depths = _depths(text)
    problems: list[tuple[int, str]] = []
    for name in sorted(names):
        pattern = _key_pattern(name)
        objects: dict[int, list[int]] = {}
        for match in pattern.finditer(text):
            level = depths[match.start()]
            if level <= 0:
                continue
            owner = next(
                (i for i in range(match.start() - 1, -1, -1) if 0 <= depths[i] < level), -1
            )
            objects.setdefault(owner, []).append(text.count("\n", 0, match.start()) + 1)
        if all(len(lines) < 2 for lines in objects.values()):  # spelt in a way not searched
            problems.append(
                (
                    0,
                    f"{place}: key {name!r} is given twice in one object: JSON5 would keep "
                    "only the last; remove one",
                )
            )
        for lines in objects.values():
            if len(lines) > 1:
                first, *others = lines
                again = ", ".join(str(line) for line in others)
                problems.append(
                    (
                        first,
                        f"{place}, line {first}: key {name!r} is given again on line {again} "
                        "in the same object: JSON5 would keep only the last; remove one",
                    )
                )
    return [text for _, text in sorted(problems)]


def key_problem(doc: Document, loc: Sequence[str], message: str) -> str:
    """A problem about the key at ``loc`` of ``doc``, with its line when known."""
    line = None if doc.text is None else key_line(doc.text, loc)
    where = doc.place if line is None else f"{doc.place}, line {line}"
    return f"{where}: {'.'.join(loc)}: {message}"


def syntax_problem(place: str, exc: ValueError) -> str:
    """The problem of a file that :func:`load_json5` refused, with its line if known."""
    if isinstance(exc, ContentError):
        return f"{place}{', ' if str(exc).startswith('line ') else ': '}{exc}"
    match = _SYNTAX.fullmatch(str(exc))
    if match is None:
        return f"{place}: not valid JSON5: {exc}"
    reason = match["reason"]
    if reason.startswith('Unexpected "'):
        reason += " (is a comma, quote or bracket missing before it?)"
    return f"{place}, line {match['line']}, column {match['column']}: not valid JSON5: {reason}"


_F = TypeVar("_F", bound=BotFile)


def validate(model: type[_F], doc: Document | None, problems: list[str]) -> _F | None:
    if doc is None:
        return None
    if not isinstance(doc.data, dict):
        problems.append(f"{doc.place}: the top level must be an object, got {quoted(doc.data)}")
        return None
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        found = [_problem(model, doc, error) for error in exc.errors()]
        problems.extend(text for _, text in sorted(found, key=lambda item: item[0]))
        return None


def _problem(model: type[Section], doc: Document, error: ErrorDetails) -> tuple[int, str]:
    """Return the line (0 if unknown) and the text of one validation error."""
    # an int is a list's index: key_line finds the item's own line by it
    loc = [part for part in error["loc"] if part != "[key]"]
    line = None if doc.text is None else key_line(doc.text, loc)
    where = doc.place if line is None else f"{doc.place}, line {line}"
    detail = _detail(model, [str(part) for part in loc], error)
    path = ".".join(str(part) for part in loc)
    return line or 0, (f"{where}: {path}: {detail}" if loc else f"{where}: {detail}")


def _detail(model: type[Section], loc: list[str], error: ErrorDetails) -> str:
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return _unknown_key(model, loc)
    if kind == "config":
        return message
    # a problem is logged and shown on the page: the value of a token is never quoted
    got = "a value not shown (tokens are secret)" if loc[:1] == ["auth"] else quoted(error["input"])
    if kind in ("model_type", "dict_type"):
        return f"should be an object, got {got}"
    return f"{message.removeprefix('Input ')}, got {got}"


def _unknown_key(model: type[Section], loc: list[str]) -> str:
    parent, key = loc[:-1], loc[-1]
    keys = _keys(_section_at(model, parent))
    if key in keys:
        return f"another name for {keys[key][0]!r}, which is also given: give only one"
    if key in _keys(_section_at(GlobalFile, parent)):
        return f"only allowed in the global file ({GLOBAL_FILE}), not in a bot's file"
    hint = difflib.get_close_matches(key, keys, n=1)
    if hint:
        return f"unknown key {key!r}: did you mean {hint[0]!r}?"
    return f"unknown key {key!r}: the keys here are {', '.join(sorted(keys))}"


def _keys(section: type[Section] | None) -> dict[str, tuple[str, FieldInfo]]:
    """Map every spelling of a key in ``section`` to its main spelling and its field."""
    keys: dict[str, tuple[str, FieldInfo]] = {}
    for name, field in (section.model_fields if section else {}).items():
        alias = field.validation_alias
        spellings = alias.choices if isinstance(alias, AliasChoices) else [field.alias or name]
        for spelling in spellings:
            keys[str(spelling)] = (str(spellings[0]), field)
    return keys


def _section_at(model: type[Section], path: Sequence[str]) -> type[Section] | None:
    section: type[Section] = model
    for key in path:
        found = _keys(section).get(key)
        annotation = None if found is None else found[1].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, Section)):
            return None
        section = annotation
    return section


def key_line(text: str, loc: Sequence[str | int]) -> int | None:
    """Return the line of the key (or list item, for an ``int``) at ``loc`` in ``text``, or
    of its deepest parent found.

    Each key is looked for directly inside its parent's object, so that ``timeoutInterval``
    at the top level is not confused with ``dialog.timeoutInterval``.
    """
    depths = _depths(text)
    start, end, line = 0, len(text), None
    for key in loc:
        if isinstance(key, int):
            found = _item(text, depths, key, start, end)
            at = found
        else:
            match = _find_key(text, depths, key, start, end)
            found, at = (None, None) if match is None else (match.start(), match.end())
        if found is None or at is None:
            break
        line = text.count("\n", 0, found) + 1
        start = at
        end = _object_end(depths, start)
    return line


def _item(text: str, depths: list[int], index: int, start: int, end: int) -> int | None:
    """Where item ``index`` of the list that follows ``start`` begins (before ``end``)."""
    opening = next((i for i in range(start, end) if text[i] == "[" and depths[i] >= 0), None)
    if opening is None:
        return None
    level, commas = depths[opening], 0
    for i in range(opening + 1, end):
        if depths[i] < 0 or text[i].isspace():
            continue
        if depths[i] < level:  # the list's "]"
            return None
        if depths[i] == level and text[i] == ",":
            commas += 1
        elif commas == index:
            return i
    return None


def _depths(text: str) -> list[int]:
    """The nesting depth of every character; -1 inside strings and comments."""
    depths: list[int] = []
    depth, quote, i = 0, "", 0
    while i < len(text):
        char = text[i]
        if quote:
            depths.append(-1)
            if char == "\\":
                depths.append(-1)
                i += 2
                continue
            if char == quote:
                quote = ""
        elif text.startswith("//", i) or text.startswith("/*", i):
            close = text.find("\n" if text[i + 1] == "/" else "*/", i)
            stop = len(text) if close < 0 else close + (1 if text[i + 1] == "/" else 2)
            depths.extend([-1] * (stop - i))
            i = stop
            continue
        else:
            if char in "\"'":
                quote = char
            elif char in "{[":
                depth += 1
            elif char in "}]":
                depth -= 1
            depths.append(depth)
        i += 1
    return depths


def _object_end(depths: list[int], start: int) -> int:
    """Where the object (or value) that follows ``start`` ends."""
    base = _before(depths, start)
    opened = False
    for i in range(start, len(depths)):
        if depths[i] > base:
            opened = True
        elif opened and 0 <= depths[i] <= base:
            return i
    return len(depths)


def _find_key(text: str, depths: list[int], key: str, start: int, end: int) -> re.Match[str] | None:
    """Find ``key:`` (bare or quoted) directly inside the object between ``start`` and ``end``."""
    pattern = _key_pattern(key)
    level = _before(depths, start) + 1
    for match in pattern.finditer(text, start, end):
        if depths[match.start()] == level:  # code (not a string or comment), right depth
            return match
    return None


def _key_pattern(key: str) -> re.Pattern[str]:
    """``key:``, bare or quoted, each character as itself or escaped (``em\\u0061il``)."""
    return re.compile(rf"(?<![\w$])(['\"]?){''.join(map(_spellings, key))}\1\s*:")


def _spellings(char: str) -> str:
    """A pattern of ``char`` as JSON5 may write it in a key: itself, ``\\uXXXX`` (a pair of
    them beyond the BMP), ``\\xXX`` or a backslash before it."""
    code = ord(char)
    if code > 0xFFFF:
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        escaped = rf"\\u(?i:{high:04x})\\u(?i:{low:04x})"
    else:
        escaped = rf"\\u(?i:{code:04x})"
    if code < 0x100:
        escaped += rf"|\\x(?i:{code:02x})"
    if not (char.isalnum() or char in "\n\r\u2028\u2029"):  # '\b' is not 'b', '\n' not 'n'
        escaped += rf"|\\{re.escape(char)}"
    return f"(?:{re.escape(char)}|{escaped})"


def _before(depths: list[int], at: int) -> int:
    """The depth of the last code character before ``at`` (0 at the start)."""
    return next((d for d in reversed(depths[:at]) if d >= 0), 0)
