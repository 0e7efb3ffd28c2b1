"""``create_app``: the FastAPI app that serves one dialog engine.

The app does not own the engine: whoever built it closes it. The app's lifespan
starts the janitor loop and stops it on shutdown (unless ``run_janitor=False``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from botmemory import __version__
from botmemory.config import Settings
from botmemory.dialog import DialogEngine
from botmemory.server import (
    heap,
    routes_admin,
    routes_converse,
    routes_events,
    routes_kvs,
    routes_memory,
)
from botmemory.server.auth import Access
from botmemory.server.converse_fast import ConverseFastPath
from botmemory.server.docs import install_docs
from botmemory.server.drain import DrainGuard
from botmemory.server.errors import install_error_handlers
from botmemory.server.limits import BodyLimit
from botmemory.server.local import LocalGuard
from botmemory.server.params import EncodedSlashes
from botmemory.server.reload import Reloader
from botmemory.server.state import ServerState

__all__ = ["create_app"]

STATIC: Final = Path(__file__).parent / "static"
PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
DESCRIPTION: Final = """\
Chatbot memory over HTTP: talk to a bot, look at and change its four memories
(user, session, temp, bot) and its key-value store, run the janitor.

Every route but the converse route of a bot with `converse.public`, `/healthz` and
this documentation needs `Authorization: Bearer <token>`: an admin token
(`auth.adminTokens`) or a token of the bot (`auth.botTokens`). Errors are
`{"error": code, "message": text}`.
"""


def create_app(
    engine: DialogEngine,
    settings: Settings | None = None,
    *,
    run_janitor: bool = True,
    reload: bool = False,
) -> FastAPI:
    """Build the app serving ``engine`` (``settings`` default to its memory's settings).

    With ``reload``, the bots of the settings' data folder reload when their files change.
    """
    settings = settings or engine.memory.settings
    app = FastAPI(
        title="botmemory",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan,
        docs_url=None,  # served by install_docs, from the package
        redoc_url=None,
        redirect_slashes=False,  # a path with a trailing slash is not found, not redirected
    )
    access = Access(settings.admin_tokens, settings.bot_tokens)
    app.state.botmemory = ServerState(
        engine=engine, settings=settings, access=access, run_janitor=run_janitor
    )
    app.state.botmemory.events.attach(engine)
    if reload and settings.data_dir is not None:
        app.state.botmemory.reloader = Reloader(app.state.botmemory, settings.data_dir)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(EncodedSlashes)
    if access.local_only:
        app.add_middleware(LocalGuard)  # before the body is even read
    app.add_middleware(DrainGuard, drain=app.state.botmemory.drain)  # outermost
    for module in (routes_converse, routes_events, routes_memory, routes_kvs, routes_admin):
        app.include_router(module.router)
    app.router.routes.insert(0, ConverseFastPath())  # before the declared converse route
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_route("/", _index, include_in_schema=False)
    install_docs(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServerState = app.state.botmemory
    if state.run_janitor:
        await state.memory.janitor.start()
    if state.reloader is not None:
        state.reloader.start()
    heap.freeze_started()
    try:
        yield
    finally:
        heap.unfreeze()
        if state.reloader is not None:
            await state.reloader.stop()
        if state.run_janitor:
            await state.memory.janitor.stop()
        state.metrics.process_ended()


async def _index() -> FileResponse:
    """The web chat and its live memory inspector."""
    return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI schema, with validation errors documented as the 400 they are."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema
