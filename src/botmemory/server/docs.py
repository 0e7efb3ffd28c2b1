"""``/docs``: Swagger UI served from the package, so that it works with no network.

The assets (Swagger UI's bundle, stylesheet and FastAPI's icon) come from the
``fastapi-offline`` package, a dependency of the ``server`` extra; the page is FastAPI's
own, pointed at them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_URL", "install_docs"]

ASSETS_URL: Final = "/docs-assets"


def install_docs(app: FastAPI, docs_url: str = "/docs") -> None:
    """Serve Swagger UI at ``docs_url`` with its assets from the package."""
    assets = Path(str(files("fastapi_offline") / "static"))
    app.mount(ASSETS_URL, StaticFiles(directory=assets), name="docs-assets")

    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: HTTP API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        )

    app.add_api_route(docs_url, swagger_ui, include_in_schema=False)
