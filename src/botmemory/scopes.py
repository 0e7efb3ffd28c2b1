"""A memory scope as a turn sees it: a mutable mapping of JSON values that knows what changed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import Final

from botmemory.ids import validate_id
from botmemory.storage.base import Scope
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
    """

    def __init__(
        self,
        scope: Scope,
        texts: Mapping[str, str],
        max_value_bytes: int,
        expiries: Mapping[str, float | None] | None = None,
        values: Mapping[str, JsonValue] | None = None,
    ) -> None:
        """``texts`` maps names to stored JSON text, parsed on first access.

        ``values`` gives the parsed value of names whose loaded value is not their
        stored text (for example a user variable without its expired fields).
        """
        self.scope = scope
        self._max_bytes = max_value_bytes
        self._loaded_text: dict[str, str] = dict(texts)
        self._data: dict[str, JsonValue] = dict.fromkeys(texts, _UNPARSED)  # type: ignore[arg-type]
        if values:
            self._data.update(values)
        self._touched: set[str] = set()
        self._expiries: dict[str, float | None] = dict(expiries or {})

    @property
    def max_value_bytes(self) -> int:
        """The largest serialized value a variable of this scope may hold, in bytes."""
        return self._max_bytes

    def __getitem__(self, name: str) -> JsonValue:
        value = self._data[name]
        if value is _UNPARSED:
            value = self._data[name] = loads(self._loaded_text[name])
        if isinstance(value, _CONTAINERS):
            self._touched.add(name)
        return value

    def __setitem__(self, name: str, value: JsonValue) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{self.scope} variable names are non-empty strings, not {name!r}")
        validate_id(name, f"{self.scope} variable name", max_length=MAX_NAME_LENGTH)
        to_json_text(value, f"{self.scope}.{name}", self._max_bytes)
        self._data[name] = value
        self._touched.add(name)

    def __delitem__(self, name: str) -> None:
        del self._data[name]
        self._touched.discard(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"<{self.scope} memory {self.to_dict()!r}>"

    def replace_loaded(self, texts: Mapping[str, str]) -> None:
        """Make ``texts`` (JSON text by name) what this scope loaded and shows."""
        self._loaded_text = dict(texts)
        self._data = dict.fromkeys(texts, _UNPARSED)  # type: ignore[arg-type]
        self._touched.clear()
        self._expiries.clear()

    def forget_loaded(self) -> None:
        """Empty the scope and forget what was loaded: whatever is set next is new."""
        self._data.clear()
        self._loaded_text.clear()
        self._touched.clear()
        self._expiries.clear()

    def expiry(self, name: str) -> float | None:
        """When ``name`` expires (epoch seconds) as loaded, or ``None`` if it does not."""
        return self._expiries.get(name)

    def to_dict(self) -> dict[str, JsonValue]:
        """Return a plain dict of the current values (shared, not copied)."""
        return {name: self[name] for name in self._data}

    def changes(self) -> tuple[dict[str, str], list[str]]:
        """Return ``({name: new JSON text}, [deleted names])`` relative to what was loaded."""
        changed: dict[str, str] = {}
        for name in self._touched:
            if name not in self._data:
                continue
            text = to_json_text(self._data[name], f"{self.scope}.{name}", self._max_bytes)
            if self._loaded_text.get(name) != text:
                changed[name] = text
        deleted = [name for name in self._loaded_text if name not in self._data]
        return changed, deleted

    def loaded_text(self, name: str) -> str | None:
        """The JSON text ``name`` had when the turn loaded it."""
        return self._loaded_text.get(name)
