"""`/api/v1/savings`: realized savings in a window and projected monthly savings;
``format=csv`` exports the stop intervals (with the hourly rate stored at each stop)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from snoozeql.api.deps import CtxDep, Viewer
from snoozeql.api.schemas.savings import SavingsOut
from snoozeql.domain.errors import ValidationError
from snoozeql.services.savings import SavingsService

router = APIRouter(prefix="/savings", tags=["savings"])


@router.get("", response_model=SavingsOut, responses={200: {
    "description": "JSON, or CSV with format=csv",
    "content": {"text/csv": {"schema": {"type": "string"}}},
}})
def savings(
    ctx: CtxDep, _: Viewer,
    from_: str | None = Query(None, alias="from", description="ISO instant; default to - 30d"),
    to: str | None = Query(None, description="ISO instant; default now"),
    group_by: str = Query("instance", description="instance, account or schedule"),
    format: str = Query("json", description="json, or csv for the stop intervals"),  # noqa: A002
) -> SavingsOut | Response:
    """Hours SnoozeQL kept databases stopped x hourly cost x nodes, grouped; and the
    projected monthly savings of every schedule. ``format=csv``: one row per stop
    interval in the window."""
    svc = SavingsService(ctx)
    if format == "csv":
        return Response(svc.export_csv(start=from_, end=to), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="savings.csv"'})
    if format != "json":
        raise ValidationError("format: use json or csv")
    return SavingsOut.of(svc.report(start=from_, end=to, group_by=group_by))
