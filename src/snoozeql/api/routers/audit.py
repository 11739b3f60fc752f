"""`/api/v1/audit`: who changed which object, when, from what to what (viewer role).

Filters: ``kind`` (account, schedule, assignment, override, apikey, stack,
stack_instance, stack_override), ``object`` (name or id), ``actor`` (API key name or
``cli``), ``since``/``until`` (ISO; UTC when no zone). ``format=csv`` exports.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from snoozeql.api.deps import CtxDep, Viewer
from snoozeql.api.schemas.audit import AuditEntryOut
from snoozeql.domain.errors import ValidationError
from snoozeql.services.audit import AuditService

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditEntryOut], responses={200: {
    "description": "JSON, or CSV with format=csv",
    "content": {"text/csv": {"schema": {"type": "string"}}},
}})
def list_audit(
    ctx: CtxDep, _: Viewer,
    kind: str | None = Query(None, description="kind of object changed"),
    object: str | None = Query(None, description="object name or id"),  # noqa: A002
    actor: str | None = Query(None, description="API key name, or cli"),
    since: str | None = Query(None, description="ISO time, inclusive"),
    until: str | None = Query(None, description="ISO time, exclusive"),
    limit: int = Query(1000, ge=1, le=10000),
    format: str = Query("json", description="json or csv"),  # noqa: A002
) -> list[AuditEntryOut] | Response:
    """Audit entries, newest first, with the object's redacted state before and after."""
    if format not in ("json", "csv"):
        raise ValidationError("format: use json or csv")
    svc = AuditService(ctx)
    records = svc.list(kind=kind, obj=object, actor=actor, since=since, until=until,
                       limit=limit)
    if format == "csv":
        return Response(svc.to_csv(records), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="audit.csv"'})
    return [AuditEntryOut.of(r) for r in records]
