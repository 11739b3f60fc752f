"""``GET /metrics``: the Prometheus text format, for scrapers on allowed networks.

No API key: a scraper is allowed by where it connects from (loopback, or a network in
``SNOOZEQL_METRICS_ALLOW``); anyone else gets a 403. Not part of the OpenAPI document
(it is not JSON and not under /api/v1).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from snoozeql.api.deps import CtxDep
from snoozeql.api.instrument import peer_of
from snoozeql.services.telemetry import exposition, scrape_allowed

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, ctx: CtxDep) -> Response:
    if not scrape_allowed(ctx.settings, peer_of(request.scope)):
        return JSONResponse(
            {"error": {"code": "forbidden", "message": "/metrics is served to loopback and "
                       "to the networks in SNOOZEQL_METRICS_ALLOW only"}},
            status_code=403,
        )
    body, content_type = exposition(ctx)
    return Response(body, media_type=content_type)
