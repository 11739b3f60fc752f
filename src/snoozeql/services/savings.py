"""Savings: what stopping databases saved (realized) and will save (projected).

Realized savings come only from ``stop_intervals``, the stretches in which SnoozeQL's
reconciler had stopped an instance (opened when it stops one, closed when it starts it
or sees it running again): hours stopped within the asked window x the hourly cost
known at the stop x the node count. An instance whose cost is unknown counts its
hours but no money, and says so (``unpriced_hours``); nothing is invented.

Projected savings are per schedule: the hours per week the schedule wants stopped
(from the evaluator, over the coming week) x the hourly cost of every instance it
currently governs, scaled to an average month (365.25 / 12 / 7 weeks).

The hourly cost used for realized savings is the one stored on the interval when the
stop began, never the instance's current one: resizing an instance later does not
rewrite what past stops saved. :meth:`SavingsService.export_csv` exports the intervals
(one row each, clipped to the window) with that stored rate.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from uuid import UUID

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.schedules import DesiredState, preview
from snoozeql.domain.validation import iso_instant
from snoozeql.services.context import Context
from snoozeql.services.schedules import ScheduleService
from snoozeql.store import accounts as account_store
from snoozeql.store import instances as instance_store
from snoozeql.store import schedules as store
from snoozeql.store import versions

__all__ = [
    "CSV_COLUMNS", "GROUPS", "DailyRow", "ProjectedRow", "RealizedRow", "SavingsReport",
    "SavingsService",
]

CSV_COLUMNS = (
    "instance_id", "instance", "account", "schedule", "stopped_at", "started_at",
    "hours_in_window", "hourly_cost_usd", "node_count", "saved_usd",
)

GROUPS = ("instance", "account", "schedule")
WEEKS_PER_MONTH = Decimal("365.25") / 12 / 7
_HOUR = Decimal(3600)
_FLEET_COSTS = "savings.fleet_costs"


@dataclass
class RealizedRow:
    key: str
    name: str
    stopped_hours: Decimal = Decimal(0)
    saved_cents: Decimal = Decimal(0)
    unpriced_hours: Decimal = Decimal(0)

@dataclass
class ProjectedRow:
    schedule_id: UUID
    schedule: str
    instances: int
    stopped_hours_per_week: Decimal
    hourly_cost_cents: Decimal
    unpriced_instances: int

    @property
    def monthly_cents(self) -> Decimal:
        return self.stopped_hours_per_week * WEEKS_PER_MONTH * self.hourly_cost_cents

@dataclass
class SavingsReport:
    start: datetime
    end: datetime
    group_by: str
    realized: list[RealizedRow] = field(default_factory=list)
    projected: list[ProjectedRow] = field(default_factory=list)

    @property
    def realized_total_cents(self) -> Decimal:
        return sum((r.saved_cents for r in self.realized), Decimal(0))

    @property
    def projected_total_cents(self) -> Decimal:
        return sum((p.monthly_cents for p in self.projected), Decimal(0))

@dataclass
class DailyRow:
    """One UTC day of a window: what stopping saved, and what the fleet of today would
    have cost running all of that day's hours (clipped to the window and to now)."""

    day: date
    hours: Decimal
    always_on_cents: Decimal
    saved_cents: Decimal = Decimal(0)
    stopped_hours: Decimal = Decimal(0)
    unpriced_hours: Decimal = Decimal(0)

    @property
    def cost_cents(self) -> Decimal:
        """What it cost: always-on minus what stopping saved."""
        return self.always_on_cents - self.saved_cents


def _aware(value: datetime | str | None, what: str) -> datetime | None:
    return None if value in (None, "") else iso_instant(value, what)


