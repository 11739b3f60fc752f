"""`/api/v1/savings`: realized savings in a window and projected monthly savings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from snoozeql.api.deps import CtxDep, Viewer
from snoozeql.services.savings import SavingsService

router = APIRouter(prefix="/savings", tags=["savings"])


@router.get("")
def savings(
    ctx: CtxDep, _: Viewer,
    from_: str | None = Query(None, alias="from", description="ISO instant; default to - 30d"),
    to: str | None = Query(None, description="ISO instant; default now"),
    group_by: str = Query("instance", description="instance, account or schedule"),
) -> dict[str, Any]:
    """Hours SnoozeQL kept databases stopped x hourly cost x nodes, grouped; and the
    projected monthly savings of every schedule."""
    return SavingsService(ctx).report(start=from_, end=to, group_by=group_by).to_json()
