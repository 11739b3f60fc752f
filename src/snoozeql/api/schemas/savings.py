"""Response bodies of the savings route (``format=csv`` answers text, not these).

Money is in US dollars (cents / 100) and hours are rounded as the API has always
shown them; ``from`` and ``to`` are the window's instants in ISO form with their
offset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from snoozeql.services.savings import ProjectedRow, RealizedRow, SavingsReport

#: An instant as ``datetime.isoformat()`` writes it (``+00:00``, not ``Z``).
IsoInstant = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(), return_type=str)]


class RealizedOut(BaseModel):
    key: str = Field(description="the instance, account or schedule id ('' if none)")
    name: str
    stopped_hours: float
    saved_usd: float
    unpriced_hours: float = Field(description="hours stopped whose cost is unknown")

    @classmethod
    def of(cls, r: RealizedRow) -> RealizedOut:
        return cls(key=r.key, name=r.name, stopped_hours=float(round(r.stopped_hours, 3)),
                   saved_usd=float(round(r.saved_cents / 100, 2)),
                   unpriced_hours=float(round(r.unpriced_hours, 3)))


class ProjectedOut(BaseModel):
    schedule_id: UUID
    schedule: str
    instances: int = Field(description="instances the schedule governs now")
    stopped_hours_per_week: float
    hourly_cost_usd: float = Field(description="of every priced instance it governs")
    projected_monthly_usd: float
    unpriced_instances: int

    @classmethod
    def of(cls, p: ProjectedRow) -> ProjectedOut:
        return cls(schedule_id=p.schedule_id, schedule=p.schedule, instances=p.instances,
                   stopped_hours_per_week=float(round(p.stopped_hours_per_week, 2)),
                   hourly_cost_usd=float(round(p.hourly_cost_cents / 100, 4)),
                   projected_monthly_usd=float(round(p.monthly_cents / 100, 2)),
                   unpriced_instances=p.unpriced_instances)


class SavingsOut(BaseModel):
    """Realized savings in the window, grouped; projected monthly savings per schedule."""

    model_config = ConfigDict(serialize_by_alias=True)

    from_: IsoInstant = Field(alias="from")
    to: IsoInstant
    group_by: str = Field(description="instance, account or schedule")
    realized: list[RealizedOut]
    realized_total_usd: float
    projected: list[ProjectedOut]
    projected_monthly_total_usd: float

    @classmethod
    def of(cls, r: SavingsReport) -> SavingsOut:
        return cls.model_validate({
            "from": r.start, "to": r.end, "group_by": r.group_by,
            "realized": [RealizedOut.of(x) for x in r.realized],
            "realized_total_usd": float(round(r.realized_total_cents / 100, 2)),
            "projected": [ProjectedOut.of(p) for p in r.projected],
            "projected_monthly_total_usd": float(round(r.projected_total_cents / 100, 2)),
        })
