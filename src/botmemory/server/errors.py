"""Every error the HTTP API answers: one JSON shape, never a traceback.

``{"error": "bad_request", "message": "...", "details": [...]}``. botmemory's own errors
are mapped once here:

=================================================  ======
InvalidIdError, InvalidValueError, InvalidDuration  400
a request that fails validation (JSON, types)       400
no or unknown token / another bot's token           401 / 403
local mode: cross-origin write / non-loopback Host  403 / 421
UnknownBotError, a missing variable or key          404
UserErasedError, editing a session not alive        409
a body over ``server.maxBodyBytes``                 413
MessageTooLargeError (``limits.maxMessageBytes``)   413
BackendUnavailableError, LockTimeoutError           503
ErasurePendingError (erased; files not yet clean)   503, saying so
ConflictError (every attempt of a turn conflicted)  503
any other error                                     500
=================================================  ======
"""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from botmemory.dialog.errors import UnknownBotError
from botmemory.errors import (
    BackendUnavailableError,
    BotMemoryError,
    ConflictError,
    ErasurePendingError,
    InvalidDurationError,
    InvalidIdError,
    InvalidValueError,
    LockTimeoutError,
    MessageTooLargeError,
    SessionNotAliveError,
    UserErasedError,
)
from botmemory.server.models import ErrorBody

__all__ = ["ApiError", "error_responses", "install_error_handlers"]

log = logging.getLogger("botmemory.server")

CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    421: "misdirected_request",
    500: "internal_error",
    503: "unavailable",
}

_DESCRIPTIONS: Final = {
    400: "Malformed JSON, a wrong type, an invalid id or value",
    401: "No token, or a token that is not configured",
    403: "The token is for another bot, or the route needs an admin token",
    404: "No such bot, variable or key",
    409: "The session (or the dialog, for temp memory) is not alive, or the user was erased",
    413: "The body is over server.maxBodyBytes, or the message over limits.maxMessageBytes",
    503: "The storage backend is unavailable; retry later",
}


_SERVER_MESSAGES: Final = {
    500: "internal error: see the server's log",
    503: "the storage backend is unavailable or busy: retry later",
}
_ERASURE_PENDING: Final = (
    "the user is erased, but another connection to the database is in the middle of a "
    "transaction, so erased values remain in its files: send the request again to finish"
)


class ApiError(HTTPException):
    """An error answered as JSON with ``status`` and a message for people."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.message = message


def error_responses(*statuses: int, by_reference: bool = False) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries of the errors a route may answer.

    ``by_reference`` documents them as JSON even on a route whose own responses are not
    (FastAPI would give the model the route's media type).
    """
    if by_reference:
        content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        return {s: {"description": _DESCRIPTIONS[s], "content": content} for s in statuses}
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in statuses}


def error_response(status: int, message: str, details: list[str] | None = None) -> JSONResponse:
    """A JSON error response."""
    body = ErrorBody(error=CODES.get(status, "error"), message=message, details=details or [])
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def status_of(exc: BotMemoryError) -> int:
    """The HTTP status of one of botmemory's errors."""
    if isinstance(exc, SessionNotAliveError):
        return 409
    if isinstance(exc, MessageTooLargeError):
        return 413
    if isinstance(exc, InvalidIdError | InvalidValueError | InvalidDurationError):
        return 400
    if isinstance(exc, UnknownBotError):
        return 404
    if isinstance(exc, UserErasedError):
        return 409
    if isinstance(
        exc, BackendUnavailableError | LockTimeoutError | ConflictError | ErasurePendingError
    ):
        return 503
    return 500


async def _botmemory_error(request: Request, exc: Exception) -> JSONResponse:
    status = status_of(exc) if isinstance(exc, BotMemoryError) else 500
    if status >= 500:
        log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        pending = isinstance(exc, ErasurePendingError)
        return error_response(status, _ERASURE_PENDING if pending else _SERVER_MESSAGES[status])
    return error_response(status, str(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, HTTPException):
        return await _unexpected_error(request, exc)
    message = exc.detail if isinstance(exc.detail, str) else CODES.get(exc.status_code, "error")
    response = error_response(exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else [str(exc)]
    details = [_describe(error) for error in errors]
    message = "invalid request: " + "; ".join(details[:3])
    if len(details) > 3:
        message += f" (and {len(details) - 3} more)"
    if not _is_json(request.headers.get("content-type")) and any(
        d.startswith("body") for d in details
    ):
        message += " (send the body as JSON, with 'Content-Type: application/json')"
    return error_response(400, message, details)


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI reads a body of ``content_type`` as JSON (none without one)."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _describe(error: Any) -> str:
    """One line for a pydantic error, without echoing the input back."""
    if not isinstance(error, dict):
        return str(error)
    loc = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        reason = error.get("ctx", {}).get("error", "invalid")
        return f"body: not valid JSON: {reason} at character {loc[-1] if loc else '?'}"
    return f"{'.'.join(loc)}: {error.get('msg', 'invalid')}"


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # one line: the ASGI server logs the traceback of an unhandled error itself
    log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return error_response(500, _SERVER_MESSAGES[500])


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as JSON."""
    app.add_exception_handler(BotMemoryError, _botmemory_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
