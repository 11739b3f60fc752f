"""`/api/v1/schedules`: CRUD, import, evaluate, preview, assignments (selectors too),
matches and conflicts.

Reading needs the viewer role; anything that changes what the reconciler does needs
operator. Schedules are addressed by id or by name. Changes are audited under the
calling API key's name.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Response

from snoozeql.api.deps import CtxDep, Operator, Viewer
from snoozeql.api.schemas.schedules import (
    AssignIn,
    AssignmentOut,
    ConflictOut,
    EvaluateIn,
    EvaluationOut,
    ImportIn,
    ImportOut,
    MatchesOut,
    MatchOut,
    PreviewOut,
    ReconcileOut,
    ScheduleOut,
    SegmentOut,
    SelectorPreviewIn,
)
from snoozeql.domain.errors import ValidationError
from snoozeql.services.schedules import ScheduleService

router = APIRouter(prefix="/schedules", tags=["schedules"])

_EXAMPLE = {
    "name": "office-hours", "timezone": "Europe/Berlin",
    "periods": [{"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}],
    "exceptions": ["2026-12-24"],
}
_CRON_EXAMPLE = {
    "name": "batch-window", "timezone": "UTC",
    "start_cron": "0 7 * * 1-5", "stop_cron": "0 19 * * 1-5",
}


@router.get("", response_model=list[ScheduleOut])
def list_schedules(ctx: CtxDep, _: Viewer) -> list[ScheduleOut]:
    return [ScheduleOut.of(v) for v in ScheduleService(ctx).list()]


@router.post("", response_model=ScheduleOut, status_code=201)
def create_schedule(
    ctx: CtxDep, key: Operator,
    body: dict[str, Any] = Body(..., examples=[_EXAMPLE, _CRON_EXAMPLE]),  # noqa: B008
) -> ScheduleOut:
    """Create a schedule from its dict form (see docs/schedules.md): periods, or a cron
    pair (``start_cron`` and ``stop_cron``), optionally with a ``priority``."""
    return ScheduleOut.of(ScheduleService(ctx).create(body, actor=key.name))


@router.post("/preview", response_model=MatchesOut)
def preview_selector(body: SelectorPreviewIn, ctx: CtxDep, _: Viewer) -> MatchesOut:
    """The instances an unsaved selector matches now; nothing is saved. A bad regex is
    refused (400) with its position."""
    found = ScheduleService(ctx).preview_selector(body.selector)
    return MatchesOut(schedule=None, count=len(found), instances=[MatchOut.of(m) for m in found])


@router.post("/import", response_model=ImportOut, status_code=201)
def import_schedules(body: ImportIn, ctx: CtxDep, key: Operator) -> ImportOut:
    """Import a Cloud Custodian tag value or Instance Scheduler configuration."""
    svc = ScheduleService(ctx)
    custodian = body.custodian is not None or body.opt_out
    if custodian == (body.instance_scheduler is not None):
        raise ValidationError("give exactly one of custodian or instance_scheduler")
    if custodian:
        if not body.name:
            raise ValidationError("name: a schedule imported from a Custodian tag needs a name")
        warnings: list[str] = []
        view = svc.import_custodian(
            body.custodian, name=body.name, default_tz=body.default_tz, onhour=body.onhour,
            offhour=body.offhour, weekends=body.weekends, weekends_only=body.weekends_only,
            opt_out=body.opt_out, actor=key.name, warnings=warnings,
        )
        return ImportOut(schedules=[ScheduleOut.of(view)], warnings=warnings)
    views, warnings = svc.import_instance_scheduler(
        body.instance_scheduler, default_timezone=body.default_timezone, actor=key.name
    )
    return ImportOut(schedules=[ScheduleOut.of(v) for v in views], warnings=warnings)


@router.post("/reconcile", response_model=ReconcileOut)
def reconcile(
    ctx: CtxDep, _: Operator,
    dry_run: bool = Query(False, description="report what a run would do now, per instance "
                          "and why; do and write nothing"),
) -> ReconcileOut:
    """Run the reconciler once now (what the ``reconcile-schedules`` job does)."""
    from snoozeql.services.reconciler import Reconciler

    return ReconcileOut.of(Reconciler(ctx).run(dry_run=dry_run))


@router.get("/{schedule}", response_model=ScheduleOut)
def get_schedule(schedule: str, ctx: CtxDep, _: Viewer) -> ScheduleOut:
    """The schedule, with its conflicts with other schedules over the next 7 days."""
    svc = ScheduleService(ctx)
    view = svc.get(schedule)
    return ScheduleOut.of(view, svc.conflicts(view.id))


@router.get("/{schedule}/conflicts", response_model=list[ConflictOut])
def schedule_conflicts(schedule: str, ctx: CtxDep, _: Viewer) -> list[ConflictOut]:
    """Other schedules wanting the opposite state on an instance both match, at some
    time in the next 7 days: the shared instances, the first such instant, and which
    schedule the reconciler follows then (priority, then running wins)."""
    return [ConflictOut.of(c) for c in ScheduleService(ctx).conflicts(schedule)]


@router.get("/{schedule}/matches", response_model=MatchesOut)
def schedule_matches(schedule: str, ctx: CtxDep, _: Viewer) -> MatchesOut:
    """The instances the schedule applies to now, each with the assignments that matched."""
    view, found = ScheduleService(ctx).matches(schedule)
    return MatchesOut(schedule=view.name, count=len(found),
                      instances=[MatchOut.of(m) for m in found])


@router.put("/{schedule}", response_model=ScheduleOut)
def replace_schedule(
    schedule: str, ctx: CtxDep, key: Operator,
    body: dict[str, Any] = Body(..., examples=[_EXAMPLE]),  # noqa: B008
) -> ScheduleOut:
    """Replace the whole definition (the name may change; the priority stays unless
    given)."""
    return ScheduleOut.of(ScheduleService(ctx).update(schedule, body, replace=True,
                                                      actor=key.name))


@router.patch("/{schedule}", response_model=ScheduleOut)
def patch_schedule(
    schedule: str, ctx: CtxDep, key: Operator,
    body: dict[str, Any] = Body(..., examples=[{"enforced": True}, {"priority": 10}]),  # noqa: B008
) -> ScheduleOut:
    """Replace the given top-level fields only."""
    return ScheduleOut.of(ScheduleService(ctx).update(schedule, body, actor=key.name))


@router.delete("/{schedule}", status_code=204)
def delete_schedule(schedule: str, ctx: CtxDep, key: Operator) -> Response:
    ScheduleService(ctx).delete(schedule, actor=key.name)
    return Response(status_code=204)


@router.post("/{schedule}/evaluate", response_model=EvaluationOut)
def evaluate_schedule(
    schedule: str, ctx: CtxDep, _: Viewer, body: EvaluateIn | None = None
) -> EvaluationOut:
    """The desired state at an instant (default now) and the next transition."""
    ev = ScheduleService(ctx).evaluate(schedule, body.at if body else None)
    return EvaluationOut.of(ev)


@router.get("/{schedule}/preview", response_model=PreviewOut)
def preview_schedule(
    schedule: str, ctx: CtxDep, _: Viewer,
    start: str | None = Query(None, description="ISO instant with offset; default now"),
    days: int = Query(7, ge=1, le=62),
) -> PreviewOut:
    view, segments = ScheduleService(ctx).preview(schedule, start=start, days=days)
    return PreviewOut(schedule=view.name, timezone=view.schedule.timezone,
                      segments=[SegmentOut.of(s) for s in segments])


@router.get("/{schedule}/assignments", response_model=list[AssignmentOut])
def list_assignments(schedule: str, ctx: CtxDep, _: Viewer) -> list[AssignmentOut]:
    return [AssignmentOut.of(a) for a in ScheduleService(ctx).assignments(schedule)]


@router.post("/{schedule}/assignments", response_model=AssignmentOut, status_code=201)
def assign(schedule: str, body: AssignIn, ctx: CtxDep, key: Operator) -> AssignmentOut:
    """Assign to one instance, a tag (key=value), an account or a selector rule tree."""
    return AssignmentOut.of(ScheduleService(ctx).assign(
        schedule, instance=body.instance, tag=body.tag, account=body.account,
        selector=body.selector, actor=key.name,
    ))


@router.delete("/{schedule}/assignments", status_code=204)
def unassign(
    schedule: str, ctx: CtxDep, key: Operator,
    instance: str | None = None, tag: str | None = None, account: str | None = None,
    selector: str | None = Query(None, description="the selector as JSON"),
) -> Response:
    ScheduleService(ctx).unassign(schedule, instance=instance, tag=tag, account=account,
                                  selector=selector, actor=key.name)
    return Response(status_code=204)
