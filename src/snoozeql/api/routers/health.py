from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from snoozeql import __version__
from snoozeql.api.deps import CtxDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness and store reachability; needs no key")
def healthz(ctx: CtxDep) -> JSONResponse:
    try:
        with ctx.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception:  # noqa: BLE001
        return JSONResponse({"status": "degraded", "store": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "version": __version__})
