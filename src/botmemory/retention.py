"""Data retention: which user variables expire, and when.

A policy key is a variable name (``email``), a dotted path into a nested value
(``profile.email``: only that field is removed) or a glob (``tmp_*``; ``prof*.phone``
for that field of each match). An exact name wins over a glob; among globs the longest
pattern wins, for a variable and for each of its fields. A duration of ``None``
("never") switches expiry off for what it matches.

Expiry is counted from the last change of what the policy covers: the variable for
a name or glob, the field for a path. Writing the same value again changes nothing.
Every decision is computed from the policies in force, so a policy added, changed or
removed later applies to data already stored.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from botmemory.durations import Seconds
from botmemory.storage.base import StoredVar, VarUpdate
from botmemory.values import (
    MISSING,
    JsonValue,
    Path,
    delete_path,
    dumps,
    get_path,
    loads,
    parse_path,
)

__all__ = [
    "GLOB_CHARS",
    "Evaluation",
    "RetentionPolicies",
    "VariablePolicy",
    "encode_field_times",
]

GLOB_CHARS: Final = frozenset("*?")
"""What makes a policy key a glob (a ``[`` is refused in policy keys: see config)."""


@dataclass(frozen=True, slots=True)
class VariablePolicy:
    """What the policies say about one variable."""

    ttl: Seconds | None
    """How long the whole variable lives after it changes; ``None``: forever."""
    fields: tuple[tuple[str, Path, Seconds], ...]
    """``(dotted path, parsed path, time to live)`` for each nested field with a policy."""

    @property
    def expires(self) -> bool:
        """Whether anything in this variable can expire."""
        return self.ttl is not None or bool(self.fields)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A stored variable seen through the policies at one moment."""

    expired: bool
    """The whole variable is gone."""
    value: JsonValue
    """The value without its expired fields."""
    stripped: bool
    """Some expired fields were removed from ``value``."""
    field_times: dict[str, float]
    """Last change of each field that still has a policy and is present."""
    expires_at: float | None
    """The next moment something in the variable expires."""


_NO_POLICY: Final = VariablePolicy(None, ())
_Field = tuple[str, Path, Seconds | None]
"""A field's policy: its dotted path, the path parsed, its time to live (``None``: never)."""


class RetentionPolicies:
    """The retention policies of one bot, ready to match variable names."""

    def __init__(self, policies: Mapping[str, Seconds | None]) -> None:
        self._exact: dict[str, Seconds | None] = {}
        self._globs: list[tuple[str, Seconds | None]] = []
        self._fields: dict[str, list[_Field]] = {}
        self._glob_fields: list[tuple[str, _Field]] = []
        """``'prof*.phone'``: the field of each variable the glob matches."""
        for key, ttl in policies.items():
            name, _, rest = key.partition(".")
            if rest:
                field = (rest, parse_path(rest), ttl)
                if GLOB_CHARS.intersection(name):
                    self._glob_fields.append((name, field))
                else:
                    self._fields.setdefault(name, []).append(field)
            elif GLOB_CHARS.intersection(key):
                self._globs.append((key, ttl))
            else:
                self._exact[key] = ttl
        self._globs.sort(key=lambda item: -len(item[0]))
        self._glob_fields.sort(key=lambda item: -len(item[0]))
        self.fingerprint = json.dumps(sorted(policies.items()), default=str)
        self.for_variable = lru_cache(maxsize=4096)(self._for_variable)

    def __bool__(self) -> bool:
        return bool(self._exact or self._globs or self._fields or self._glob_fields)

    def _for_variable(self, name: str) -> VariablePolicy:
        if name in self._exact:
            ttl = self._exact[name]
        else:
            ttl = next(
                (t for pattern, t in self._globs if fnmatch.fnmatchcase(name, pattern)), None
            )
        # each field's policy: by the exact name, else by the longest glob; 'never' wins
        # as any duration does, then leaves the field without expiry
        chosen = {field[0]: field for field in self._fields.get(name, ())}
        for pattern, field in self._glob_fields:
            if field[0] not in chosen and fnmatch.fnmatchcase(name, pattern):
                chosen[field[0]] = field
        fields = tuple((d, path, t) for d, path, t in chosen.values() if t is not None)
        if ttl is None and not fields:
            return _NO_POLICY
        return VariablePolicy(ttl, fields)

    def evaluate(
        self,
        name: str,
        value: JsonValue,
        changed_at: float,
        field_times: Mapping[str, float],
        now: float,
    ) -> Evaluation:
        """Look at a stored variable at ``now``: what is expired, what is left."""
        policy = self.for_variable(name)
        if policy.ttl is not None and changed_at + policy.ttl <= now:
            return Evaluation(True, None, False, {}, None)
        expires_at = None if policy.ttl is None else changed_at + policy.ttl
        stripped = False
        times: dict[str, float] = {}
        for dotted, path, ttl in policy.fields:
            if get_path(value, path) is MISSING:
                continue
            since = field_times.get(dotted, changed_at)
            if since + ttl <= now:
                if not stripped:
                    value = json.loads(dumps(value))
                    stripped = True
                delete_path(value, path)
                continue
            times[dotted] = since
            expires_at = since + ttl if expires_at is None else min(expires_at, since + ttl)
        return Evaluation(False, value, stripped, times, expires_at)

    def evaluate_row(self, row: StoredVar, now: float) -> Evaluation:
        """Look at a stored user variable at ``now`` (see :meth:`evaluate`)."""
        times = json.loads(row.field_times) if row.field_times else {}
        return self.evaluate(row.key.name, loads(row.value), row.changed_at, times, now)

    def update_for(self, row: StoredVar, now: float, *, defer: bool = False) -> VarUpdate | None:
        """Return the change a stored user variable needs under these policies at ``now``.

        ``None`` when the stored expiry is already right. An expired variable is deleted;
        one with expired fields is rewritten without them; otherwise only its expiry
        moves (a policy was changed or removed). With ``defer``, expired content is not
        removed but marked due ``now``, so that the janitor removes and counts it.
        """
        ev = self.evaluate_row(row, now)
        if defer and (ev.expired or ev.stripped):
            return VarUpdate(row.key, row.changed_at, row.value, now, row.field_times)
        if ev.expired:
            return VarUpdate(row.key, row.changed_at, None)
        field_times = encode_field_times(ev.field_times)
        value = dumps(ev.value) if ev.stripped else row.value
        if not ev.stripped and ev.expires_at == row.expires_at and field_times == row.field_times:
            return None
        return VarUpdate(row.key, row.changed_at, value, ev.expires_at, field_times)

    def field_times_after_write(
        self,
        name: str,
        old: JsonValue | object,
        old_times: Mapping[str, float],
        old_changed_at: float | None,
        new: JsonValue,
        now: float,
    ) -> dict[str, float]:
        """Return each policed field's last change once ``new`` replaces ``old``.

        A field whose value is the same as before keeps its time, so writing a
        variable does not extend the life of the fields it did not change.
        """
        times: dict[str, float] = {}
        for dotted, path, _ttl in self.for_variable(name).fields:
            field = get_path(new, path)
            if field is MISSING:
                continue
            before = MISSING if old is MISSING else get_path(old, path)  # type: ignore[arg-type]
            if before is not MISSING and dumps(before) == dumps(field):  # type: ignore[arg-type]
                since = now if old_changed_at is None else old_changed_at
                times[dotted] = old_times.get(dotted, since)
            else:
                times[dotted] = now
        return times


def encode_field_times(times: Mapping[str, float]) -> str | None:
    """The stored form of a variable's field times (``StoredVar.field_times``)."""
    return json.dumps(times, sort_keys=True) if times else None
