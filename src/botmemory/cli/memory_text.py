"""How the commands show a :class:`~botmemory.views.MemoryView` to a person.

``botmemory chat``'s ``/memory`` prints :func:`memory_lines`; ``botmemory memory show``
builds its tables from :func:`shown_variables`. Variables whose names start with ``_``
(the dialog position, for one) are left out; the dialog position has a line of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from botmemory.clock import iso_time
from botmemory.dialog.runner import POSITION_KEY
from botmemory.durations import Seconds
from botmemory.storage.base import SCOPES, Scope
from botmemory.values import JsonValue, dumps
from botmemory.views import MemoryView, VariableView

__all__ = ["EXPIRY_RULES", "dialog_position", "memory_lines", "shown_variables"]

EXPIRY_RULES: Final[Mapping[Scope, str]] = {
    "user": "retention policy",
    "session": "session timeout",
    "temp": "dialog timeout",
    "bot": "never",
}
"""Why a variable of each scope expires."""


def shown_variables(view: MemoryView, scope: Scope) -> list[tuple[str, VariableView]]:
    """The variables of ``scope`` a person sees, by name, sorted."""
    variables = view.scopes.get(scope, {})
    return sorted(
        ((name, var) for name, var in variables.items() if not name.startswith("_")),
        key=lambda item: item[0],
    )


def dialog_position(view: MemoryView) -> JsonValue:
    """Where the user is in the flows, as stored in temp memory; ``None`` outside any."""
    found = view.scopes.get("temp", {}).get(POSITION_KEY)
    return None if found is None else found.value


def memory_lines(view: MemoryView) -> list[str]:
    """Render the view for a terminal, one variable a line."""
    out: list[str] = []
    for scope in SCOPES:
        variables = shown_variables(view, scope)
        out.append(f"{scope} memory:" + ("" if variables else " (empty)"))
        out += [
            f"  {name} = {dumps(var.value)}  ({_expiry(view, scope, var)})"
            for name, var in variables
        ]
    position = dialog_position(view)
    if position is not None:
        out.append(f"dialog position: {dumps(position)}")
    return out


def _expiry(view: MemoryView, scope: Scope, variable: VariableView) -> str:
    if variable.expires_at is None:
        return "never expires"
    when = iso_time(variable.expires_at)
    left = _relative(Seconds(variable.expires_at - view.now))
    return f"{EXPIRY_RULES[scope]}: expires {when}, {left}"


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
