from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from snoozeql.api.deps import CtxDep, Viewer
from snoozeql.api.schemas import ActionOut
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
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[ActionOut]:
    records = ActionLogService(ctx).list(
        instance=instance, action=action, result=result, actor=actor, since=since,
        until=until, limit=limit,
    )
    return [ActionOut.of(r) for r in records]