class SavingsService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def report(self, *, start: datetime | str | None = None, end: datetime | str | None = None,
               group_by: str = "instance") -> SavingsReport:
        if group_by not in GROUPS:
            raise ValidationError(f"group_by: use one of {', '.join(GROUPS)}")
        now = self.ctx.now()
        e = _aware(end, "to") or now
        s = _aware(start, "from") or e - timedelta(days=30)
        if e <= s:
            raise ValidationError("to: must be after from")
        out = SavingsReport(s, e, group_by)
        out.realized = self._realized(s, e, now, group_by)
        out.projected = self.projected(now)
        return out

    def _window(self, start: datetime | str | None, end: datetime | str | None
                ) -> tuple[datetime, datetime, datetime]:
        now = self.ctx.now()
        e = _aware(end, "to") or now
        s = _aware(start, "from") or e - timedelta(days=30)
        if e <= s:
            raise ValidationError("to: must be after from")
        return s, e, now

    def export_csv(self, *, start: datetime | str | None = None,
                   end: datetime | str | None = None) -> str:
        """The stop intervals overlapping the window as CSV (header row first), each
        with the hourly rate stored when its stop began."""
        s, e, now = self._window(start, end)
        with self.ctx.engine.connect() as conn:
            intervals = store.intervals_overlapping(conn, s, min(e, now))
            accounts = {a.id: a.name for a in account_store.list_all(conn)}
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\n")
        out.writerow(CSV_COLUMNS)
        for iv in intervals:
            lo, hi = max(iv.stopped_at, s), min(iv.started_at or now, e, now)
            if hi <= lo:
                continue
            hours = Decimal((hi - lo).total_seconds()) / _HOUR
            rate = None if iv.hourly_cost_cents is None else Decimal(iv.hourly_cost_cents)
            saved = None if rate is None else hours * rate * iv.node_count / 100
            out.writerow([
                iv.instance_id, iv.instance_name,
                accounts.get(iv.account_id, "") if iv.account_id else "",
                iv.schedule_name or "", iv.stopped_at.isoformat(),
                iv.started_at.isoformat() if iv.started_at else "",
                f"{hours:.4f}", "" if rate is None else f"{rate / 100:.6f}", iv.node_count,
                "" if saved is None else f"{saved:.4f}",
            ])
        return buf.getvalue()

    def _realized(self, s: datetime, e: datetime, now: datetime, group_by: str
                  ) -> list[RealizedRow]:
        with self.ctx.engine.connect() as conn:
            intervals = store.intervals_overlapping(conn, s, min(e, now))
            accounts = {a.id: a.name for a in account_store.list_all(conn)}
        rows: dict[str, RealizedRow] = {}
        for iv in intervals:
            lo = max(iv.stopped_at, s)
            hi = min(iv.started_at or now, e, now)
            if hi <= lo:
                continue
            hours = Decimal((hi - lo).total_seconds()) / _HOUR
            if group_by == "instance":
                key, name = str(iv.instance_id), iv.instance_name
            elif group_by == "account":
                key = str(iv.account_id) if iv.account_id else "-"
                name = accounts.get(iv.account_id, "(no account)") if iv.account_id else (
                    "(no account)")
            else:
                name = iv.schedule_name or "(override)"
                key = str(iv.schedule_id) if iv.schedule_id else name
            row = rows.setdefault(key, RealizedRow(key, name))
            row.stopped_hours += hours
            if iv.hourly_cost_cents is None:
                row.unpriced_hours += hours
            else:
                row.saved_cents += hours * Decimal(iv.hourly_cost_cents) * iv.node_count
        return sorted(rows.values(), key=lambda r: (-r.saved_cents, r.name))

    def projected(self, now: datetime | None = None) -> list[ProjectedRow]:
        now = now or self.ctx.now()
        governed, _ = self._fleet_costs()
        out: list[ProjectedRow] = []
        for view in ScheduleService(self.ctx).list():
            week = preview(view.schedule, now, now + timedelta(days=7))
            stopped = sum(
                ((seg.end - seg.start).total_seconds() for seg in week
                 if seg.state is DesiredState.STOPPED), 0.0,
            )
            count, unpriced, cost = governed.get(view.id, (0, 0, Decimal(0)))
            out.append(ProjectedRow(view.id, view.name, count, Decimal(stopped) / _HOUR, cost,
                                    unpriced))
        return sorted(out, key=lambda p: (-p.monthly_cents, p.schedule))

    def _fleet_costs(self) -> tuple[dict[UUID, tuple[int, int, Decimal]], tuple[Decimal, int]]:
        """Per governing schedule (instances, unpriced instances, summed hourly cost x
        nodes), and the whole fleet's (hourly cost, unpriced instances); cluster members
        count through their cluster. One read of the fleet, kept in the process while
        the inventory's data version and the stored schedules and assignments are the
        same (nothing here depends on the time)."""
        with self.ctx.engine.connect() as conn:
            version = versions.read(conn).get(versions.INSTANCES, 0)
            state = hashlib.sha256(repr((
                [(r.id, r.updated_at, r.priority) for r in store.list_schedules(conn)],
                [(a.id, a.schedule_id) for a in store.list_assignments(conn)],
            )).encode()).hexdigest()
            kept = self.ctx.memo.get(_FLEET_COSTS)
            if kept is not None and kept[0] == (version, state):
                return kept[1], kept[2]
            instances = list(instance_store.iter_all(
                conn, instance_store.InstanceFilter(missing=False)))
        governing = ScheduleService(self.ctx).governing(instances)
        clusters = {i.provider_id for i in instances if i.kind.value == "cluster"}
        governed: dict[UUID, tuple[int, int, Decimal]] = {}
        total, unpriced_all = Decimal(0), 0
        for inst in instances:
            if inst.kind.value == "instance" and inst.cluster_provider_id in clusters:
                continue  # counted through its cluster
            cost = (None if inst.hourly_cost_cents is None
                    else Decimal(inst.hourly_cost_cents) * inst.node_count)
            if cost is None:
                unpriced_all += 1
            else:
                total += cost
            gov = governing.get(inst.id)
            if gov is None:
                continue
            count, unpriced, summed = governed.get(gov.schedule_id, (0, 0, Decimal(0)))
            governed[gov.schedule_id] = (count + 1, unpriced + (cost is None),
                                         summed + (cost or 0))
        self.ctx.memo[_FLEET_COSTS] = ((version, state), governed, (total, unpriced_all))
        return governed, (total, unpriced_all)

    def always_on_hourly_cents(self) -> tuple[Decimal, int]:
        """What the current fleet costs per hour with everything running (hourly cost x
        nodes; cluster members counted through their cluster, as in projections), and
        how many instances have no known cost."""
        return self._fleet_costs()[1]

    def daily(self, *, start: datetime | str | None = None,
              end: datetime | str | None = None,
              always_on_hourly_cents: Decimal | None = None) -> list[DailyRow]:
        """The window cut into UTC days: realized savings per day (the stop intervals
        as in :meth:`report`, so the days add up to its total) and the always-on cost of
        each day's hours at the current fleet's rates."""
        s, e, now = self._window(start, end)
        if always_on_hourly_cents is None:
            always_on_hourly_cents, _ = self.always_on_hourly_cents()
        stop = min(e, now)
        rows: list[DailyRow] = []
        day = s.astimezone(UTC).date()
        while True:
            lo = max(s, datetime.combine(day, time(), tzinfo=UTC))
            hi = min(e, datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC))
            if lo >= e:
                break
            hours = Decimal(max(0.0, (min(hi, now) - lo).total_seconds())) / _HOUR
            rows.append(DailyRow(day, hours, hours * always_on_hourly_cents))
            day += timedelta(days=1)
        if not rows or stop <= s:
            return rows
        first = rows[0].day
        with self.ctx.engine.connect() as conn:
            intervals = store.intervals_overlapping(conn, s, stop)
        for iv in intervals:
            lo = max(iv.stopped_at, s)
            hi = min(iv.started_at or now, e, now)
            while lo < hi:
                d = lo.astimezone(UTC).date()
                cut = min(hi, datetime.combine(d + timedelta(days=1), time(), tzinfo=UTC))
                hours = Decimal((cut - lo).total_seconds()) / _HOUR
                row = rows[(d - first).days]
                row.stopped_hours += hours
                if iv.hourly_cost_cents is None:
                    row.unpriced_hours += hours
                else:
                    row.saved_cents += hours * Decimal(iv.hourly_cost_cents) * iv.node_count
                lo = cut
        return rows

    def realized(self, *, start: datetime | str | None = None,
                 end: datetime | str | None = None, group_by: str = "instance"
                 ) -> tuple[datetime, datetime, list[RealizedRow]]:
        """The window and its realized rows, as :meth:`report` gives them (without the
        projections)."""
        if group_by not in GROUPS:
            raise ValidationError(f"group_by: use one of {', '.join(GROUPS)}")
        s, e, now = self._window(start, end)
        return s, e, self._realized(s, e, now, group_by)
