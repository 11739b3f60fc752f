"""Instance detail: metadata, tags, cluster, connection, actions, 14 days of hourly
metrics (min/avg/max charts), the week x hour heatmap, schedule and next transitions,
the keep-awake / sleep-until override."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import PlainTextResponse

from snoozeql.domain.errors import SnoozeError, ValidationError
from snoozeql.domain.metrics import METRICS
from snoozeql.domain.types import InstanceKind
from snoozeql.services.accounts import AccountService
from snoozeql.services.actions import ActionLogService
from snoozeql.services.inventory import InventoryService
from snoozeql.services.lifecycle import LifecycleService
from snoozeql.services.local_databases import LocalDatabaseService, is_local
from snoozeql.services.metrics import MetricsService
from snoozeql.services.schedules import OverrideService, ScheduleService
from snoozeql.web.core import (
    Operator,
    Viewer,
    WebRoute,
    csrf_protect,
    ctx_of,
    heat_level,
    is_htmx,
    render,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

METRIC_DAYS = 14
TRANSITIONS_DAYS = 7


def _charts(request: Request, instance_id: str) -> dict[str, Any]:
    ctx = ctx_of(request)
    now = ctx.now()
    _, start, end, rows = MetricsService(ctx).series(
        instance_id, start=now - timedelta(days=METRIC_DAYS), end=now)
    by_metric: dict[str, dict[str, list[Any]]] = {
        m: {"t": [], "min": [], "avg": [], "max": []} for m in METRICS}
    for a in rows:
        s = by_metric[a.metric]
        s["t"].append(int(a.hour.timestamp()))
        s["min"].append(a.min)
        s["avg"].append(a.avg)
        s["max"].append(a.max)
    return {"series": by_metric, "start": int(start.timestamp()), "end": int(end.timestamp())}


@router.get("/instances/{instance}")
def instance_page(request: Request, instance: str, session: Viewer) -> Response:
    ctx = ctx_of(request)
    inventory = InventoryService(ctx)
    inst = inventory.get(instance)
    account = AccountService(ctx).get(inst.account_id) if inst.account_id else None
    members = inventory.members(inst) if inst.kind == InstanceKind.CLUSTER else []
    parent = None
    if inst.cluster_provider_id:
        try:
            parent = inventory.get(inst.cluster_provider_id)
        except SnoozeError:
            parent = None
    charts = _charts(request, str(inst.id))
    heat_error = None
    try:
        _, profile, hours = MetricsService(ctx).activity(inst.id)
    except SnoozeError as exc:  # e.g. a bad timezone tag: the rest of the page still shows
        profile, hours, heat_error = None, 0, exc.message
    rows = profile.connections if profile else ()
    top = max((v for row in rows for v in row if v is not None), default=0.0)
    heat = [[(v, heat_level(v, top)) for v in row] for row in rows]
    schedules = ScheduleService(ctx)
    gov = schedules.governing_one(inst)
    evaluation = transitions = None
    if gov is not None:
        evaluation = schedules.evaluate(gov.schedule_id)
        _, segments = schedules.preview(gov.schedule_id, days=TRANSITIONS_DAYS)
        transitions = segments[1:11]
    override = OverrideService(ctx).get(str(inst.id))
    if override is not None and override.until <= ctx.now():
        override = None
    recent = ActionLogService(ctx).list(instance=str(inst.id), limit=10)
    return render(request, "instance.html", {
        "i": inst, "account": account, "members": members, "parent": parent,
        "charts_json": json.dumps(charts), "has_metrics": any(
            charts["series"][m]["t"] for m in METRICS),
        "profile": profile, "heat": heat, "heat_hours": hours, "heat_error": heat_error,
        "gov": gov,
        "evaluation": evaluation, "transitions": transitions, "override": override,
        "recent": recent, "local": is_local(inst),
    })


@router.post("/instances/{instance}/action", dependencies=[Depends(csrf_protect)])
def instance_action(request: Request, instance: str, session: Operator,
                    action: Annotated[str, Form()]) -> Response:
    """Start, stop or restart this instance; the outcome (or the refusal) in the page."""
    report = LifecycleService(ctx_of(request)).act(instance, action, actor=session.key_name,
                                                   reason="manual")
    message = f"{report.action.value} of {report.instance.name}: {report.result.value}" + (
        f" ({report.message})" if report.message else "")
    return _after(request, str(report.instance.id), message)


def _after(request: Request, instance_id: str, message: str) -> Response:
    if is_htmx(request):
        resp = render(request, "partials/toast.html", {"message": message, "kind": "ok"})
        resp.headers["HX-Retarget"] = "#toasts"
        resp.headers["HX-Reswap"] = "beforeend"
        resp.headers["HX-Trigger"] = "instance-changed"
        return resp
    return render(request, "done.html", {"message": message,
                                         "back": f"/instances/{instance_id}"})


@router.post("/instances/{instance}/override", dependencies=[Depends(csrf_protect)])
def set_override(request: Request, instance: str, session: Operator,
                 state: Annotated[str, Form()], until: Annotated[str, Form()] = "",
                 reason: Annotated[str, Form()] = "") -> Response:
    if not until.strip():
        raise ValidationError("until: say until when (HH:MM, 'tomorrow 08:00', 2h, or ISO)")
    found, rec = OverrideService(ctx_of(request)).set(
        instance, state, until, actor=session.key_name, reason=reason.strip() or None)
    word = "kept awake" if rec.state == "running" else "asleep"
    return _after(request, str(found.id),
                  f"{found.name} stays {word} until {rec.until:%Y-%m-%d %H:%M} UTC")


@router.post("/instances/{instance}/override/clear", dependencies=[Depends(csrf_protect)])
def clear_override(request: Request, instance: str, session: Operator) -> Response:
    ctx = ctx_of(request)
    found = InventoryService(ctx).get(instance)
    ended = OverrideService(ctx).clear(str(found.id), actor=session.key_name)
    return _after(request, str(found.id), "override ended; the schedule applies again"
                  if ended else "there was no override to end")


@router.get("/instances/{instance}/connection-url")
def connection_url(request: Request, instance: str, _: Operator) -> Response:
    """The local database's URL (with its password): operators only, never cached."""
    return PlainTextResponse(LocalDatabaseService(ctx_of(request)).url(instance),
                             headers={"Cache-Control": "no-store"})
