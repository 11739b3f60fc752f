"""Schedules: the list, a schedule's page (7-day timeline, matched instances,
assignments, conflicts), the editor (weekly grid, periods text, cron pair; selector
builder), an instance's timeline, and the conflicts page.

Saving goes through :class:`ScheduleService` as the API and the CLI do. The editor's
live checks (periods text, cron transitions, the grid, selector previews) are JSON
endpoints of this page, computed on the server by the same code that saves.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from snoozeql.api.schemas.schedules import MatchOut
from snoozeql.domain.errors import SnoozeError, ValidationError
from snoozeql.domain.schedules import Schedule, next_transition
from snoozeql.domain.schedules.editing import (
    format_periods_text,
    grid_from_periods,
    parse_periods_text,
    periods_from_grid,
)
from snoozeql.domain.schedules.model import load_zone, schedule_document
from snoozeql.domain.selectors import parse_selector, selector_document
from snoozeql.services.inventory import InventoryService
from snoozeql.services.recommendations import RecommendationService
from snoozeql.services.schedule_board import ScheduleBoard, TimelineSegment
from snoozeql.services.schedules import ScheduleService
from snoozeql.web.core import (
    Operator,
    Viewer,
    WebRoute,
    csrf_protect,
    ctx_of,
    render,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

TIMELINE_DAYS = 7
MATCH_PAGE = 50
DIFFER_SHOWN = 10
PREVIEW_SHOWN = 50
_ZONES: list[str] | None = None
_SEL_ERROR = re.compile(r"^(?P<path>[a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*): ")
_SEL_POS = re.compile(r"at position (\d+)")
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def zones() -> list[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = sorted(z for z in zoneinfo.available_timezones()
                        if "/" in z or z == "UTC") or ["UTC"]
    return _ZONES


# --------------------------------------------------------------------------- timelines

def day_rows(segments: list[Any], zone: Any, start: datetime, days: int = TIMELINE_DAYS
             ) -> list[dict[str, Any]]:
    """Segments cut into one row per local day of ``zone`` from ``start``'s day: each
    bar with its left offset and width in percent of the day, state and a title."""
    local0 = start.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = []
    for d in range(days + 1):
        day_start = (local0 + timedelta(days=d)).replace(tzinfo=None)
        lo = day_start.replace(tzinfo=zone)
        hi = (day_start + timedelta(days=1)).replace(tzinfo=zone)
        lo_u, hi_u = lo.astimezone(UTC), hi.astimezone(UTC)
        span = (hi_u - lo_u).total_seconds()
        bars = []
        for s in segments:
            a, b = max(s.start.astimezone(UTC), lo_u), min(s.end.astimezone(UTC), hi_u)
            if b <= a:
                continue
            state = str(s.state)
            source = s.source if isinstance(s, TimelineSegment) else s.reason
            bars.append({
                "left": round((a - lo_u).total_seconds() / span * 100, 3),
                "width": round((b - a).total_seconds() / span * 100, 3),
                "state": state,
                "title": (f"{a.astimezone(zone):%a %H:%M}–{b.astimezone(zone):%H:%M}: "
                          f"{state} ({source})"),
            })
        now_left = None
        if lo_u <= start.astimezone(UTC) < hi_u:
            now_left = round((start.astimezone(UTC) - lo_u).total_seconds() / span * 100, 3)
        if bars:
            rows.append({"label": f"{lo:%a %d %b}", "bars": bars, "now": now_left})
    return rows[:days + 1]


def transitions_of(schedule: Schedule, at: datetime, n: int = 10) -> list[dict[str, str]]:
    out = []
    t = at
    zone = schedule.zone
    for _ in range(n):
        nxt = next_transition(schedule, t)
        if nxt is None:
            break
        out.append({"at": nxt.at.isoformat(),
                    "local": f"{nxt.at.astimezone(zone):%a %Y-%m-%d %H:%M %Z}",
                    "state": str(nxt.state), "reason": nxt.reason})
        t = nxt.at
    return out


# --------------------------------------------------------------------------- pages

@router.get("/schedules")
def schedules_page(request: Request, _: Viewer) -> Response:
    summaries = ScheduleBoard(ctx_of(request)).summaries()
    return render(request, "schedules.html", {"rows": summaries})


@router.get("/schedules/conflicts")
def conflicts_page(request: Request, _: Viewer) -> Response:
    conflicts = ScheduleBoard(ctx_of(request)).conflicts()
    return render(request, "conflicts.html", {"conflicts": conflicts})


@router.get("/schedules/new")
def new_schedule(request: Request, session: Operator, recommendation: str = "") -> Response:
    ctx = ctx_of(request)
    data: dict[str, Any] = {"name": "", "timezone": ctx.settings.default_timezone,
                            "periods": [{"begintime": "08:00", "endtime": "19:00",
                                         "weekdays": "mon-fri"}]}
    rec = None
    if recommendation:
        rec = _recommendation(request, recommendation)
        data = rec["definition"]
    return _editor(request, data, priority=0, view=None, rec=rec)


@router.get("/schedules/{ref}/edit")
def edit_schedule(request: Request, ref: str, session: Operator) -> Response:
    view = ScheduleService(ctx_of(request)).get(ref)
    return _editor(request, schedule_document(view.schedule), priority=view.priority, view=view)


def _recommendation(request: Request, rec_id: str) -> dict[str, Any]:
    """A recommendation's schedule as an editor draft, and its instance."""
    from snoozeql.domain.validation import suggest_dns_label

    key, body = RecommendationService(ctx_of(request)).stored(rec_id)
    sched = body.get("schedule") or {}
    definition: dict[str, Any] = {
        "name": suggest_dns_label(f"recommended-{body['instance_name']}"),
        "timezone": sched.get("timezone") or body.get("timezone") or "UTC",
        "description": f"from recommendation {key}",
        "periods": sched.get("periods") or [],
    }
    if body.get("kind") not in (None, "sleep"):
        definition["periods"] = []
        definition["override_status"] = "stopped"
    return {"id": str(key), "instance_id": body["instance_id"],
            "instance_name": body["instance_name"], "definition": definition}


