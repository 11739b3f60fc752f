"""Savings: realized this month, projected per month, always-on cost; a daily series
of realized vs always-on cost over 7/30/90 days or a custom range; attribution by
instance, account and schedule; a CSV of what is shown. Every figure comes from
:class:`SavingsService`, the service behind ``snoozeql savings --json``."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from fastapi import APIRouter, Request, Response

from snoozeql.domain.errors import ValidationError
from snoozeql.services.savings import DailyRow, RealizedRow, SavingsService
from snoozeql.web.core import Viewer, WebRoute, ctx_of, query_url, render

router = APIRouter(route_class=WebRoute, include_in_schema=False)

RANGES = {"7d": 7, "30d": 30, "90d": 90}
HOURS_PER_MONTH = Decimal("365.25") * 24 / 12
SHOWN = 20


@dataclass
class _View:
    params: dict[str, str]
    start: datetime
    end: datetime
    days: list[DailyRow]
    groups: dict[str, list[RealizedRow]]
    always_on_hourly: Decimal
    unpriced: int


def _day(text: str, what: str) -> datetime:
    raw = text.strip()
    try:
        if "T" in raw:
            value = datetime.fromisoformat(raw)
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        return datetime.combine(date.fromisoformat(raw), time(), tzinfo=UTC)
    except ValueError:
        raise ValidationError(f"{what}: {text!r} is not a date (YYYY-MM-DD)") from None


def _window(now: datetime, range_: str, from_: str, to: str
            ) -> tuple[datetime, datetime, dict[str, str]]:
    if range_ == "custom" or (from_ and range_ not in RANGES):
        if not from_:
            raise ValidationError("from: give the first day of the custom range")
        start = _day(from_, "from")
        end = now
        if to:
            end = _day(to, "to") + (timedelta() if "T" in to else timedelta(days=1))
        end = min(end, now)
        if end <= start:
            raise ValidationError("to: the range must end after it starts (and start "
                                  "before now)")
        return start, end, {"range": "custom", "from": from_, "to": to}
    days = RANGES.get(range_ or "30d")
    if days is None:
        raise ValidationError(f"range: use one of {', '.join(RANGES)} or custom")
    # whole UTC days: the last ``days`` days, today (so far) included
    today = datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)
    return today - timedelta(days=days - 1), now, {"range": range_ or "30d"}


def _view(request: Request, range_: str, from_: str, to: str) -> _View:
    ctx = ctx_of(request)
    svc = SavingsService(ctx)
    start, end, params = _window(ctx.now(), range_, from_, to)
    hourly, unpriced = svc.always_on_hourly_cents()
    days = svc.daily(start=start, end=end, always_on_hourly_cents=hourly)
    groups = {g: svc.realized(start=start, end=end, group_by=g)[2]
              for g in ("instance", "account", "schedule")}
    return _View(params, start, end, days, groups, hourly, unpriced)


def _usd(cents: Decimal) -> float:
    return float(round(cents / 100, 2))


@router.get("/savings")
def savings_page(request: Request, _: Viewer, range: str = "30d",  # noqa: A002
                 to: str = "") -> Response:
    return _page(request, range, request.query_params.get("from", ""), to)


def _page(request: Request, range_: str, from_: str, to: str) -> Response:
    ctx = ctx_of(request)
    svc = SavingsService(ctx)
    v = _view(request, range_, from_, to)
    now = ctx.now()
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    month = svc.report(start=month_start, end=now, group_by="instance")
    projected = month.projected
    total = sum((r.saved_cents for r in v.groups["instance"]), Decimal(0))
    always_on = sum((d.always_on_cents for d in v.days), Decimal(0))
    chart = {
        "t": [int(datetime.combine(d.day, time(), tzinfo=UTC).timestamp()) for d in v.days],
        "always_on": [_usd(d.always_on_cents) for d in v.days],
        "cost": [_usd(d.cost_cents) for d in v.days],
    }
    return render(request, "savings.html", {
        "v": v, "month_start": month_start, "month_usd": _usd(month.realized_total_cents),
        "projected": projected, "projected_usd": _usd(month.projected_total_cents),
        "always_on_month_usd": _usd(v.always_on_hourly * HOURS_PER_MONTH),
        "window_usd": _usd(total), "window_always_on_usd": _usd(always_on),
        "window_cost_usd": _usd(always_on - total), "chart_json": json.dumps(chart),
        "shown": SHOWN, "csv_url": query_url("/savings.csv", v.params),
        "ranges": list(RANGES), "now": now,
    })


@router.get("/savings.csv")
def savings_csv(request: Request, _: Viewer, range: str = "30d",  # noqa: A002
                to: str = "") -> Response:
    v = _view(request, range, request.query_params.get("from", ""), to)
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["table", "key", "name", "day", "stopped_hours", "saved_usd",
                  "always_on_usd", "cost_usd", "unpriced_hours"])
    for d in v.days:
        out.writerow(["daily", "", "", d.day.isoformat(), f"{d.stopped_hours:.3f}",
                      f"{d.saved_cents / 100:.2f}", f"{d.always_on_cents / 100:.2f}",
                      f"{d.cost_cents / 100:.2f}", f"{d.unpriced_hours:.3f}"])
    for group, rows in v.groups.items():
        for r in rows:
            out.writerow([f"by_{group}", r.key, r.name, "", f"{r.stopped_hours:.3f}",
                          f"{r.saved_cents / 100:.2f}", "", "", f"{r.unpriced_hours:.3f}"])
    name = f"snoozeql-savings-{v.start:%Y%m%d}-{v.end:%Y%m%d}.csv"
    return Response(buf.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
