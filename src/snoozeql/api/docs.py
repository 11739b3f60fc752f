"""Swagger UI at ``/api/v1/docs``, served from assets shipped inside the package.

The assets are the npm package ``swagger-ui-dist`` at a pinned version, vendored under
``api/static/swagger`` by ``scripts/vendor_swagger_ui.sh`` (which checks their sha256),
so the page works offline and behind strict egress: it references no outside URL.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_DIR = Path(__file__).parent / "static" / "swagger"


def install_docs(app: FastAPI, prefix: str) -> None:
    """Mount the vendored assets under ``{prefix}/static/swagger`` and the docs page."""
    assets = f"{prefix}/static/swagger"
    app.mount(assets, StaticFiles(directory=SWAGGER_DIR), name="swagger-assets")
    openapi_url = app.openapi_url or f"{prefix}/openapi.json"

    @app.get(f"{prefix}/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            # Swagger UI would otherwise fetch a validity badge from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )
