"""Retention policies for LangGraph items: how long an item may live, by where it is.

A policy maps a pattern to a duration in botmemory's syntax (``"30d"``, ``"12h"``,
``"never"``). The pattern is the namespace labels and the key joined by ``/``:
``"users/*/profile/name"`` is the key ``name`` in any namespace ``("users", <id>,
"profile")``. Each part is a glob (``*``, ``?``, ``[...]``) matching one label or the
key; ``**`` matches any number of labels (none included), and at the end the key too
(``"cache/**"``: everything under ``("cache",)``). An exact pattern wins over a
glob; among globs the longest pattern wins.

A policy is the most an item it matches lives after each write (or read, with
``refresh_on_read``): a ``ttl`` given to ``put`` may shorten it, never extend it, and
``default_ttl`` does not apply to it. ``"never"`` switches expiry off for what it
matches, except a ``ttl`` given to ``put``. A policy applies to items written or
refreshed while it is in force.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from botmemory.durations import Seconds, parse_lifetime
from botmemory.errors import InvalidValueError

__all__ = ["Retention", "StorePolicies"]

_GLOB_CHARS: Final = frozenset("*?[")
_ANY_LABELS: Final = "**"


@dataclass(frozen=True, slots=True)
class Retention:
    """What the policies say about one item."""

    policed: bool
    """Some policy matches the item."""
    ttl: Seconds | None
    """Its policy's duration; ``None``: no limit ("never", or no policy)."""


_UNPOLICED: Final = Retention(False, None)


class StorePolicies:
    """The retention policies of a store, ready to match items."""

    def __init__(self, policies: Mapping[str, object] | None = None) -> None:
        self._exact: dict[tuple[str, ...], Seconds | None] = {}
        self._globs: list[tuple[tuple[str, ...], Seconds | None]] = []
        for pattern, duration in (policies or {}).items():
            parts, ttl = _parse(pattern, duration)
            if any(_GLOB_CHARS.intersection(part) for part in parts):
                self._globs.append((parts, ttl))
            else:
                self._exact[parts] = ttl
        self._globs.sort(key=lambda item: -len("/".join(item[0])))
        self.for_item = lru_cache(maxsize=4096)(self._for_item)

    def __bool__(self) -> bool:
        return bool(self._exact or self._globs)

    def _for_item(self, namespace: tuple[str, ...], key: str) -> Retention:
        """Return what the policies say about the item ``key`` in ``namespace``."""
        path = (*namespace, key)
        if path in self._exact:
            return Retention(True, self._exact[path])
        for parts, ttl in self._globs:
            if _match(parts, path):
                return Retention(True, ttl)
        return _UNPOLICED

    def lifetime(
        self, namespace: tuple[str, ...], key: str, requested: Seconds | None
    ) -> Seconds | None:
        """Return how long the item lives after a write that asked for ``requested``."""
        policy = self.for_item(namespace, key)
        if not policy.policed or policy.ttl is None:
            return requested
        return policy.ttl if requested is None else Seconds(min(requested, policy.ttl))


def _parse(pattern: object, duration: object) -> tuple[tuple[str, ...], Seconds | None]:
    where = f"retention[{pattern!r}]"
    if not isinstance(pattern, str) or not pattern or "" in pattern.split("/"):
        raise InvalidValueError(
            f"{where}: a pattern is namespace labels and a key joined by '/', "
            "such as 'users/*/mood'"
        )
    return tuple(pattern.split("/")), parse_lifetime(duration, where=where)


def _match(parts: Sequence[str], path: Sequence[str]) -> bool:
    """Return whether the glob ``parts`` match ``path`` (labels then key) one to one."""
    if not parts:
        return not path
    head, rest = parts[0], parts[1:]
    if head == _ANY_LABELS:
        return any(_match(rest, path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], head) and _match(rest, path[1:])
