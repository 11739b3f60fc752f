"""The FastAPI application: routers under /api/v1, JSON errors, OpenAPI."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from snoozeql import __version__
from snoozeql.api.docs import install_docs
from snoozeql.api.fastlane import ListingFastLane
from snoozeql.api.instrument import HttpMetrics
from snoozeql.api.limits import RequestBounds
from snoozeql.api.openapi import add_links, allowed_methods, error_responses
from snoozeql.api.routers import accounts, actions, apikeys, health, instances, prometheus
from snoozeql.api.routers import audit as audit_router
from snoozeql.api.routers import jobs as jobs_router
from snoozeql.api.routers import local_instances as local_router
from snoozeql.api.routers import metrics as metrics_router
from snoozeql.api.routers import savings as savings_router
from snoozeql.api.routers import schedules as schedules_router
from snoozeql.api.routers import stacks as stacks_router
from snoozeql.api.routers import templates as templates_router
from snoozeql.domain.errors import SnoozeError
from snoozeql.services.context import Context

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid_input",
    502: "provider_error",
}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    code = _CODES.get(status, "error")
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=headers)


def create_app(ctx: Context) -> FastAPI:
    app = FastAPI(
        title="SnoozeQL (demo: simulated fleet)" if ctx.settings.demo else "SnoozeQL",
        version=__version__,
        description="One control plane for every database a team runs.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served from vendored assets: api/docs.py
        redoc_url=None,
    )
    app.state.ctx = ctx

    @app.exception_handler(SnoozeError)
    async def _snooze_error(_: Request, exc: SnoozeError) -> JSONResponse:
        return _error(exc.http_status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return _error(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and (allowed := allowed_methods(request)):
            headers["Allow"] = ", ".join(allowed)  # every method of the path, not one route's
        return _error(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return _error(500, "internal error; see the server log")

    install_docs(app, API_PREFIX)
    _build_openapi = app.openapi

    def openapi_with_links() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_links(_build_openapi())
        return app.openapi_schema

    app.openapi = openapi_with_links  # type: ignore[method-assign]
    # Innermost of ours: plain listing requests answered without FastAPI's routing and
    # parameter handling (api/fastlane.py); every other request passes on.
    listing = next(r for r in instances.router.routes
                   if getattr(r, "endpoint", None) is instances.list_instances)
    app.add_middleware(ListingFastLane, ctx=ctx, prefix=API_PREFIX, route=listing,
                       endpoint=instances.list_instances, error=_error)
    app.add_middleware(RequestBounds, max_body_bytes=ctx.settings.max_body_bytes,
                       prefix=API_PREFIX)
    # Outermost of ours: counts every answer, a 413 of RequestBounds too.
    app.add_middleware(HttpMetrics, telemetry=ctx.telemetry, routes=lambda: app.router.routes)
    errors = error_responses()  # every error status, declared on every operation
    app.include_router(health.router)
    app.include_router(prometheus.router)  # GET /metrics (Prometheus text format)
    for r in (accounts.router, instances.router, actions.router, apikeys.router,
              jobs_router.router):
        app.include_router(r, prefix=API_PREFIX, responses=errors)
    for r in (templates_router.router, stacks_router.router):
        app.include_router(r, prefix=API_PREFIX, responses=errors)
    app.include_router(local_router.router, prefix=API_PREFIX, responses=errors)
    app.include_router(metrics_router.router, prefix=API_PREFIX, responses=errors)
    for r in (schedules_router.router, savings_router.router, audit_router.router):
        app.include_router(r, prefix=API_PREFIX, responses=errors)
    from snoozeql import web  # the dashboard: pages at /, assets at /static

    web.install(app)
    return app


def create_metrics_app(ctx: Context) -> FastAPI:
    """What a worker serves on ``--metrics-port``: ``/metrics`` (its task series and
    the fleet gauges) and ``/healthz``."""
    app = FastAPI(title="SnoozeQL worker", version=__version__, openapi_url=None,
                  docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    app.include_router(health.router)
    app.include_router(prometheus.router)
    return app
