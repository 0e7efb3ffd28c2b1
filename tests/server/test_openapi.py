"""The API against its own OpenAPI document: schemathesis, a bounded number of examples.

Generated requests (valid and invalid) go to a real server; every answer must be a
documented status, of the documented content type and shape, and never a 5xx.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from botmemory import ManualClock, Memory, load_settings
from botmemory.dialog import DialogEngine
from botmemory.server import create_app
from botmemory.storage import create_storage
from tests.conftest import START
from tests.server.conftest import ADMIN, BOT_CONFIGS, CONFIG, bearer, write_data_dir
from tests.server.live import LiveServer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose example user has some memory, so that examples find data."""
    data = write_data_dir(tmp_path_factory.mktemp("openapi") / "data", CONFIG)
    with LiveServer(data, ManualClock(START)) as server:
        with httpx.Client(base_url=server.url, headers=bearer(ADMIN)) as http:
            for text in ("hi", "Ada", "great"):
                http.post("/api/v1/bots/welcome/converse/user-42", json={"text": text})
            http.put("/api/v1/bots/welcome/kvs/storage/global/motd", json={"value": "hi"})
        yield server


def openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document, from an app over a memory that is never opened."""
    memory = Memory(create_storage("memory://"), load_settings(CONFIG, BOT_CONFIGS))
    return create_app(DialogEngine(memory, {})).openapi()


# built at import: schemathesis.pytest.from_fixture does not work with pytest 9
schema = schemathesis.openapi.from_dict(openapi_document())
EVENTS = "/api/v1/bots/{botId}/users/{userId}/events"
"""The push channel: a stream that stays open (tested in test_events.py)."""


@schema.exclude(path=EVENTS).parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_the_promises_of_its_openapi(
    case: schemathesis.Case[Any], live: LiveServer
) -> None:
    case.call_and_validate(base_url=live.url, headers=bearer(ADMIN), checks=CHECKS)


def test_the_openapi_document_describes_every_route(live: LiveServer) -> None:
    document = httpx.get(f"{live.url}/openapi.json").json()
    assert set(document["paths"]) >= {
        "/api/v1/bots/{botId}/converse/{userId}",
        "/api/v1/bots/{botId}/users/{userId}/memory",
        "/api/v1/bots/{botId}/memory/{scope}/{ownerId}/{name}",
        "/api/v1/bots/{botId}/kvs/{key}",
        "/api/v1/bots/{botId}/users/{userId}/export",
        EVENTS,
        "/api/v1/bots/{botId}/users/{userId}",
        "/api/v1/janitor",
        "/api/v1/janitor/run",
        "/healthz",
        "/metrics",
    }
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path in document["paths"].values():
        for operation in path.values():
            assert "422" not in operation["responses"]
    assert httpx.get(f"{live.url}/docs").status_code == 200
