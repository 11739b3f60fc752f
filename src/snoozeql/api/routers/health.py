from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from snoozeql import __version__
from snoozeql.api.deps import CtxDep
from snoozeql.api.schemas.health import DegradedOut, HealthOut
from snoozeql.services.maintenance import store_reachable

router = APIRouter(tags=["health"])


@router.get(
    "/healthz", summary="Liveness and store reachability; needs no key",
    response_model=HealthOut,
    responses={503: {"description": "the store is unreachable", "model": DegradedOut}},
)
def healthz(ctx: CtxDep) -> HealthOut | JSONResponse:
    if not store_reachable(ctx):
        body = DegradedOut(status="degraded", store="unreachable")
        return JSONResponse(body.model_dump(), status_code=503)
    # demo: true when serving the simulated fleet of `snoozeql demo`, not real databases.
    return HealthOut(status="ok", version=__version__, demo=ctx.settings.demo)
