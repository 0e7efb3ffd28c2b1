"""Conditions: a small, safe expression language over the event and the four memories.

::

    temp.count > 2 and user.name
    event.text == "yes" || lower(event.text) in ["y", "ok"]
    not exists(user.email)

A condition is parsed once, when its flow loads, into Python closures: nothing is
ever passed to ``eval``. Names start from ``event``, ``user``, ``session``, ``temp`` or
``bot``; ``.name`` and ``[key]`` read inside JSON objects and lists (a missing one is
``null``); names starting with ``_`` are refused; the only calls are the functions in
:data:`FUNCTIONS`. Operators: ``or ||``, ``and &&``, ``not !``, ``== != === !== < <= > >=
in``, ``not in``, ``+ - * / %``. ``==`` is strict (``"3" == 3`` is false); an ordering
between values of different kinds (``null > 2``) is false rather than an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, NoReturn

from botmemory.dialog.errors import ExpressionError
from botmemory.dialog.operators import FUNCTIONS, arithmetic, compare, member, truthy
from botmemory.storage.base import SCOPES

__all__ = ["ROOTS", "Condition", "compile_condition"]

ROOTS: Final = frozenset({"event", *SCOPES})
"""The names a condition (or a template) may start from."""
MAX_LENGTH: Final = 1000
MAX_DEPTH: Final = 32

Context = Mapping[str, object]
Evaluator = Callable[[Context], object]

_TOKEN: Final = re.compile(
    r"""\s*(?:
      (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
     |(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
     |(?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
     |(?P<op>===|!==|==|!=|<=|>=|&&|\|\||[<>!+\-*/%().\[\],])
    )""",
    re.VERBOSE,
)
_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r"}
_LITERALS: Final[dict[str, object]] = {
    "true": True,
    "True": True,
    "false": False,
    "False": False,
    "null": None,
    "None": None,
}
_COMPARE: Final = frozenset({"==", "!=", "===", "!==", "<", "<=", ">", ">=", "in"})


@dataclass(frozen=True)
class Condition:
    """A parsed condition; evaluate it against the event and the four memories."""

    source: str
    _run: Evaluator

    def evaluate(self, context: Context) -> object:
        """Return the value of the expression (raises :class:`ExpressionError`)."""
        return self._run(context)

    def holds(self, context: Context) -> bool:
        """Return whether the expression is true in ``context``."""
        return truthy(self._run(context))


def compile_condition(source: str) -> Condition:
    """Parse ``source``; raise :class:`ExpressionError` saying what is wrong and where."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError(f"condition {source!r} is empty: write an expression")
    if len(source) > MAX_LENGTH:
        raise ExpressionError(
            f"condition is {len(source)} characters long: the limit is {MAX_LENGTH}"
        )
    parser = _Parser(source)
    run = parser.expression()
    if parser.peek() is not None:
        parser.fail(f"unexpected {parser.peek()!r}")
    return Condition(source, run)


# --- Building closures -------------------------------------------------------------


def _either(a: Evaluator, b: Evaluator) -> Evaluator:
    return lambda c: a(c) or b(c)


def _both(a: Evaluator, b: Evaluator) -> Evaluator:
    return lambda c: a(c) and b(c)


def _binary(op: str, a: Evaluator, b: Evaluator) -> Evaluator:
    return lambda c: arithmetic(op, a(c), b(c))


def _attribute(run: Evaluator, name: str) -> Evaluator:
    return lambda c: member(run(c), name)


def _index(run: Evaluator, key: Evaluator) -> Evaluator:
    return lambda c: member(run(c), key(c))


def _call(name: str, function: Callable[..., object], args: list[Evaluator]) -> Evaluator:
    def run(ctx: Context) -> object:
        values = [arg(ctx) for arg in args]
        try:
            return function(*values)
        except ExpressionError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise ExpressionError(f"{name}() failed on {values!r}: {exc}") from None

    return run


# --- Parsing ------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the tokens of one condition; builds closures."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens: list[tuple[str, str, int]] = []
        self.pos = 0
        self.depth = 0
        self._tokenize()

    def _tokenize(self) -> None:
        index = 0
        text = self.source
        while index < len(text):
            if text[index:].strip() == "":
                break
            match = _TOKEN.match(text, index)
            if match is None or match.lastgroup is None:
                column = len(text) - len(text[index:].lstrip()) + 1
                self.fail(f"unexpected character {text[column - 1]!r}", column)
            kind = match.lastgroup
            self.tokens.append((kind, match[kind], match.start(kind) + 1))
            index = match.end()

    def fail(self, reason: str, column: int | None = None) -> NoReturn:
        """Raise an :class:`ExpressionError` pointing at the current token."""
        if column is None:
            column = self.tokens[self.pos][2] if self.pos < len(self.tokens) else len(self.source)
        raise ExpressionError(f"condition {self.source!r}: {reason} at column {column}")

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self, *values: str) -> str | None:
        token = self.peek()
        if token is not None and token in values and self.tokens[self.pos][0] != "string":
            self.pos += 1
            return token
        return None

    def expect(self, value: str) -> None:
        if self.take(value) is None:
            found = self.peek()
            self.fail(f"expected {value!r}, found {'the end' if found is None else repr(found)}")

    def expression(self) -> Evaluator:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"nested deeper than {MAX_DEPTH} levels")
        run = self._or()
        self.depth -= 1
        return run

    def _or(self) -> Evaluator:
        left = self._and()
        while self.take("or", "||"):
            left = _either(left, self._and())
        return left

    def _and(self) -> Evaluator:
        left = self._not()
        while self.take("and", "&&"):
            left = _both(left, self._not())
        return left

    def _not(self) -> Evaluator:
        if self.take("not", "!"):
            inner = self._nested(self._not)
            return lambda c: not truthy(inner(c))
        return self._comparison()

    def _nested(self, parse: Callable[[], Evaluator]) -> Evaluator:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"nested deeper than {MAX_DEPTH} levels")
        run = parse()
        self.depth -= 1
        return run

    def _comparison(self) -> Evaluator:
        left = self._additive()
        op = self._compare_op()
        if op is None:
            return left
        right = self._additive()
        if self._compare_op() is not None:
            self.fail("chained comparisons are not allowed: join them with 'and'")
        return lambda c: compare(op, left(c), right(c))

    def _compare_op(self) -> str | None:
        following = self.tokens[self.pos + 1][1] if self.pos + 1 < len(self.tokens) else None
        if self.peek() == "not" and following == "in":
            self.pos += 2
            return "not in"
        return self.take(*_COMPARE)

    def _additive(self) -> Evaluator:
        left = self._multiplicative()
        while op := self.take("+", "-"):
            left = _binary(op, left, self._multiplicative())
        return left

    def _multiplicative(self) -> Evaluator:
        left = self._unary()
        while op := self.take("*", "/", "%"):
            left = _binary(op, left, self._unary())
        return left

    def _unary(self) -> Evaluator:
        if self.take("-"):
            inner = self._nested(self._unary)
            return lambda c: arithmetic("-", 0, inner(c))
        return self._postfix(self._primary())

    def _postfix(self, run: Evaluator) -> Evaluator:
        while True:
            if self.take("."):
                run = _attribute(run, self._name("after '.'"))
            elif self.take("["):
                key = self._key()
                self.expect("]")
                run = _index(run, key)
            else:
                return run

    def _key(self) -> Evaluator:
        kind, value, _ = self.tokens[self.pos] if self.pos < len(self.tokens) else ("", "", 0)
        if kind == "string" and _unquote(value).startswith("_"):
            self.fail(f"{value} is a private name: names starting with '_' are not readable")
        return self.expression()

    def _name(self, where: str) -> str:
        if self.pos >= len(self.tokens) or self.tokens[self.pos][0] != "name":
            self.fail(f"expected a name {where}")
        name = self.tokens[self.pos][1]
        if name.startswith("_"):
            self.fail(f"{name!r} is a private name: names starting with '_' are not readable")
        self.pos += 1
        return name

    def _primary(self) -> Evaluator:
        if self.pos >= len(self.tokens):
            self.fail("the expression ends too early")
        kind, value, _ = self.tokens[self.pos]
        if kind == "number":
            self.pos += 1
            number = float(value) if any(ch in value for ch in ".eE") else int(value)
            return lambda c: number
        if kind == "string":
            self.pos += 1
            text = _unquote(value)
            return lambda c: text
        if self.take("("):
            inner = self.expression()
            self.expect(")")
            return inner
        if self.take("["):
            return self._list()
        if kind == "name":
            return self._identifier()
        self.fail(f"unexpected {value!r}")

    def _list(self) -> Evaluator:
        items: list[Evaluator] = []
        while self.take("]") is None:
            if items:
                self.expect(",")
            items.append(self.expression())
        return lambda c: [item(c) for item in items]

    def _identifier(self) -> Evaluator:
        column = self.tokens[self.pos][2]
        name = self._name("")
        if name in _LITERALS:
            constant = _LITERALS[name]
            return lambda c: constant
        if self.take("("):
            return self._arguments(name, column)
        if name not in ROOTS:
            self.fail(
                f"unknown name {name!r}: start from {', '.join(sorted(ROOTS))}, "
                f"or call one of {', '.join(sorted(FUNCTIONS))}",
                column,
            )
        return lambda c: c.get(name)

    def _arguments(self, name: str, column: int) -> Evaluator:
        function = FUNCTIONS.get(name)
        if function is None:
            allowed = ", ".join(sorted(FUNCTIONS))
            self.fail(f"{name}() is not allowed: the functions are {allowed}", column)
        args: list[Evaluator] = []
        while self.take(")") is None:
            if args:
                self.expect(",")
            args.append(self.expression())
        return _call(name, function, args)


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), token[1:-1])
