"""Operating the server: the bots, the janitor, ``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from botmemory.durations import parse_duration
from botmemory.janitor import JanitorReport
from botmemory.server.auth import Grant, admin_access, bot_access, grant_of, unauthorized
from botmemory.server.errors import error_responses
from botmemory.server.metrics import CONTENT_TYPE
from botmemory.server.models import (
    BotDetails,
    BotInfo,
    BotList,
    Health,
    JanitorRun,
    JanitorStatus,
    iso_or_none,
)
from botmemory.server.state import ServerState, server_state

__all__ = ["router"]

log = logging.getLogger("botmemory.server")

router = APIRouter()

HEALTH_TIMEOUT: Final = parse_duration("5s")
"""How long the health check waits for the storage."""
"""A metadata row every backend has once opened: reading it is the health check."""

Admin = Annotated[Grant, Depends(admin_access)]


@router.get("/api/v1/bots", response_model=BotList, responses=error_responses(401), tags=["bots"])
async def list_bots(request: Request, grant: Annotated[Grant, Depends(grant_of)]) -> BotList:
    """The bots the caller may use: all with an admin token, a bot's own with its token,
    the ones with ``converse.public`` without a token. A token that is not valid: 401."""
    if grant.token_given and not grant.authenticated:
        raise unauthorized(grant)
    state = server_state(request)
    if grant.authenticated:
        ids = [b for b in state.bot_ids() if grant.allows(b)]
    else:
        ids = [b for b in state.bot_ids() if state.converse_public(b)]
    problems = state.reload_problems(grant)
    return BotList(bots=[_bot_info(state, b) for b in ids], access=grant.kind, problems=problems)


@router.get(
    "/api/v1/bots/{botId}",
    response_model=BotDetails,
    responses=error_responses(400, 401, 403, 404),
    tags=["bots"],
)
async def get_bot(request: Request, bot_id: Annotated[str, Depends(bot_access)]) -> BotDetails:
    """A bot and its resolved settings: timeouts, retention policies, converse.public."""
    state = server_state(request)
    described: dict[str, Any] = state.settings.describe()
    settings = described["bots"].get(bot_id, described["defaults"])
    return BotDetails(**_bot_info(state, bot_id).model_dump(), settings=settings)


@router.get(
    "/api/v1/janitor",
    response_model=JanitorStatus,
    responses=error_responses(401, 403),
    tags=["janitor"],
)
async def janitor_status(request: Request, _: Admin) -> JanitorStatus:
    """The janitor's loop and its recent runs (newest first) with what each removed."""
    janitor = server_state(request).memory.janitor
    return JanitorStatus(
        running=janitor.running,
        interval=janitor.interval,
        session_interval=janitor.session_interval,
        runs=[_run(report) for report in reversed(janitor.history)],
    )


@router.post(
    "/api/v1/janitor/run",
    response_model=JanitorRun,
    responses=error_responses(401, 403, 503),
    tags=["janitor"],
)
async def run_janitor(request: Request, _: Admin) -> JanitorRun:
    """Remove everything that has expired now, in every bot; answer what was removed.

    While another process runs the janitor on the same database, the run is skipped:
    200 with ``skipped: true`` and zero counts."""
    return _run(await server_state(request).memory.janitor.run_once())


@router.get("/healthz", response_model=Health, tags=["operations"])
async def healthz() -> Health:
    """200 while the server process serves (a liveness probe): it does not ask the
    storage, whose outage a restart would not cure. Needs no token."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Not ready: the storage does not answer"}},
    tags=["operations"],
)
async def readyz(request: Request) -> Health | JSONResponse:
    """200 when this server can serve: its bots are loaded (it would not answer
    otherwise) and the storage answers within 5 seconds; else 503. Needs no token."""
    state = server_state(request)
    try:
        await asyncio.wait_for(state.memory.storage.ping(), HEALTH_TIMEOUT)
    except Exception as exc:
        state.metrics.health_failures.inc()
        log.warning("health check failed: %s: %s", type(exc).__name__, exc)
        body = Health(status="unavailable", message="the storage backend does not answer")
        return JSONResponse(body.model_dump(), status_code=503)
    return Health(status="ok")


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **error_responses(401, 403, by_reference=True),
    },
    tags=["operations"],
)
async def metrics(request: Request, _: Admin) -> Response:
    """Prometheus metrics: turns, turn latency, lock waits, backend errors, janitor runs
    and rows removed by kind. Needs an admin token."""
    return Response(server_state(request).metrics.render(), media_type=CONTENT_TYPE)


def _bot_info(state: ServerState, bot_id: str) -> BotInfo:
    return BotInfo(
        id=bot_id,
        has_flows=bot_id in state.engine.bots,
        converse_public=state.converse_public(bot_id),
    )


def _run(report: JanitorReport) -> JanitorRun:
    return JanitorRun(
        started_at=report.started_at,
        started_at_iso=iso_or_none(report.started_at) or "",
        duration=report.duration,
        user_variables=report.user_variables,
        user_fields=report.user_fields,
        sessions=report.sessions,
        temp=report.temp,
        kvs=report.kvs,
        total=report.total,
        error=report.error,
        skipped=report.skipped,
    )
