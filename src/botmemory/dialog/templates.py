"""Mustache templates for what the bot says and for the string arguments of actions.

::

    Hi {{user.name}}! You said {{event.text}}.
    {{#temp.items}}- {{.}}
    {{/temp.items}}{{^temp.items}}Nothing yet.{{/temp.items}}

Supported: variables (``{{a.b}}``, ``{{{a.b}}}`` and ``{{& a.b}}`` are the same: replies
are plain text, so nothing is HTML-escaped), sections ``{{#x}}...{{/x}}`` (once for a
truthy value, once per item of a list, where ``{{.}}`` is the item), inverted sections
``{{^x}}...{{/x}}`` and comments ``{{! ...}}``. Partials and delimiter changes are
refused. Outside sections a name starts from ``event``, ``user``, ``session``, ``temp`` or
``bot``; names starting with ``_`` are refused. A missing value prints as nothing.

Sections nest at most :data:`MAX_DEPTH` deep: a deeper template is refused when the
bot loads. Rendering has a budget: at most :data:`MAX_STEPS` tags and items (sections over lists
from a message cannot multiply without end) and :data:`MAX_OUTPUT` characters of
output. Over it, rendering raises :class:`TemplateError` and the turn fails.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, NoReturn

from botmemory.dialog.errors import TemplateError
from botmemory.dialog.expressions import ROOTS
from botmemory.dialog.operators import member, to_text, truthy

__all__ = ["MAX_DEPTH", "MAX_OUTPUT", "MAX_STEPS", "Template", "compile_template"]

MAX_DEPTH: Final = 32
"""Sections one inside the other, at most (as deep as a condition may nest)."""

MAX_STEPS: Final = 100_000
"""Parts (text, tags, section items) one rendering may visit."""
MAX_OUTPUT: Final = 262_144
"""Characters one rendering may produce (256 Ki)."""

_TAG: Final = re.compile(r"\{\{(\{)?\s*([#^/!&>=]?)\s*(.*?)\s*\}?\}\}", re.DOTALL)
_NAME: Final = re.compile(r"\.|[\w$-]+(?:\.[\w$-]+)*")
_STANDALONE: Final = frozenset("#^/!")


@dataclass(frozen=True)
class _Var:
    name: str
    path: tuple[str, ...]


@dataclass(frozen=True)
class _Section:
    name: str
    path: tuple[str, ...]
    inverted: bool
    children: tuple[_Part, ...]


_Part = str | _Var | _Section


@dataclass(frozen=True)
class Template:
    """A parsed template; render it against the event and the four memories."""

    source: str
    _parts: tuple[_Part, ...]

    @property
    def is_single_tag(self) -> bool:
        """Whether the template is exactly one variable, such as ``"{{event.payload}}"``."""
        return len(self._parts) == 1 and isinstance(self._parts[0], _Var)

    def render(self, context: Mapping[str, object]) -> str:
        """Return the text, with every tag replaced by what it names."""
        out: list[str] = []
        _render(self._parts, [context], out, _Budget(self.source))
        return "".join(out)

    def value(self, context: Mapping[str, object]) -> object:
        """Return the named value itself for a single tag (keeping its type), else the text."""
        part = self._parts[0] if self._parts else ""
        if self.is_single_tag and isinstance(part, _Var):
            return _lookup(part.path, [context])
        return self.render(context)


def compile_template(source: str) -> Template:
    """Parse ``source``; raise :class:`TemplateError` saying what is wrong and where."""
    if not isinstance(source, str):
        raise TemplateError(f"template {source!r} is not a string")
    tokens = _tokenize(source)
    parts, _ = _build(source, tokens, 0, None, in_section=False)
    return Template(source, tuple(parts))


# --- Parsing ------------------------------------------------------------------------

_Token = tuple[str, str, int]  # (kind, text or name, offset); kind "" is plain text


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    for match in _TAG.finditer(source):
        start, end = match.span()
        kind, name = match[2], match[3]
        if kind in _STANDALONE:
            start, end = _standalone(source, start, end)
        if start > position:
            tokens.append(("", source[position:start], position))
        tokens.append((kind or "var", name, match.start()))
        position = max(position, end)
    if "{{" in source[position:]:
        _fail(source, source.index("{{", position), "'{{' is never closed with '}}'")
    if position < len(source):
        tokens.append(("", source[position:], position))
    return tokens


def _standalone(source: str, start: int, end: int) -> tuple[int, int]:
    """Widen a section or comment tag alone on its line to the whole line."""
    line_start = source.rfind("\n", 0, start) + 1
    line_end = source.find("\n", end)
    line_end = len(source) if line_end < 0 else line_end + 1
    if source[line_start:start].strip() or source[end:line_end].strip():
        return start, end
    return line_start, line_end


def _build(
    source: str,
    tokens: list[_Token],
    index: int,
    section: _Token | None,
    *,
    in_section: bool,
    depth: int = 0,
) -> tuple[list[_Part], int]:
    if depth > MAX_DEPTH and section is not None:  # depth 0 is the template, no section
        _fail(source, section[2], f"sections are nested more than {MAX_DEPTH} deep")
    parts: list[_Part] = []
    while index < len(tokens):
        kind, name, offset = tokens[index]
        index += 1
        if kind == "":
            parts.append(name)
        elif kind == "!":
            continue
        elif kind == "/":
            if section is None or _path(source, name, offset, True) != _path(
                source, section[1], section[2], True
            ):
                opened = "nothing is open" if section is None else f"{{{{#{section[1]}}}}} is open"
                _fail(source, offset, f"{{{{/{name}}}}} closes nothing here: {opened}")
            return parts, index
        elif kind in ("#", "^"):
            path = _path(source, name, offset, in_section)
            children, index = _build(
                source, tokens, index, tokens[index - 1], in_section=True, depth=depth + 1
            )
            parts.append(_Section(name, path, kind == "^", tuple(children)))
        elif kind in ("var", "&"):
            parts.append(_Var(name, _path(source, name, offset, in_section)))
        else:
            _fail(source, offset, f"'{{{{{kind}' tags (partials, delimiters) are not supported")
    if section is not None:
        _fail(source, section[2], f"section {{{{#{section[1]}}}}} is never closed")
    return parts, index


def _path(source: str, name: str, offset: int, in_section: bool) -> tuple[str, ...]:
    if not name:
        _fail(source, offset, "empty tag: write a name such as {{user.name}}")
    if _NAME.fullmatch(name) is None:
        _fail(source, offset, f"{{{{{name}}}}} is not a name such as user.name or temp.items.0")
    if name == ".":
        if not in_section:
            _fail(source, offset, "{{.}} is only meaningful inside a section")
        return (".",)
    path = tuple(name.split("."))
    if any(segment.startswith("_") for segment in path):
        _fail(source, offset, f"{{{{{name}}}}}: names starting with '_' are private")
    if not in_section and path[0] not in ROOTS:
        roots = ", ".join(sorted(ROOTS))
        _fail(source, offset, f"{{{{{name}}}}}: unknown name {path[0]!r}, start from {roots}")
    return path


def _fail(source: str, offset: int, reason: str) -> NoReturn:
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    shown = source if len(source) <= 80 else source[:77] + "..."
    raise TemplateError(f"template {shown!r}: {reason} (line {line}, column {column})")


# --- Rendering ----------------------------------------------------------------------


def _lookup(path: tuple[str, ...], stack: Sequence[object]) -> object:
    if path == (".",):
        return stack[-1]
    head, rest = path[0], path[1:]
    for frame in reversed(stack):
        if isinstance(frame, Mapping) and head in frame and not head.startswith("_"):
            value: object = frame[head]
            for segment in rest:
                value = member(value, segment)
            return value
    return None


class _Budget:
    """What one rendering may still spend: steps and characters of output."""

    __slots__ = ("size", "source", "steps")

    def __init__(self, source: str) -> None:
        self.source = source
        self.steps = MAX_STEPS
        self.size = MAX_OUTPUT

    def spend(self, text: str = "") -> None:
        self.steps -= 1
        self.size -= len(text)
        if self.steps < 0 or self.size < 0:
            shown = self.source if len(self.source) <= 80 else self.source[:77] + "..."
            over = f"{MAX_STEPS} steps" if self.steps < 0 else f"{MAX_OUTPUT} characters"
            raise TemplateError(
                f"template {shown!r}: rendering went over its budget of {over} "
                "(a section over a large list?)"
            )


def _render(parts: Sequence[_Part], stack: list[object], out: list[str], budget: _Budget) -> None:
    for part in parts:
        if isinstance(part, str):
            budget.spend(part)
            out.append(part)
        elif isinstance(part, _Var):
            text = to_text(_lookup(part.path, stack))
            budget.spend(text)
            out.append(text)
        else:
            budget.spend()
            _render_section(part, stack, out, budget)


def _render_section(
    section: _Section, stack: list[object], out: list[str], budget: _Budget
) -> None:
    value = _lookup(section.path, stack)
    if section.inverted:
        if not truthy(value):
            _render(section.children, stack, out, budget)
        return
    items = value if isinstance(value, list) else [value] if truthy(value) else []
    for item in items:
        budget.spend()
        stack.append(item)
        _render(section.children, stack, out, budget)
        stack.pop()
