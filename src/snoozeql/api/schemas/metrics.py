"""Request and response bodies of the metrics, activity and recommendations routes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from snoozeql.domain.analysis import WEEKDAY_NAMES

if TYPE_CHECKING:
    from snoozeql.domain.analysis import ActivityProfile
    from snoozeql.domain.types import Instance
    from snoozeql.services.metrics import BackfillReport
    from snoozeql.services.recommendations import AppliedRecommendation


class SampleIn(BaseModel):
    """One measured value. ``ts`` must carry a time zone (or end in Z)."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(description="cpu, connections, read_iops or write_iops")
    ts: datetime
    value: float = Field(ge=0, allow_inf_nan=False)


class SamplesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    samples: list[SampleIn] = Field(min_length=1, max_length=10_000)


class BackfillIn(BaseModel):
    """Which account's history to read, and how far back."""

    model_config = ConfigDict(extra="forbid")

    account: str = Field(min_length=1, max_length=63, pattern=r"^[^\x00-\x1f\x7f]+$",
                         description="account id or name ('local': nothing to read)")
    days: int = Field(14, ge=1, le=63, description=(
        "days back from the current hour, 1-63 (CloudWatch keeps 5-minute data 63 days); "
        "cut to the metrics retention"))


class BackfillOut(BaseModel):
    account: str
    provider: str
    days: int
    start: datetime
    end: datetime
    instances: int
    api_calls: int
    samples: int = Field(description="hourly values read from the provider")
    hours_written: int = Field(description="stored hours that gained minutes")
    errors: list[str] = Field(description="per region or project; empty when all read")
    note: str | None = None

    @classmethod
    def of(cls, r: BackfillReport) -> BackfillOut:
        return cls(account=r.account, provider=r.provider, days=r.days, start=r.start,
                   end=r.end, instances=r.instances, api_calls=r.api_calls,
                   samples=r.hours_read, hours_written=r.hours_written,
                   errors=list(r.errors), note=r.note)


class PushOut(BaseModel):
    accepted: int
    buckets_changed: int
    ignored_too_old: int


class HourOut(BaseModel):
    hour: datetime
    avg: float
    min: float
    max: float
    count: int


class SeriesOut(BaseModel):
    metric: str
    unit: str
    points: list[HourOut]


class MetricsOut(BaseModel):
    instance_id: str
    instance_name: str
    start: datetime
    end: datetime
    series: list[SeriesOut]


class ActivityOut(BaseModel):
    instance_id: str
    instance_name: str
    timezone: str
    hours_observed: int
    weekdays: list[str]
    connections: list[list[float | None]]
    connections_max: list[list[float | None]]
    cpu: list[list[float | None]]
    hours: list[list[int]]
    samples: list[list[int]]

    @classmethod
    def of(cls, instance: Instance, profile: ActivityProfile, hours_observed: int
           ) -> ActivityOut:
        """Rows Monday..Sunday (``weekdays``), columns local hours."""
        return cls(instance_id=str(instance.id), instance_name=instance.name,
                   timezone=profile.timezone, hours_observed=hours_observed,
                   weekdays=list(WEEKDAY_NAMES),
                   connections=[list(r) for r in profile.connections],
                   connections_max=[list(r) for r in profile.connections_max],
                   cpu=[list(r) for r in profile.cpu], hours=[list(r) for r in profile.hours],
                   samples=[list(r) for r in profile.samples])


class SleepWindowOut(BaseModel):
    weekdays: str = Field(examples=["mon-fri"])
    begin: str = Field(examples=["19:30"])
    end: str = Field(examples=["24:00"])


class PeriodDraftOut(BaseModel):
    begintime: str
    endtime: str
    weekdays: str


class ScheduleDraftOut(BaseModel):
    """The running periods a schedule applied from the recommendation gets."""

    timezone: str
    periods: list[PeriodDraftOut]


class MarginsOut(BaseModel):
    before: int
    after: int


class RecommendationOut(BaseModel):
    """One instance's entry: a recommendation (``status`` open or dismissed), or, with
    ``status`` none, why there is none (``code``, ``reason``). The fields of the other
    kind are absent. Entries are kept as the analysis stored them."""

    model_config = ConfigDict(extra="allow")

    id: UUID | None = Field(description="the recommendation's id (null: none)")
    instance_id: UUID
    instance_name: str
    provider: str
    engine: str
    region: str | None
    status: str = Field(description="open, dismissed, or none")
    kind: str | None = Field(None, description="sleep or stop (null: none)")
    code: str | None = Field(None, description="status none: why, as a code")
    reason: str | None = Field(None, description="status none: why, in words")
    advice: str | None = None
    timezone: str | None = None
    windows: list[SleepWindowOut] | None = None
    spans: list[str] | None = None
    schedule: ScheduleDraftOut | None = None
    confidence: float | None = None
    sleep_hours_per_week: float | None = None
    monthly_savings_cents: int | None = None
    monthly_savings: float | None = Field(None, description="US dollars (null: cost unknown)")
    hours_observed: int | None = None
    weeks_observed: int | None = None
    margin_minutes: MarginsOut | None = None
    coverage: float | None = None
    background_connections: float | None = None
    pattern_changed_on: str | None = None
    notes: list[str] | None = None


class RecommendationPageOut(BaseModel):
    """A page of recommendations (largest savings first). Instances without one are
    counted in ``without_recommendation`` and listed only with ``include_without``."""

    items: list[RecommendationOut] = Field(
        description="recommendations (and, with include_without, instances without one "
                    "and the reason)")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")
    without_recommendation: int = Field(
        description="instances without a recommendation (lacking data, busy, protected)")
    dismissed: int = Field(description="dismissed recommendations (listed with "
                                       "include_dismissed)")


class AppliedOut(BaseModel):
    """The schedule made from a recommendation and assigned to its instance."""

    recommendation_id: UUID
    instance_id: UUID
    instance_name: str
    schedule_id: UUID
    schedule_name: str
    schedule: dict[str, Any] = Field(description="the schedule's definition (dict form)")

    @classmethod
    def of(cls, a: AppliedRecommendation) -> AppliedOut:
        return cls(recommendation_id=a.recommendation_id, instance_id=a.instance_id,
                   instance_name=a.instance_name, schedule_id=a.schedule_id,
                   schedule_name=a.schedule_name, schedule=a.definition)
