"""Read-only views of a user's memory for the API, built on :meth:`Memory.peek`."""

from __future__ import annotations

from typing import Any

from botmemory.clock import iso_time
from botmemory.memory import Memory
from botmemory.server.models import MemoryView, Scopes, SessionInfo, Variable, iso_or_none
from botmemory.storage.base import SCOPES
from botmemory.values import JsonValue

__all__ = ["SCOPES", "memory_view", "plain_scopes"]


async def memory_view(
    memory: Memory, bot_id: str, user_id: str, channel: str = "api", thread_id: str | None = None
) -> MemoryView:
    """The four memories of one session, each variable with its expiry; changes nothing."""
    peeked = await memory.peek(bot_id, user_id, channel, thread_id)
    now = _number(peeked.get("now")) or 0.0
    session = _object(peeked.get("session"))
    scopes = _object(peeked.get("scopes"))
    session_expiry = _number(session.get("expiresAt"))
    return MemoryView(
        bot_id=bot_id,
        user_id=user_id,
        channel=channel,
        thread_id=thread_id,
        session_id=str(peeked.get("sessionId")),
        now=now,
        now_iso=iso_time(now),
        session=SessionInfo(
            alive=session.get("alive") is True,
            expires_at=session_expiry,
            expires_at_iso=iso_or_none(session_expiry),
        ),
        scopes=Scopes(**{scope: _variables(scopes.get(scope)) for scope in SCOPES}),
    )


def plain_scopes(view: MemoryView) -> Scopes:
    """The four memories of ``view`` with plain values, as the converse API returns them."""
    return Scopes(
        **{
            scope: {name: var.value for name, var in getattr(view.scopes, scope).items()}
            for scope in SCOPES
        }
    )


def _variables(entries: JsonValue) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, entry in _object(entries).items():
        fields = _object(entry)
        expires = _number(fields.get("expiresAt"))
        found[name] = Variable(
            value=fields.get("value"), expires_at=expires, expires_at_iso=iso_or_none(expires)
        )
    return found


def _object(value: JsonValue) -> dict[str, JsonValue]:
    return value if isinstance(value, dict) else {}


def _number(value: JsonValue) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