def _editor(request: Request, data: dict[str, Any], *, priority: int,
            view: Any, rec: dict[str, Any] | None = None, error: str | None = None,
            form: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    periods = data.get("periods") or []
    try:
        grid, grid_reason = grid_from_periods(periods)
    except SnoozeError as exc:
        grid, grid_reason = None, exc.message
    mode = "cron" if data.get("start_cron") else ("grid" if grid is not None else "text")
    holidays = "\n".join(
        (e if isinstance(e, str) else
         e["date"] + (" running" if e.get("state") == "running" else "")
         + (f" {e['description']}" if e.get("description") else ""))
        for e in data.get("exceptions") or [])
    values = {
        "name": data.get("name", ""), "timezone": data.get("timezone", "UTC"),
        "description": data.get("description") or "", "priority": priority,
        "enforced": bool(data.get("enforced")), "dry_run": bool(data.get("dry_run")),
        "override_status": data.get("override_status") or "",
        "mode": mode, "periods_text": format_periods_text(periods),
        "grid": "".join("1" if c else "0" for day in (grid or [[False] * 24] * 7)
                        for c in day),
        "start_cron": data.get("start_cron") or "0 7 * * 1-5",
        "stop_cron": data.get("stop_cron") or "0 19 * * 1-5",
        "holidays": holidays, "selector": "",
    }
    values.update(form or {})
    return render(request, "schedule_edit.html", {
        "v": values, "view": view, "rec": rec, "error": error, "zones": zones(),
        "grid_reason": grid_reason, "days": DAY_NAMES,
        "facets": ScheduleBoard(ctx_of(request)).facets(),
    }, status_code=status_code)


@router.get("/schedules/{ref}")
def schedule_page(request: Request, ref: str, session: Viewer, offset: int = 0) -> Response:
    ctx = ctx_of(request)
    svc = ScheduleService(ctx)
    view = svc.get(ref)
    now = ctx.now()
    _, segments = svc.preview(view.id, days=TIMELINE_DAYS)
    rows = day_rows(segments, view.schedule.zone, now)
    offset = max(0, offset)
    board = ScheduleBoard(ctx)
    matched, page = board.matches_detail(view.id, offset, MATCH_PAGE)
    conflicts = [c for c in board.conflicts() if view.id in (c.a_id, c.b_id)]
    # the instances of this page whose week differs from the schedule's: an override
    # or other schedules; their own timelines (at most DIFFER_SHOWN)
    differ: list[dict[str, Any]] = []
    for d in page:
        if (d.override is not None or d.others) and len(differ) < DIFFER_SHOWN:
            inst, segs, _, gov = board.instance_timeline(str(d.match.instance.id),
                                                         TIMELINE_DAYS)
            differ.append({"instance": inst, "rows": day_rows(segs, view.schedule.zone, now),
                           "detail": d})
    return render(request, "schedule.html", {
        "view": view, "s": view.schedule, "rows": rows, "matches": page,
        "matched": matched, "offset": offset, "page_size": MATCH_PAGE,
        "assignments": svc.assignments(view.id), "conflicts": conflicts, "differ": differ,
        "transitions": transitions_of(view.schedule, now),
        "periods_text": format_periods_text(view.schedule.periods),
    })


@router.get("/instances/{instance}/timeline")
def instance_timeline(request: Request, instance: str, _: Viewer) -> Response:
    ctx = ctx_of(request)
    inst, segments, conflicts, gov = ScheduleBoard(ctx).instance_timeline(instance,
                                                                          TIMELINE_DAYS)
    zone = gov.schedule.zone if gov else load_zone(ctx.settings.default_timezone)
    from snoozeql.services.schedules import OverrideService

    override = OverrideService(ctx).get(str(inst.id))
    if override is not None and override.until <= ctx.now():
        override = None
    return render(request, "instance_timeline.html", {
        "i": inst, "rows": day_rows(segments, zone, ctx.now()), "conflicts": conflicts,
        "gov": gov, "zone": zone.key, "override": override,
    })


# --------------------------------------------------------------------------- live checks

def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except json.JSONDecodeError:
        raise ValidationError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object")
    return data


def _grid_of(text: object) -> list[list[bool]]:
    if not isinstance(text, str) or len(text) != 168 or set(text) - {"0", "1"}:
        raise ValidationError("grid: expected 168 cells of 0 or 1")
    return [[text[d * 24 + h] == "1" for h in range(24)] for d in range(7)]


def check_draft(data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The editor's draft checked as saving would: periods (from the grid or the
    text) or the cron pair, the next 10 transitions; errors with their position."""
    mode = data.get("mode", "text")
    out: dict[str, Any] = {"ok": True, "mode": mode}
    tz = str(data.get("timezone") or "UTC")
    try:
        load_zone(tz)
    except ValidationError as exc:
        return {"ok": False, "mode": mode, "field": "timezone", "error": {"message": exc.message}}
    definition: dict[str, Any] = {"name": "draft", "timezone": tz}
    if data.get("override_status") in ("running", "stopped"):
        definition["override_status"] = data["override_status"]
    if mode == "cron":
        definition["start_cron"] = str(data.get("start_cron") or "")
        definition["stop_cron"] = str(data.get("stop_cron") or "")
        field = "cron"
    else:
        if mode == "grid":
            periods: list[dict[str, str]] = periods_from_grid(_grid_of(data.get("grid")))
        else:
            periods, err = parse_periods_text(str(data.get("periods_text") or ""))
            if err is not None:
                return {"ok": False, "mode": mode, "field": "periods_text",
                        "error": asdict(err)}
        out["periods"] = periods
        out["periods_text"] = format_periods_text(periods)
        grid, reason = grid_from_periods(periods)
        out["grid"] = None if grid is None else "".join(
            "1" if c else "0" for day in grid for c in day)
        out["grid_reason"] = reason
        definition["periods"] = periods
        field = "periods_text" if mode == "text" else "grid"
    try:
        schedule = Schedule.from_dict(definition)
    except ValidationError as exc:
        msg = exc.message
        if msg.startswith("periods: a schedule needs"):
            msg = ("nothing runs: paint at least one running hour or write a period, or "
                   "set 'Force state' to stopped")
        err_field = ("start_cron" if msg.startswith("start_cron") else "stop_cron"
                     if msg.startswith("stop_cron") else field)
        return {**out, "ok": False, "field": err_field, "error": {"message": msg}}
    out["transitions"] = transitions_of(schedule, now)
    return out


@router.post("/schedules/check", dependencies=[Depends(csrf_protect)])
async def check(request: Request, _: Viewer) -> Response:
    data = _json_body(await request.body())
    return JSONResponse(check_draft(data, ctx_of(request).now()))


def selector_error(message: str) -> dict[str, Any]:
    """A selector refusal split into the node's path and the regex position."""
    m = _SEL_ERROR.match(message)
    pos = _SEL_POS.search(message)
    return {"message": message, "path": m.group("path") if m else None,
            "position": int(pos.group(1)) if pos else None}


@router.post("/schedules/selector-preview", dependencies=[Depends(csrf_protect)])
async def selector_preview(request: Request, _: Viewer) -> Response:
    """What the selector matches now, with the rules of ``POST
    /api/v1/schedules/preview`` (``ScheduleBoard.preview_selector``): the count, and
    the first 50 by name."""
    data = _json_body(await request.body())
    try:
        count, shown = ScheduleBoard(ctx_of(request)).preview_selector(
            data.get("selector"), PREVIEW_SHOWN)
    except ValidationError as exc:
        return JSONResponse({"ok": False, "error": selector_error(exc.message)})
    return JSONResponse({"ok": True, "count": count, "shown": len(shown),
                         "instances": [MatchOut.of(m).model_dump(mode="json")
                                       for m in shown]})


# --------------------------------------------------------------------------- save

def _holidays(text: str) -> list[Any]:
    out: list[Any] = []
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split(None, 2)
        if not parts:
            continue
        day = parts[0]
        state = "stopped"
        rest = parts[1:]
        if rest and rest[0].lower() in ("running", "stopped"):
            state = rest.pop(0).lower()
        desc = " ".join(rest) or None
        item: dict[str, Any] = {"date": day, "state": state}
        if desc:
            item["description"] = desc
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            raise ValidationError(f"holidays, line {n}: {day!r} is not a date with its year "
                                  "(YYYY-MM-DD)")
        out.append(item)
    return out


@router.post("/schedules/save", dependencies=[Depends(csrf_protect)])
def save(
    request: Request, session: Operator,
    name: Annotated[str, Form()] = "", timezone: Annotated[str, Form()] = "UTC",
    description: Annotated[str, Form()] = "", priority: Annotated[str, Form()] = "0",
    enforcement: Annotated[str, Form()] = "edge", dry_run: Annotated[str, Form()] = "",
    override_status: Annotated[str, Form()] = "", mode: Annotated[str, Form()] = "text",
    periods_text: Annotated[str, Form()] = "", grid: Annotated[str, Form()] = "",
    start_cron: Annotated[str, Form()] = "", stop_cron: Annotated[str, Form()] = "",
    holidays: Annotated[str, Form()] = "", selector: Annotated[str, Form()] = "",
    schedule_id: Annotated[str, Form()] = "", recommendation: Annotated[str, Form()] = "",
) -> Response:
    ctx = ctx_of(request)
    svc = ScheduleService(ctx)
    form = {"name": name, "timezone": timezone, "description": description,
            "priority": priority, "enforced": enforcement == "enforced",
            "dry_run": bool(dry_run), "override_status": override_status, "mode": mode,
            "periods_text": periods_text, "grid": grid, "start_cron": start_cron,
            "stop_cron": stop_cron, "holidays": holidays, "selector": selector}
    view = svc.get(schedule_id) if schedule_id else None
    rec = _recommendation(request, recommendation) if recommendation else None
    try:
        try:
            prio = int(priority.strip() or "0")
        except ValueError:
            raise ValidationError(f"priority: {priority!r} is not a whole number") from None
        definition: dict[str, Any] = {
            "name": name, "timezone": timezone.strip(),
            "description": description.strip() or None, "priority": prio,
            "enforced": enforcement == "enforced", "dry_run": bool(dry_run),
            "override_status": override_status if override_status in ("running", "stopped")
            else None,
            "exceptions": _holidays(holidays),
        }
        if mode == "cron":
            definition.update(periods=[], start_cron=start_cron.strip(),
                              stop_cron=stop_cron.strip())
        else:
            if mode == "grid":
                periods: list[dict[str, str]] = periods_from_grid(_grid_of(grid))
            else:
                periods, err = parse_periods_text(periods_text)
                if err is not None:
                    raise ValidationError(f"periods, line {err.line}, column {err.column}: "
                                          f"{err.message}")
            definition.update(periods=periods, start_cron=None, stop_cron=None)
            if not periods and definition["override_status"] is None:
                raise ValidationError(
                    "nothing runs: paint at least one running hour or write a period, or "
                    "set 'Force state' to stopped")
        sel = json.loads(selector) if selector.strip() else None
        if sel is not None:
            sel = selector_document(parse_selector(sel))  # a bad selector fails before any write
        if view is not None:
            Schedule.from_dict({k: v for k, v in definition.items() if k != "priority"})
            known = [a.selector for a in svc.assignments(view.id) if a.kind == "selector"]
            saved = svc.update(view.id, definition, replace=True, actor=session.key_name)
            if sel is not None and sel not in known:
                svc.assign(saved.id, selector=sel, actor=session.key_name)
        else:
            saved, _ = svc.create_and_assign(
                definition, instances=[rec["instance_id"]] if rec else [],
                selectors=[sel] if sel is not None else [], actor=session.key_name)
    except json.JSONDecodeError:
        return _editor(request, {}, priority=0, view=view, rec=rec, form=form,
                       error="selector: not JSON", status_code=400)
    except SnoozeError as exc:
        return _editor(request, {}, priority=0, view=view, rec=rec, form=form,
                       error=exc.message, status_code=exc.http_status)
    return RedirectResponse(f"/schedules/{saved.id}?saved=1", status_code=303)


@router.post("/schedules/{ref}/delete", dependencies=[Depends(csrf_protect)])
def delete(request: Request, ref: str, session: Operator) -> Response:
    ScheduleService(ctx_of(request)).delete(ref, actor=session.key_name)
    return RedirectResponse("/schedules?deleted=1", status_code=303)


@router.post("/schedules/{ref}/unassign", dependencies=[Depends(csrf_protect)])
def unassign(request: Request, ref: str, session: Operator,
             assignment: Annotated[str, Form()]) -> Response:
    svc = ScheduleService(ctx_of(request))
    found = next((a for a in svc.assignments(ref) if str(a.id) == assignment), None)
    if found is None:
        raise ValidationError("that assignment no longer exists; reload the page")
    kw: dict[str, Any] = {}
    if found.kind == "selector":
        kw["selector"] = found.selector
    elif found.kind == "instance":
        kw["instance"] = found.target.removeprefix("instance:")
    elif found.kind == "account":
        kw["account"] = found.target.removeprefix("account:")
    else:
        kw["tag"] = found.target.removeprefix("tag:")
    svc.unassign(ref, actor=session.key_name, **kw)
    return RedirectResponse(f"/schedules/{found.schedule_id}", status_code=303)


@router.post("/schedules/{ref}/assign", dependencies=[Depends(csrf_protect)])
def assign(request: Request, ref: str, session: Operator,
           instance: Annotated[str, Form()] = "", tag: Annotated[str, Form()] = "") -> Response:
    svc = ScheduleService(ctx_of(request))
    if instance.strip():
        inst = InventoryService(ctx_of(request)).get(instance.strip())
        made = svc.assign(ref, instance=str(inst.id), actor=session.key_name)
    else:
        made = svc.assign(ref, tag=tag.strip(), actor=session.key_name)
    return RedirectResponse(f"/schedules/{made.schedule_id}", status_code=303)
