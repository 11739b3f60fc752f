"""`/api/v1/schedules`: CRUD, import, evaluate, preview and assignments.

Reading needs the viewer role; anything that changes what the reconciler does needs
operator. Schedules are addressed by id or by name.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Response

from snoozeql.api.deps import CtxDep, Operator, Viewer
from snoozeql.api.schedule_schemas import (
    AssignIn,
    AssignmentOut,
    EvaluateIn,
    EvaluationOut,
    ImportIn,
    ImportOut,
    PreviewOut,
    ScheduleOut,
    SegmentOut,
)
from snoozeql.domain.errors import ValidationError
from snoozeql.services.schedules import ScheduleService

router = APIRouter(prefix="/schedules", tags=["schedules"])

_EXAMPLE = {
    "name": "office-hours", "timezone": "Europe/Berlin",
    "periods": [{"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}],
    "exceptions": ["2026-12-24"],
}


@router.get("", response_model=list[ScheduleOut])
def list_schedules(ctx: CtxDep, _: Viewer) -> list[ScheduleOut]:
    return [ScheduleOut.of(v) for v in ScheduleService(ctx).list()]


@router.post("", response_model=ScheduleOut, status_code=201)
def create_schedule(
    ctx: CtxDep, _: Operator,
    body: dict[str, Any] = Body(..., examples=[_EXAMPLE]),  # noqa: B008
) -> ScheduleOut:
    """Create a schedule from its dict form (see docs/schedules.md)."""
    return ScheduleOut.of(ScheduleService(ctx).create(body))


@router.post("/import", response_model=ImportOut, status_code=201)
def import_schedules(body: ImportIn, ctx: CtxDep, _: Operator) -> ImportOut:
    """Import a Cloud Custodian tag value or Instance Scheduler configuration."""
    svc = ScheduleService(ctx)
    if (body.custodian is None) == (body.instance_scheduler is None):
        raise ValidationError("give exactly one of custodian or instance_scheduler")
    if body.custodian is not None:
        if not body.name:
            raise ValidationError("name: a schedule imported from a Custodian tag needs a name")
        view = svc.import_custodian(body.custodian, name=body.name, default_tz=body.default_tz)
        return ImportOut(schedules=[ScheduleOut.of(view)], warnings=[])
    views, warnings = svc.import_instance_scheduler(
        body.instance_scheduler, default_timezone=body.default_timezone
    )
    return ImportOut(schedules=[ScheduleOut.of(v) for v in views], warnings=warnings)


@router.get("/{schedule}", response_model=ScheduleOut)
def get_schedule(schedule: str, ctx: CtxDep, _: Viewer) -> ScheduleOut:
    return ScheduleOut.of(ScheduleService(ctx).get(schedule))


@router.put("/{schedule}", response_model=ScheduleOut)
def replace_schedule(
    schedule: str, ctx: CtxDep, _: Operator,
    body: dict[str, Any] = Body(..., examples=[_EXAMPLE]),  # noqa: B008
) -> ScheduleOut:
    """Replace the whole definition (the name may change)."""
    return ScheduleOut.of(ScheduleService(ctx).update(schedule, body, replace=True))


@router.patch("/{schedule}", response_model=ScheduleOut)
def patch_schedule(
    schedule: str, ctx: CtxDep, _: Operator,
    body: dict[str, Any] = Body(..., examples=[{"enforced": True}]),  # noqa: B008
) -> ScheduleOut:
    """Replace the given top-level fields only."""
    return ScheduleOut.of(ScheduleService(ctx).update(schedule, body))


@router.delete("/{schedule}", status_code=204)
def delete_schedule(schedule: str, ctx: CtxDep, _: Operator) -> Response:
    ScheduleService(ctx).delete(schedule)
    return Response(status_code=204)


@router.post("/{schedule}/evaluate", response_model=EvaluationOut)
def evaluate_schedule(
    schedule: str, ctx: CtxDep, _: Viewer, body: EvaluateIn | None = None
) -> EvaluationOut:
    """The desired state at an instant (default now) and the next transition."""
    ev = ScheduleService(ctx).evaluate(schedule, body.at if body else None)
    return EvaluationOut.model_validate(ev.to_json())


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
def assign(schedule: str, body: AssignIn, ctx: CtxDep, _: Operator) -> AssignmentOut:
    """Assign to one instance, a tag selector (key=value) or an account."""
    return AssignmentOut.of(ScheduleService(ctx).assign(
        schedule, instance=body.instance, tag=body.tag, account=body.account
    ))


@router.delete("/{schedule}/assignments", status_code=204)
def unassign(
    schedule: str, ctx: CtxDep, _: Operator,
    instance: str | None = None, tag: str | None = None, account: str | None = None,
) -> Response:
    ScheduleService(ctx).unassign(schedule, instance=instance, tag=tag, account=account)
    return Response(status_code=204)
