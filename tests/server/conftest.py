"""Fixtures of the server tests: the example bot plus a public echo bot, served by an app.

The bulk of the tests talk to the app in-process (httpx over ASGI, same event loop as
the memory under test); ``live.py`` runs a real uvicorn server for the end-to-end and
browser tests. Time moves with the injected clock, never by sleeping.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from fastapi import FastAPI

from botmemory.dialog import DialogEngine
from botmemory.server import create_app
from tests.conftest import OpenMemory
from tests.server.browser import browser, narrow_page, page  # noqa: F401 - fixtures of the browser tests

EXAMPLE: Final = Path(__file__).resolve().parents[2] / "examples" / "data"
ADMIN: Final = "admin-token-0123456789abcdef"
WELCOME_TOKEN: Final = "welcome-token-0123456789"
ECHO_TOKEN: Final = "echo-token-0123456789abcd"
CONFIG: Final[dict[str, Any]] = {
    "auth": {
        "adminTokens": [ADMIN],
        "botTokens": {"welcome": [WELCOME_TOKEN], "echo": [ECHO_TOKEN]},
    },
    "dialog": {"timeoutInterval": "5m", "sessionTimeoutInterval": "30m"},
    "server": {"maxBodyBytes": 4096},
}
BOT_CONFIGS: Final[dict[str, Any]] = {
    "welcome": {"dataRetention": {"policies": {"mood": "1d", "email": "60d"}}},
    "echo": {"converse": {"public": True}},
}
ECHO_FLOW: Final = {
    "startNode": "echo",
    "nodes": [{"name": "echo", "onEnter": [{"say": "echo: {{event.text}}"}], "next": []}],
}


def write_data_dir(root: Path, config: dict[str, Any] | None = None) -> Path:
    """A data folder: the example bot, an ``echo`` bot, and ``config`` as the global file."""
    shutil.copytree(
        EXAMPLE / "bots", root / "bots", ignore=shutil.ignore_patterns("__pycache__", "*.db*")
    )
    echo = root / "bots" / "echo"
    (echo / "flows").mkdir(parents=True)
    (echo / "flows" / "main.flow.json").write_text(json.dumps(ECHO_FLOW))
    (echo / "bot.config.json").write_text(json.dumps(BOT_CONFIGS["echo"]))
    (root / "global").mkdir()
    (root / "global" / "botmemory.config.json").write_text(json.dumps(config or {}))
    return root


def bearer(token: str) -> dict[str, str]:
    """The header of a token."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data folder with the welcome and echo bots."""
    return write_data_dir(tmp_path / "data", CONFIG)


@pytest.fixture
async def engine(open_memory: OpenMemory, data_dir: Path) -> AsyncIterator[DialogEngine]:
    """The dialog engine over a memory on the backend under test, with the moving clock."""
    memory = await open_memory(CONFIG, BOT_CONFIGS)
    engine = DialogEngine.open(memory, data_dir)
    yield engine
    await engine.close()


@pytest.fixture
def app(engine: DialogEngine) -> FastAPI:
    """The app; the tests run the janitor themselves."""
    return create_app(engine, run_janitor=False)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app with the admin token."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=bearer(ADMIN)
    ) as client:
        yield client


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app without a token."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def converse(
    client: httpx.AsyncClient, text: str, user: str = "u1", bot: str = "welcome", **extra: Any
) -> list[str]:
    """Send one text message; return the reply texts."""
    response = await client.post(
        f"/api/v1/bots/{bot}/converse/{user}", json={"type": "text", "text": text, **extra}
    )
    assert response.status_code == 200, response.text
    return [reply["text"] for reply in response.json()["responses"]]
