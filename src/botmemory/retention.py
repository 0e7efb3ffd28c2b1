"""Data retention: which user variables expire, and when.

A policy key is a variable name (``email``), a dotted path into a nested value
(``profile.email``: only that field is removed) or a glob (``tmp_*``; ``prof*.phone``
for that field of each match). An exact name wins over a glob; among globs the longest
pattern wins, for a variable and for each of its fields; among globs of one length, the
bot's own beats a global one, then the shortest lifetime wins. The order of the keys in
the files never matters. A duration of ``None`` ("never") switches expiry off for what
it matches.

Expiry is counted from the last change of what the policy covers: the variable for
a name or glob, the field for a path. Writing the same value again changes nothing.
Expiries still ahead are computed from the policies in force, so a policy added, changed
or removed later applies to data already stored; an expiry that has passed is final
(see :class:`StoredExpiry`).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
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
    "StoredExpiry",
    "VariablePolicy",
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
    due: float | None = None
    """When the whole variable expires; ``None``: never."""
    field_dues: dict[str, float] = dataclasses.field(default_factory=dict)
    """When each field of :attr:`field_times` expires."""
    expired_fields: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    """``(last change, expiry)`` of each field removed from :attr:`value`."""

    def stored_times(self, *, with_expired: bool = False) -> str | None:
        """Return the stored form of these expiries (``StoredVar.field_times``).

        ``None`` when no field has an expiry: the row's ``expires_at`` is then the whole
        variable's. ``with_expired`` keeps the expired fields too, for a value stored
        with them still in it.
        """
        fields = {d: [since, self.field_dues[d]] for d, since in self.field_times.items()}
        if with_expired:
            fields.update({d: [since, due] for d, (since, due) in self.expired_fields.items()})
        if not fields:
            return None
        return json.dumps({"due": self.due, "fields": fields}, sort_keys=True)


@dataclass(frozen=True, slots=True)
class StoredExpiry:
    """The expiries a stored user variable carries, as computed when it was written.

    One that has passed is final: what it covers stays expired whatever the policies
    say now, until the janitor deletes it. A changed policy only moves those still ahead.
    ``StoredVar.field_times`` holds them as ``{"due": ..., "fields": {path: [last change,
    expiry]}}``; without it, the row's ``expires_at`` is the whole variable's. Rows stored
    by earlier versions (``{path: last change}``) carry no expiry but the row's, which may
    be a field's: the policies in force decide for them, as before.
    """

    variable: float | None
    """When the whole variable expires; ``None``: never, or not recorded."""
    fields: Mapping[str, tuple[float, float | None]]
    """Dotted path -> ``(last change, expiry)``; the expiry ``None`` when not recorded."""

    @classmethod
    def of(cls, row: StoredVar, *, legacy: bool = False) -> StoredExpiry:
        """Read the expiries of a stored user variable.

        ``legacy``: the row may have been written by a version that did not record them
        (the first start after an upgrade): its ``expires_at`` without ``field_times``
        may then be a field's, not the variable's, so it records nothing.
        """
        if not row.field_times:
            return cls(None if legacy else row.expires_at, {})
        stored = json.loads(row.field_times)
        if isinstance(stored.get("fields"), dict):
            fields = {d: (since, due) for d, (since, due) in stored["fields"].items()}
            return cls(stored["due"], fields)
        return cls(None, {d: (since, None) for d, since in stored.items()})  # older form

    def field_passed(self, dotted: str, since: float, now: float) -> float | None:
        """The expiry of field ``dotted`` changed at ``since`` if it has passed at ``now``."""
        stored_since, due = self.fields.get(dotted, (None, None))
        return due if stored_since == since and _passed(due, now) else None


def _passed(due: float | None, now: float) -> bool:
    return due is not None and due <= now


_NO_POLICY: Final = VariablePolicy(None, ())
_NOTHING_STORED: Final = StoredExpiry(None, {})
_Field = tuple[str, Path, Seconds | None]
"""A field's policy: its dotted path, the path parsed, its time to live (``None``: never)."""


