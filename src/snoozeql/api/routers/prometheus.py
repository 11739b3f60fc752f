"""``GET /metrics``: the Prometheus text format, for scrapers on allowed networks.

No API key: a scraper is allowed by where it connects from (loopback, or a network in
``SNOOZEQL_METRICS_ALLOW``); anyone else gets a 403. Not part of the OpenAPI document
(it is not JSON and not under /api/v1).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from snoozeql.api.deps import CtxDep
from snoozeql.api.instrument import peer_of
from snoozeql.api.schemas.common import ErrorBody, ErrorOut
from snoozeql.services.telemetry import exposition, scrape_allowed

router = APIRouter()


@router.get("/metrics", include_in_schema=False, response_class=PlainTextResponse,
            responses={403: {"model": ErrorOut}})
def metrics(request: Request, ctx: CtxDep) -> Response:
    """The series in the Prometheus text format (its own content type and version)."""
    if not scrape_allowed(ctx.settings, peer_of(request.scope)):
        refused = ErrorOut(error=ErrorBody(
            code="forbidden", message="/metrics is served to loopback and to the networks "
            "in SNOOZEQL_METRICS_ALLOW only"))
        return JSONResponse(refused.model_dump(), status_code=403)
    body, content_type = exposition(ctx)
    return PlainTextResponse(body, media_type=content_type)
