"""Bearer tokens: admin tokens open every route, a bot's tokens only that bot's routes.

Tokens come from ``auth.adminTokens`` and ``auth.botTokens``. They are compared in
constant time (as SHA-256 digests, so their lengths leak nothing either) and never
logged. With no token configured at all, the server is in *local mode*: it answers
requests from this machine (loopback addresses) only, and ``botmemory serve`` refuses
to listen anywhere else; :mod:`~botmemory.server.local` also refuses other host names
and cross-origin writes.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Final, Literal

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from botmemory.ids import BOT_ID_PATTERN
from botmemory.server.errors import ApiError
from botmemory.server.state import server_state

__all__ = [
    "Access",
    "BotId",
    "Grant",
    "GrantDep",
    "admin_access",
    "bot_access",
    "check_bot",
    "converse_access",
    "grant_of",
    "is_loopback",
    "request_grant",
    "unauthorized",
]

BotId = Annotated[
    str,
    Path(
        alias="botId",
        pattern=f"^{BOT_ID_PATTERN.pattern}$",
        description="A bot: 1 to 64 letters, digits, '_' or '-'.",
        examples=["welcome"],
    ),
]
"""The ``{botId}`` path parameter."""

_bearer: Final = HTTPBearer(
    auto_error=False,
    description="An admin token (auth.adminTokens) or a bot's token (auth.botTokens).",
)


@dataclass(frozen=True)
class Grant:
    """What one request may do."""

    admin: bool = False
    bots: frozenset[str] = frozenset()
    local: bool = False
    """Local mode: no token is configured and the request came from this machine."""
    token_given: bool = False
    """The request carried a token (valid or not)."""

    @property
    def authenticated(self) -> bool:
        """Whether the request carried a valid token (or came in local mode)."""
        return self.admin or bool(self.bots)

    @property
    def kind(self) -> Literal["admin", "bot", "public", "local"]:
        """How the request got in: ``public`` when it carried no valid token."""
        if self.local:
            return "local"
        if self.admin:
            return "admin"
        return "bot" if self.bots else "public"

    def allows(self, bot_id: str) -> bool:
        """Whether the request may use ``bot_id``'s routes."""
        return self.admin or bot_id in self.bots


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Access:
    """The configured tokens, and the grant each one gives."""

    def __init__(
        self,
        admin_tokens: Iterable[str] = (),
        bot_tokens: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self._admin = [_digest(t) for t in admin_tokens]
        self._bots = [(_digest(t), bot) for bot, ts in (bot_tokens or {}).items() for t in ts]

    @property
    def local_only(self) -> bool:
        """True when no token is configured: only this machine may connect."""
        return not self._admin and not self._bots

    def grant(self, token: str | None) -> Grant:
        """Return what ``token`` may do; every configured token is compared, in constant time."""
        if token is None:
            return Grant()
        given = _digest(token)
        admin = False
        bots: set[str] = set()
        for digest in self._admin:
            admin |= hmac.compare_digest(digest, given)
        for digest, bot in self._bots:
            if hmac.compare_digest(digest, given):
                bots.add(bot)
        return Grant(admin=admin, bots=frozenset(bots), token_given=True)


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is this machine: ``localhost``, 127.0.0.0/8 or ::1."""
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def grant_of(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Grant:
    """The grant of a request, from its ``Authorization: Bearer`` header."""
    access = server_state(request).access
    if access.local_only:
        if is_loopback(request.client.host if request.client else None):
            return Grant(admin=True, local=True)
        raise ApiError(
            403,
            "no token is configured, so this server only answers requests from its own "
            "machine: set auth.adminTokens in global/botmemory.config.json",
        )
    return access.grant(credentials.credentials if credentials else None)


async def request_grant(request: Request) -> Grant:
    """:func:`grant_of` outside FastAPI's dependencies (the converse route's thin path)."""
    return await grant_of(request, await _bearer(request))


GrantDep = Annotated[Grant, Depends(grant_of)]
"""The grant of a request, as a dependency."""


def unauthorized(grant: Grant) -> ApiError:
    """The 401 of a request without a valid token: it says whether one was sent."""
    message = (
        "this token is not valid: it is not in auth.adminTokens or auth.botTokens"
        if grant.token_given
        else "this route needs a token: send 'Authorization: Bearer <token>'"
    )
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


def check_bot(grant: Grant, bot_id: str) -> None:
    """Refuse a request whose grant does not allow ``bot_id``: 401 without a valid
    token, 403 with another bot's."""
    if not grant.authenticated:
        raise unauthorized(grant)
    if not grant.allows(bot_id):
        raise ApiError(403, f"this token is not allowed to use bot {bot_id!r}")


async def bot_access(request: Request, bot_id: BotId, grant: GrantDep) -> str:
    """Let in an admin token or a token of ``{botId}``; return the bot id if the bot exists."""
    check_bot(grant, bot_id)
    return server_state(request).require_bot(bot_id)


async def converse_access(request: Request, bot_id: BotId, grant: GrantDep) -> str:
    """Like :func:`bot_access`, but anyone may talk to a bot with ``converse.public``."""
    if not server_state(request).converse_public(bot_id):
        check_bot(grant, bot_id)
    return bot_id


async def admin_access(grant: GrantDep) -> Grant:
    """Let in admin tokens only."""
    if not grant.authenticated:
        raise unauthorized(grant)
    if not grant.admin:
        raise ApiError(403, "this route needs an admin token (auth.adminTokens)")
    return grant
