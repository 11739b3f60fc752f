"""Activity log (start/stop/... per instance) and audit trail (who changed which
object): filterable, paged newest first (``until`` = the last row shown), CSV download."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.types import ActionResult, LifecycleAction
from snoozeql.domain.validation import iso_instant
from snoozeql.services.actions import ActionLogService
from snoozeql.services.audit import KINDS, AuditService
from snoozeql.store.actions import ActionRecord
from snoozeql.web.core import Viewer, WebRoute, ctx_of, render

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE = 100
CSV_MAX = 1000


def _blank(v: str | None) -> str | None:
    return v.strip() if v and v.strip() else None


def _instant(text: str | None, name: str) -> datetime | None:
    return iso_instant(text, name, naive_is_utc=True) if text else None


def _csv_response(body: str, filename: str) -> Response:
    return Response(body, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _activity_csv(records: list[ActionRecord]) -> str:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["at", "finished_at", "instance", "provider", "action", "result", "actor",
                  "reason", "error"])
    for r in records:
        out.writerow([r.at.isoformat(), r.finished_at.isoformat() if r.finished_at else "",
                      r.instance_name or "", r.provider or "", r.action, r.result, r.actor,
                      r.reason, r.error or ""])
    return buf.getvalue()


@router.get("/activity")
def activity_page(
    request: Request, _: Viewer, instance: str | None = None, action: str | None = None,
    result: str | None = None, actor: str | None = None, since: str | None = None,
    until: str | None = None, format: str = "html",  # noqa: A002
) -> Response:
    if format not in ("html", "csv"):
        raise ValidationError("format: use html or csv")
    for field, value, allowed in (("action", action, [a.value for a in LifecycleAction]),
                                  ("result", result, [r.value for r in ActionResult])):
        if _blank(value) and _blank(value) not in allowed:
            raise ValidationError(f"{field}: {value!r} is not one of {', '.join(allowed)}")
    params: dict[str, Any] = {"instance": _blank(instance), "action": _blank(action),
                              "result": _blank(result), "actor": _blank(actor),
                              "since": _blank(since), "until": _blank(until)}
    limit = CSV_MAX if format == "csv" else PAGE
    records = ActionLogService(ctx_of(request)).list(
        instance=params["instance"], action=params["action"], result=params["result"],
        actor=params["actor"], since=_instant(params["since"], "since"),
        until=_instant(params["until"], "until"), limit=limit)
    if format == "csv":
        return _csv_response(_activity_csv(records), "activity.csv")
    return render(request, "activity.html", {
        "records": records, "params": params, "older": records[-1].at.isoformat()
        if len(records) == PAGE else None,
        "actions": [a.value for a in LifecycleAction], "results": [r.value for r in ActionResult],
    })


@router.get("/audit")
def audit_page(
    request: Request, _: Viewer, kind: str | None = None, object: str | None = None,  # noqa: A002
    actor: str | None = None, since: str | None = None, until: str | None = None,
    format: str = "html",  # noqa: A002
) -> Response:
    if format not in ("html", "csv"):
        raise ValidationError("format: use html or csv")
    params: dict[str, Any] = {"kind": _blank(kind), "object": _blank(object),
                              "actor": _blank(actor), "since": _blank(since),
                              "until": _blank(until)}
    svc = AuditService(ctx_of(request))
    records = svc.list(kind=params["kind"], obj=params["object"], actor=params["actor"],
                       since=params["since"], until=params["until"],
                       limit=10000 if format == "csv" else PAGE)
    if format == "csv":
        return _csv_response(svc.to_csv(records), "audit.csv")
    return render(request, "audit.html", {
        "records": records, "params": params, "kinds": list(KINDS),
        "older": records[-1].at.isoformat() if len(records) == PAGE else None,
    })
