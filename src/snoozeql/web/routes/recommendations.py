"""Recommendation cards: suggested sleep windows, hours, savings, confidence; the
activity graph in a dialog; Apply (the schedule editor, pre-filled) and Dismiss
(with a reason). Paged by the service's cursor."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse

from snoozeql.domain.errors import SnoozeError, ValidationError
from snoozeql.domain.schedules.editing import running_cells
from snoozeql.services.metrics import MetricsService
from snoozeql.services.recommendations import RecommendationService
from snoozeql.web.core import (
    Operator,
    Viewer,
    WebRoute,
    csrf_protect,
    ctx_of,
    heat_level,
    render,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE = 12
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@router.get("/recommendations")
def recommendations_page(request: Request, _: Viewer, cursor: str | None = None,
                         limit: int = PAGE) -> Response:
    limit = max(1, min(limit, 100))
    page = RecommendationService(ctx_of(request)).page(
        limit=limit, cursor=cursor or None, include_without=True)
    return render(request, "recommendations.html", {
        "items": page.items, "next_cursor": page.next_cursor, "limit": limit,
        "without": page.without_recommendation, "dismissed": page.dismissed,
        "first_page": not cursor,
    })


@router.get("/recommendations/{rec_id}/activity")
def activity(request: Request, rec_id: str, session: Viewer) -> Response:
    """The dialog's body: the week x hour heatmap with the recommended sleep hours
    outlined, and the last 14 days of connections and CPU (drawn with uPlot)."""
    ctx = ctx_of(request)
    _, body = RecommendationService(ctx).stored(rec_id)
    metrics = MetricsService(ctx)
    heat_error = None
    try:
        _, profile, hours = metrics.activity(body["instance_id"])
    except SnoozeError as exc:
        profile, hours, heat_error = None, 0, exc.message
    rows = profile.connections if profile else ()
    top = max((v for r in rows for v in r if v is not None), default=0.0)
    periods = (body.get("schedule") or {}).get("periods") or []
    running = running_cells(periods) if body.get("kind") == "sleep" else [[False] * 24] * 7
    heat = [[(v, heat_level(v, top), not running[d][h]) for h, v in enumerate(r)]
            for d, r in enumerate(rows)]
    now = ctx.now()
    _, start, end, series = metrics.series(body["instance_id"], start=now - timedelta(days=14),
                                           end=now)
    chart: dict[str, list[Any]] = {"t": [], "connections": [], "cpu": []}
    by_hour: dict[int, dict[str, float | None]] = {}
    for a in series:
        if a.metric in ("connections", "cpu"):
            by_hour.setdefault(int(a.hour.timestamp()), {})[a.metric] = a.avg
    if by_hour:  # every hour of the span, so hours without data show as gaps
        for t in range(min(by_hour), max(by_hour) + 1, 3600):
            chart["t"].append(t)
            chart["connections"].append(by_hour.get(t, {}).get("connections"))
            chart["cpu"].append(by_hour.get(t, {}).get("cpu"))
    return render(request, "partials/rec_activity.html", {
        "r": body, "heat": heat, "heat_hours": hours, "heat_error": heat_error,
        "profile": profile, "days": DAY_NAMES, "chart_json": json.dumps(chart),
    })


@router.post("/recommendations/{rec_id}/dismiss", dependencies=[Depends(csrf_protect)])
def dismiss(request: Request, rec_id: str, session: Operator,
            reason: Annotated[str, Form()] = "", back: Annotated[str, Form()] = "") -> Response:
    if not reason.strip():
        raise ValidationError("reason: say why this recommendation does not fit "
                              "(it goes to the audit trail)")
    body = RecommendationService(ctx_of(request)).dismiss(rec_id, session.key_name,
                                                          reason=reason)
    target = back if back.startswith("/recommendations") else "/recommendations"
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}dismissed_name={body['instance_name']}",
                            status_code=303)
