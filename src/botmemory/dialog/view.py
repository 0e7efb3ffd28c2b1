"""A read-only view of what a user's next message would see, with each variable's expiry.

For ``botmemory chat``'s ``/memory`` and for debugging; built on
:meth:`Memory.peek <botmemory.memory.Memory.peek>`, so nothing is written or locked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from botmemory.clock import iso_time
from botmemory.dialog.runner import POSITION_KEY
from botmemory.durations import Seconds
from botmemory.memory import Memory
from botmemory.values import JsonValue, dumps

__all__ = ["MemoryView", "VariableView", "memory_view"]

SCOPES: Final = ("user", "session", "temp", "bot")
_RULES: Final = {
    "user": "retention policy",
    "session": "session timeout",
    "temp": "dialog timeout",
    "bot": "never",
}


@dataclass(frozen=True)
class VariableView:
    """One variable and when it goes away if nothing changes."""

    name: str
    value: JsonValue
    expires_at: float | None
    """Epoch seconds; ``None`` when it never expires."""
    rule: str
    """Why it expires: ``"retention policy"``, ``"session timeout"`` or ``"dialog timeout"``."""


@dataclass(frozen=True)
class MemoryView:
    """The four memories of one user and session as the next message would see them."""

    now: float
    scopes: Mapping[str, tuple[VariableView, ...]]
    position: JsonValue
    """Where the user is in the flows (``None`` when outside any)."""

    def lines(self) -> list[str]:
        """Render the view for a terminal, one variable a line."""
        out: list[str] = []
        for scope in SCOPES:
            variables = self.scopes.get(scope, ())
            out.append(f"{scope} memory:" + ("" if variables else " (empty)"))
            out += [f"  {v.name} = {dumps(v.value)}  ({self._expiry(v)})" for v in variables]
        if self.position is not None:
            out.append(f"dialog position: {dumps(self.position)}")
        return out

    def _expiry(self, variable: VariableView) -> str:
        if variable.expires_at is None:
            return "never expires"
        when = iso_time(variable.expires_at)
        left = _relative(Seconds(variable.expires_at - self.now))
        return f"{variable.rule}: expires {when}, {left}"


async def memory_view(
    memory: Memory,
    bot_id: str,
    user_id: str,
    channel: str = "api",
    thread_id: str | None = None,
) -> MemoryView:
    """Return the memories of one user and session, without changing anything."""
    peeked = await memory.peek(bot_id, user_id, channel, thread_id)
    now = peeked["now"]
    scopes = peeked["scopes"]
    if not isinstance(now, int | float) or not isinstance(scopes, dict):
        raise TypeError(f"Memory.peek answered an unexpected shape: {sorted(peeked)}")
    views = {scope: _variables(scopes.get(scope), _RULES[scope]) for scope in SCOPES}
    temp = scopes.get("temp")
    position = temp.get(POSITION_KEY) if isinstance(temp, dict) else None
    return MemoryView(now, views, position["value"] if isinstance(position, dict) else None)


def _variables(entries: JsonValue, rule: str) -> tuple[VariableView, ...]:
    found: list[VariableView] = []
    for name, entry in sorted(entries.items() if isinstance(entries, dict) else []):
        if name.startswith("_") or not isinstance(entry, dict):
            continue
        expires = entry.get("expiresAt")
        at = float(expires) if isinstance(expires, int | float) else None
        found.append(VariableView(name, entry.get("value"), at, rule))
    return tuple(found)


def _relative(left: Seconds) -> str:
    if left <= 0:
        return "now"
    parts: list[str] = []
    remaining = int(left)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if remaining >= size:
            parts.append(f"{remaining // size}{unit}")
            remaining %= size
    return "in " + " ".join(parts[:2] or ["<1s"])
