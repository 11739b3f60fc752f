"""The web dashboard, served by the same app (and port) as the API.

``install(app)`` adds the page routes (``web/routes/<page>.py``) and ``/static``. Pages
call services directly, like the API routers do; they never call the HTTP API.
"""

from __future__ import annotations

import inspect

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from snoozeql.web.core import STATIC_DIR, error_page

# Paths whose errors stay JSON (the API and the probes); every other one is a page.
_JSON_PATHS = ("/api/", "/healthz", "/readyz", "/metrics", "/static/")


def install(app: FastAPI) -> None:
    from snoozeql.web.routes import (
        accounts,
        activity,
        apikeys,
        instance_detail,
        instances,
        local,
        login,
        overview,
        recommendations,
        savings,
        schedules,
        stacks,
        templates,
    )

    for module in (login, overview, instances, instance_detail, accounts, local, activity,
                   apikeys, schedules, recommendations, savings, stacks, templates):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    json_handler = app.exception_handlers.get(StarletteHTTPException)

    async def http_error(request: Request, exc: Exception) -> Response:
        """An unknown page (404) or method (405) outside the API: an HTML page."""
        assert isinstance(exc, StarletteHTTPException)
        if json_handler is None or not request.url.path.startswith(_JSON_PATHS):
            return error_page(request, exc.status_code, str(exc.detail))
        answer = json_handler(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    app.add_exception_handler(StarletteHTTPException, http_error)