class RetentionPolicies:
    """The retention policies of one bot, ready to match variable names."""

    def __init__(
        self, policies: Mapping[str, Seconds | None], own: AbstractSet[str] = frozenset()
    ) -> None:
        """``policies`` are the bot's merged over the global ones; ``own`` names the keys
        the bot set itself, which win over global globs of the same length."""
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
        # longest first; then the bot's own, the shortest lifetime, the key: never file order
        self._globs.sort(key=lambda item: _rank(item[0], item[0], item[1], own))
        self._glob_fields.sort(
            key=lambda item: _rank(item[0], f"{item[0]}.{item[1][0]}", item[1][2], own)
        )
        levels = [sorted(policies.items()), sorted(own & policies.keys())]
        self.fingerprint = json.dumps(levels, default=str)
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
        # each field's policy: by the exact name, else by the first glob in rank order;
        # 'never' wins as any duration does, then leaves the field without expiry
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
        stored: StoredExpiry = _NOTHING_STORED,
    ) -> Evaluation:
        """Look at a variable at ``now``: what is expired, what is left.

        ``field_times`` gives each field's last change (default ``changed_at``). An
        expiry of ``stored`` that has passed is final, whatever the policies say now.
        """
        policy = self.for_variable(name)
        due = None if policy.ttl is None else changed_at + policy.ttl
        if _passed(due, now) or _passed(stored.variable, now):
            return Evaluation(True, None, False, {}, None)
        times: dict[str, float] = {}
        dues: dict[str, float] = {}
        expired: dict[str, tuple[float, float]] = {}
        for dotted, path, ttl in self._fields_to_check(policy, stored, now):
            if get_path(value, path) is MISSING:
                continue
            since = field_times.get(dotted, changed_at)
            field_due = stored.field_passed(dotted, since, now)
            if field_due is None and ttl is not None:
                field_due = since + ttl
            if field_due is None:  # its policy is gone, and it had not expired
                continue
            if field_due <= now:
                if not expired:
                    value = json.loads(dumps(value))
                delete_path(value, path)
                expired[dotted] = (since, field_due)
                continue
            times[dotted] = since
            dues[dotted] = field_due
        expires_at = min((t for t in (due, *dues.values()) if t is not None), default=None)
        return Evaluation(False, value, bool(expired), times, expires_at, due, dues, expired)

    def _fields_to_check(
        self, policy: VariablePolicy, stored: StoredExpiry, now: float
    ) -> list[_Field]:
        """The fields of a variable to look at: those with a policy, and those whose stored
        expiry has passed (whatever their policy is now)."""
        policed = {dotted for dotted, _, _ in policy.fields}
        passed = [
            (dotted, parse_path(dotted), None)
            for dotted, (_since, due) in stored.fields.items()
            if dotted not in policed and _passed(due, now)
        ]
        return [*policy.fields, *passed]

    def evaluate_row(self, row: StoredVar, now: float, *, legacy: bool = False) -> Evaluation:
        """Look at a stored user variable at ``now`` (see :meth:`evaluate`; ``legacy``:
        see :meth:`StoredExpiry.of`)."""
        stored = StoredExpiry.of(row, legacy=legacy)
        times = {dotted: since for dotted, (since, _due) in stored.fields.items()}
        return self.evaluate(row.key.name, loads(row.value), row.changed_at, times, now, stored)

    def update_for(
        self, row: StoredVar, now: float, *, defer: bool = False, legacy: bool = False
    ) -> VarUpdate | None:
        """Return the change a stored user variable needs under these policies at ``now``.

        ``None`` when the stored expiry is already right. An expired variable is deleted;
        one with expired fields is rewritten without them; otherwise only its expiries
        still ahead move (a policy was changed or removed). With ``defer``, expired
        content is not removed but marked due ``now``, expired for good, so that the
        janitor removes and counts it.
        """
        ev = self.evaluate_row(row, now, legacy=legacy)
        if defer and (ev.expired or ev.stripped):
            times = ev.stored_times(with_expired=True)
            return VarUpdate(row.key, row.changed_at, row.value, now, times, row.version)
        if ev.expired:
            return VarUpdate(row.key, row.changed_at, None, version=row.version)
        field_times = ev.stored_times()
        value = dumps(ev.value) if ev.stripped else row.value
        if not ev.stripped and ev.expires_at == row.expires_at and field_times == row.field_times:
            return None
        return VarUpdate(row.key, row.changed_at, value, ev.expires_at, field_times, row.version)

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


def _rank(
    pattern: str, key: str, ttl: Seconds | None, own: AbstractSet[str]
) -> tuple[int, bool, float, str]:
    """Where a glob policy goes among others: the first that matches is chosen."""
    return (-len(pattern), key not in own, math.inf if ttl is None else ttl, key)
