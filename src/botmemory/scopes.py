"""A memory scope as a turn sees it: a mutable mapping of JSON values that knows what changed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Final

from botmemory.errors import InvalidValueError
from botmemory.ids import validate_id
from botmemory.storage.base import Scope, StoredVar
from botmemory.values import JsonValue, loads, to_json_text

__all__ = ["ScopeMemory"]

_CONTAINERS: Final = (dict, list)
_UNPARSED: Final = object()
MAX_NAME_LENGTH: Final = 255


class ScopeMemory(MutableMapping[str, JsonValue]):
    """The variables of one scope (user, session, temp or bot) during a turn.

    Assigning a value that is not JSON, or larger than ``limits.maxValueBytes``,
    raises :class:`~botmemory.errors.InvalidValueError` at once, naming the scope
    and the variable. Nested values may be changed in place: the turn compares
    each variable with what it loaded, and persists only what differs.

    The scope remembers what the turn read: each name looked up (found or not),
    and which names it holds when it is iterated or counted. The turn's commit checks
    that none of it changed meanwhile (:class:`~botmemory.errors.ConflictError`).
    :meth:`incr` changes a number without reading it, so concurrent increments
    never conflict.
    """

    def __init__(
        self,
        scope: Scope,
        texts: Mapping[str, str],
        max_value_bytes: int,
        expiries: Mapping[str, float | None] | None = None,
        values: Mapping[str, JsonValue] | None = None,
        stored: Sequence[StoredVar] = (),
    ) -> None:
        """``texts`` maps names to stored JSON text, parsed on first access.

        ``values`` gives the parsed value of names whose loaded value is not their
        stored text (for example a user variable without its expired fields).
        ``stored`` are the rows storage holds, shown or not (an expired user
        variable is stored but not shown): the versions a commit checks.
        """
        self.scope = scope
        self._max_bytes = max_value_bytes
        self._loaded_text: dict[str, str] = dict(texts)
        self._data: dict[str, JsonValue] = dict.fromkeys(texts, _UNPARSED)  # type: ignore[arg-type]
        if values:
            self._data.update(values)
        self._touched: set[str] = set()
        self._expiries: dict[str, float | None] = dict(expiries or {})
        self._stored = stored
        self._versions: dict[str, int] | None = None
        self._shows_all_stored = len(stored) == len(texts)  # texts come from stored rows
        self._read: set[str] = set()
        self._removed: set[str] = set()
        self._set_text: dict[str, str] = {}
        """The JSON text of names last set to a scalar (a string, number, bool or null)."""
        self.listed = False
        """Whether the turn iterated or counted this scope (which reads its names only)."""
        self._deltas: dict[str, int | float] = {}

    @property
    def max_value_bytes(self) -> int:
        """The largest serialized value a variable of this scope may hold, in bytes."""
        return self._max_bytes

    def __getitem__(self, name: str) -> JsonValue:
        self._read.add(name)
        value = self._data[name]
        if value is _UNPARSED:
            value = self._data[name] = loads(self._loaded_text[name])
        if isinstance(value, _CONTAINERS):
            self._touched.add(name)
        return value

    def __setitem__(self, name: str, value: JsonValue) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{self.scope} variable names are non-empty strings, not {name!r}")
        if name not in self._data:  # a name shown already is valid
            validate_id(name, f"{self.scope} variable name", max_length=MAX_NAME_LENGTH)
        text = to_json_text(value, f"{self.scope}.{name}", self._max_bytes)
        if isinstance(value, _CONTAINERS):  # may change in place: serialized at commit
            self._set_text.pop(name, None)
        else:
            self._set_text[name] = text
        self._data[name] = value
        self._touched.add(name)
        self._removed.discard(name)
        self._deltas.pop(name, None)

    def __delitem__(self, name: str) -> None:
        self._read.add(name)
        del self._data[name]
        self._touched.discard(name)
        self._deltas.pop(name, None)
        if name in self._loaded_text:
            self._removed.add(name)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self._read.add(name)
        return name in self._data

    def __iter__(self) -> Iterator[str]:
        self.listed = True
        return iter(list(self._data))

    def __len__(self) -> int:
        self.listed = True
        return len(self._data)

    def incr(self, name: str, by: int | float = 1) -> None:
        """Add ``by`` to the number ``name`` (0 if absent) when the turn commits.

        Unlike ``scope[name] += by``, this does not read the variable: concurrent
        turns that increment it never conflict, and none of their increments is lost.
        The value shown in this turn is what was loaded plus ``by``; reading it
        afterwards is a read like any other. Adding 0 to a number shown changes nothing
        and writes nothing (a user variable's retention is not extended).
        """
        if isinstance(by, bool) or not isinstance(by, int | float):
            raise InvalidValueError(f"{self.scope}.{name}: increment by a number, not {by!r}")
        if by == 0 and _is_number(self._peek(name)):
            return  # the number stays as it is: nothing to write
        if name in self._read or name in self._touched:
            current = self.get(name, 0)
            self[name] = _number(self.scope, name, current) + by
            return
        validate_id(name, f"{self.scope} variable name", max_length=MAX_NAME_LENGTH)
        current = self._peek(name)
        total = _number(self.scope, name, 0 if current is None else current) + by
        to_json_text(total, f"{self.scope}.{name}", self._max_bytes)
        self._data[name] = total
        self._deltas[name] = self._deltas.get(name, 0) + by

    def _peek(self, name: str) -> JsonValue:
        """The current value of ``name`` (``None`` if absent) without reading it."""
        value = self._data.get(name)
        if value is _UNPARSED:
            value = self._data[name] = loads(self._loaded_text[name])
        return value

    def deltas(self) -> dict[str, int | float]:
        """The increments of :meth:`incr` to commit, by name (names read since excluded).

        Increments that add up to 0 on a loaded variable change nothing: left out.
        """
        if not self._deltas:
            return {}
        return {
            n: by
            for n, by in self._deltas.items()
            if n not in self._touched and (by != 0 or n not in self._loaded_text)
        }

    def checked(self) -> set[str]:
        """The names whose stored version the commit checks: read or written.

        Deleting a name reads it, so deleted names are among them. A listed scope also
        saw its stored but hidden names (an expired user variable) as absent: a turn
        that brings one back meanwhile must conflict, though the names stay the same.
        """
        names = self._read | self._touched
        if self.listed and not self._shows_all_stored:
            names |= self.versions.keys() - self._data.keys() - self._touched
        return names

    def __repr__(self) -> str:
        self.listed = True  # what it shows is read
        self._read.update(self._data)
        shown = {name: self._peek(name) for name in self._data}
        return f"<{self.scope} memory {shown!r}>"

    @property
    def versions(self) -> Mapping[str, int]:
        """The version of every stored row as loaded, by name."""
        if self._versions is None:
            self._versions = {row.key.name: row.version for row in self._stored}
        return self._versions

    def stored_names(self) -> AbstractSet[str]:
        """The names of every stored row as loaded, shown or not."""
        if self._shows_all_stored:
            return self._loaded_text.keys()
        return self.versions.keys()

    def hide(self, name: str) -> str | None:
        """Take ``name`` out of what this scope loaded and shows; return its stored text."""
        text = self._loaded_text.pop(name, None)
        if text is not None:
            self._data.pop(name, None)
            self._shows_all_stored = False
        return text

    def replace_loaded(self, texts: Mapping[str, str]) -> None:
        """Make ``texts`` (JSON text by name) what this scope loaded and shows."""
        self._loaded_text = dict(texts)
        self._data = dict.fromkeys(texts, _UNPARSED)  # type: ignore[arg-type]
        self._touched.clear()
        self._removed.clear()
        self._set_text.clear()
        self._shows_all_stored = False
        self._expiries.clear()
        self._deltas.clear()

    def forget_loaded(self) -> None:
        """Empty the scope and forget what was loaded: whatever is set next is new."""
        self._data.clear()
        self._loaded_text.clear()
        self._touched.clear()
        self._removed.clear()
        self._set_text.clear()
        self._shows_all_stored = False
        self._expiries.clear()
        self._deltas.clear()

    def expiry(self, name: str) -> float | None:
        """When ``name`` expires (epoch seconds) as loaded, or ``None`` if it does not."""
        self._read.add(name)
        return self._expiries.get(name)

    def to_dict(self) -> dict[str, JsonValue]:
        """Return a plain dict of the current values (shared, not copied)."""
        self.listed = True
        return {name: self[name] for name in self._data}

    def changes(self) -> tuple[dict[str, str], list[str]]:
        """Return ``({name: new JSON text}, [deleted names])`` relative to what was loaded."""
        changed: dict[str, str] = {}
        for name in self._touched:
            if name not in self._data:
                continue
            text = self._set_text.get(name) or to_json_text(
                self._data[name], f"{self.scope}.{name}", self._max_bytes
            )
            if self._loaded_text.get(name) != text:
                changed[name] = text
        return changed, [name for name in self._removed if name not in self._data]

    def loaded_text(self, name: str) -> str | None:
        """The JSON text ``name`` had when the turn loaded it."""
        return self._loaded_text.get(name)


def _is_number(value: JsonValue) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(scope: str, name: str, value: JsonValue) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValueError(f"{scope}.{name} holds {value!r}, not a number to increment")
    return value
