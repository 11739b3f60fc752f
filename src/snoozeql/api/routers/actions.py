from __future__ import annotations

from fastapi import APIRouter, Query

from snoozeql.api.deps import CtxDep, Viewer
from snoozeql.api.schemas.actions import ActionOut
from snoozeql.services.actions import ActionLogService

router = APIRouter(prefix="/actions", tags=["actions"])


@router.get("", response_model=list[ActionOut])
def list_actions(
    ctx: CtxDep,
    _: Viewer,
    instance: str | None = Query(None, description="instance id, ARN or name"),
    action: str | None = None,
    result: str | None = None,
    actor: str | None = None,
    since: str | None = Query(None, description="ISO 8601 date or time (UTC if no offset), "
                              "inclusive", examples=["2026-11-23T08:00:00Z"]),
    until: str | None = Query(None, description="ISO 8601 date or time (UTC if no offset), "
                              "exclusive", examples=["2026-11-24"]),
    limit: int = Query(100, ge=1, le=1000),
) -> list[ActionOut]:
    records = ActionLogService(ctx).list(
        instance=instance, action=action, result=result, actor=actor, since=since,
        until=until, limit=limit,
    )
    return [ActionOut.of(r) for r in records]
