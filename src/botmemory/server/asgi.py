"""An ASGI application for servers you run yourself: ``botmemory.server.asgi:app``.

``botmemory serve`` is one process on one port. To run botmemory under your own ASGI
server (several uvicorn or gunicorn workers, granian, behind your process manager),
point it at ``botmemory.server.asgi:app`` and name the data folder in
``BOTMEMORY_DATA_DIR``::

    BOTMEMORY_DATA_DIR=/srv/bots uvicorn botmemory.server.asgi:app --workers 2

Each worker opens the data folder when the server starts it (the ASGI lifespan) and
closes it when the server stops it; a data folder that cannot be opened fails the
start-up with its problems. ``docs/operations.md`` has the command lines.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any, Final

from fastapi import FastAPI
from starlette.datastructures import State

from botmemory.dialog import DialogEngine
from botmemory.errors import BotMemoryError
from botmemory.server.app import create_app

__all__ = ["DATA_DIR_ENV", "DataDirApp", "app"]

DATA_DIR_ENV: Final = "BOTMEMORY_DATA_DIR"

Scope = dict[str, Any]
Message = dict[str, Any]


class DataDirApp:
    """The app of the data folder named by ``BOTMEMORY_DATA_DIR``, opened at start-up."""

    def __init__(self) -> None:
        self._app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if self._app is None:
            raise RuntimeError("botmemory.server.asgi:app needs an ASGI server with lifespan on")
        await self._app(scope, receive, send)

    @property
    def state(self) -> State | None:
        """The started app's state (``state.botmemory``), for the draining server."""
        return None if self._app is None else self._app.state

    async def _lifespan(self, scope: Scope, receive: Any, send: Any) -> None:
        """Open the data folder, then hand the lifespan to the app (its janitor)."""
        startup: Message = await receive()
        try:
            engine = await DialogEngine.from_data_dir(_data_dir())
        except BotMemoryError as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        self._app = app = create_app(engine)
        pending = [startup]

        async def receive_again() -> Message:
            return pending.pop() if pending else await receive()

        async def close_then_send(message: MutableMapping[str, Any]) -> None:
            # closed before the server hears the shutdown is complete: after that, it
            # stops its event loop and would cut the closing off
            if message["type"] == "lifespan.shutdown.complete":
                await close()
            await send(message)

        async def close() -> None:
            if self._app is app:
                self._app = None
                await engine.close()

        try:
            await app(scope, receive_again, close_then_send)
        finally:
            await close()


def _data_dir() -> str:
    folder = os.environ.get(DATA_DIR_ENV, "")
    if not folder:
        raise BotMemoryError(f"set {DATA_DIR_ENV} to the data folder to serve")
    return folder


app = DataDirApp()
"""The ASGI application: ``uvicorn botmemory.server.asgi:app`` (see the module docs)."""
