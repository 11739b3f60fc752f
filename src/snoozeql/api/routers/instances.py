from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from snoozeql.api.deps import CtxDep, Operator, Viewer
from snoozeql.api.schemas.instances import (
    ActionIn,
    ActionResultOut,
    BulkIn,
    BulkItemOut,
    BulkOut,
    BulkSkippedOut,
    InstanceDetail,
    InstancePage,
    OverrideIn,
    OverrideOut,
    page_body,
)
from snoozeql.domain.errors import PermissionDenied
from snoozeql.domain.types import InstanceKind, Role
from snoozeql.services.bulk import BulkService, bulk_action
from snoozeql.services.inventory import InventoryService
from snoozeql.services.lifecycle import LifecycleService
from snoozeql.services.schedules import OverrideService
from snoozeql.store.apikeys import ApiKeyRecord

router = APIRouter(prefix="/instances", tags=["instances"])


@router.get("", response_model=InstancePage)
def list_instances(
    ctx: CtxDep,
    _: Viewer,
    provider: str | None = None,
    account: str | None = Query(None, description="account id or name"),
    region: str | None = None,
    engine: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    tag: Annotated[list[str] | None, Query(description="key=value; repeatable (AND)")] = None,
    q: str | None = Query(None, description="free text over name, ARN, engine, endpoint"),
    missing: bool | None = None,
    sort: str = Query("name", description="name, engine, region, status, ...; '-' = desc"),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
) -> Response:
    svc = InventoryService(ctx)
    f = svc.build_filter(
        provider=provider, account=account, region=region, engine=engine, status=status,
        kind=kind, tags=tag, text=q, missing=missing,
    )
    # The body InstancePage describes, each item rendered by the database as the JSON
    # of its InstanceOut: the listing is the hottest path, and building a Python object
    # per row and serialising it again cost more than the query.
    page = svc.list_json(f, sort=sort, limit=limit, cursor=cursor)
    return Response(content=page_body(page.items, page.next_cursor),
                    media_type="application/json")


@router.post("/bulk", response_model=BulkOut)
def bulk(body: BulkIn, ctx: CtxDep, key: Operator) -> BulkOut:
    """Start, stop or restart many instances: by ``ids`` or by ``selector`` (exactly one).

    Each instance is attempted (and logged) on its own; one failure does not stop the
    rest. ``dry_run`` lists what would be acted on and does nothing."""
    act = bulk_action(body.action)
    svc = BulkService(ctx)
    found = svc.resolve_detailed(body.ids, body.selector)
    results = (svc.preview(act, found.instances) if body.dry_run
               else svc.run(act, found.instances, key.name, reason="manual"))
    return BulkOut(
        action=act.value, dry_run=body.dry_run, matched=len(found.instances),
        results=[BulkItemOut.of(r) for r in results],
        skipped=[BulkSkippedOut.of(s) for s in found.skipped],
    )


@router.get("/{instance}", response_model=InstanceDetail)
def get_instance(instance: str, ctx: CtxDep, _: Viewer) -> InstanceDetail:
    svc = InventoryService(ctx)
    found = svc.get(instance)
    members = svc.members(found) if found.kind == InstanceKind.CLUSTER else []
    return InstanceDetail.with_members(found, members)


def _act(ctx: CtxDep, instance: str, action: str, key: ApiKeyRecord,
         body: ActionIn | None) -> ActionResultOut:
    force = body is not None and body.force
    if force and not key.role.allows(Role.ADMIN):
        raise PermissionDenied(
            f'"force": true (acting on a protected instance) needs the admin role; key '
            f"{key.name!r} is {key.role}"
        )
    r = LifecycleService(ctx).act(instance, action, actor=key.name, reason="manual",
                                  force=force)
    return ActionResultOut.of(r)


_ACT_DOC = """A start/stop that already happened (stopped, or stopping) is 200 with result ok
and message "already stopped" ("already stopping (in progress)"). A protected instance
(snoozeql-protect=true) is refused (409, "protected") unless the body says
`{"force": true}`, which needs the admin role."""


@router.post("/{instance}/start", response_model=ActionResultOut, description=_ACT_DOC)
def start_instance(instance: str, ctx: CtxDep, key: Operator,
                   body: ActionIn | None = None) -> ActionResultOut:
    return _act(ctx, instance, "start", key, body)


@router.post("/{instance}/stop", response_model=ActionResultOut, description=_ACT_DOC)
def stop_instance(instance: str, ctx: CtxDep, key: Operator,
                  body: ActionIn | None = None) -> ActionResultOut:
    return _act(ctx, instance, "stop", key, body)


@router.post("/{instance}/restart", response_model=ActionResultOut, description=_ACT_DOC)
def restart_instance(instance: str, ctx: CtxDep, key: Operator,
                     body: ActionIn | None = None) -> ActionResultOut:
    return _act(ctx, instance, "restart", key, body)


@router.post("/{instance}/override", response_model=OverrideOut)
def set_override(instance: str, body: OverrideIn, ctx: CtxDep, key: Operator) -> OverrideOut:
    """Keep an instance awake (state running) or asleep (stopped) until a time; wins over
    its schedule until then. The reconciler acts on it at its next run."""
    found, rec = OverrideService(ctx).set(
        instance, body.state, body.until, actor=key.name, reason=body.reason,
        timezone=body.timezone,
    )
    return OverrideOut.of(found.name, rec)


@router.delete("/{instance}/override", status_code=204)
def clear_override(instance: str, ctx: CtxDep, key: Operator) -> Response:
    """End the override now; the schedule applies again at the reconciler's next run."""
    OverrideService(ctx).clear(instance, actor=key.name)
    return Response(status_code=204)
