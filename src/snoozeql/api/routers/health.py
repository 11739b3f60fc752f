from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from snoozeql import __version__
from snoozeql.api.deps import CtxDep
from snoozeql.services.maintenance import store_reachable

router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    status: str = Field(examples=["ok"])
    version: str
    demo: bool = Field(description="true when serving `snoozeql demo`'s simulated fleet")


@router.get(
    "/healthz", summary="Liveness and store reachability; needs no key",
    response_model=HealthOut,
    responses={503: {"description": "the store is unreachable", "model": dict[str, str]}},
)
def healthz(ctx: CtxDep) -> JSONResponse:
    if not store_reachable(ctx):
        return JSONResponse({"status": "degraded", "store": "unreachable"}, status_code=503)
    # demo: true when serving the simulated fleet of `snoozeql demo`, not real databases.
    return JSONResponse({"status": "ok", "version": __version__, "demo": ctx.settings.demo})
