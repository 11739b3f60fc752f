"""Request and response bodies of the metrics, activity and recommendations routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


RecommendationOut = dict[str, Any]


class RecommendationPageOut(BaseModel):
    """A page of recommendations (largest savings first). Instances without one are
    counted in ``without_recommendation`` and listed only with ``include_without``."""

    items: list[dict[str, Any]] = Field(
        description="recommendations (and, with include_without, instances without one "
                    "and the reason)")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")
    without_recommendation: int = Field(
        description="instances without a recommendation (lacking data, busy, protected)")
    dismissed: int = Field(description="dismissed recommendations (listed with "
                                       "include_dismissed)")

