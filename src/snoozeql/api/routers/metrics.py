"""Metrics of one instance, its activity heatmap, and sleep recommendations."""

from __future__ import annotations

from fastapi import APIRouter, Query

from snoozeql.api.deps import CtxDep, Operator, Viewer
from snoozeql.api.schemas.metrics import (
    ActivityOut,
    AppliedOut,
    BackfillIn,
    BackfillOut,
    HourOut,
    MetricsOut,
    PushOut,
    RecommendationOut,
    RecommendationPageOut,
    SamplesIn,
    SeriesOut,
)
from snoozeql.domain.metrics import METRIC_UNITS, METRICS
from snoozeql.services.metrics import MetricsService
from snoozeql.services.recommendations import RecommendationService

router = APIRouter(tags=["metrics"])


@router.get("/instances/{instance}/metrics", response_model=MetricsOut)
def get_metrics(
    instance: str, ctx: CtxDep, _: Viewer,
    metric: str | None = Query(None, description="cpu, connections, read_iops, write_iops"),
    start: str | None = Query(None, description="ISO 8601 or a span back (3d); default 24h"),
    end: str | None = Query(None, description="ISO 8601 or a span back; default now"),
) -> MetricsOut:
    """The instance's hourly aggregates (avg, min, max, sample count) per metric."""
    found, s, e, rows = MetricsService(ctx).series(instance, metric, start, end)
    by_metric: dict[str, list[HourOut]] = {}
    for a in rows:
        by_metric.setdefault(a.metric, []).append(
            HourOut(hour=a.hour, avg=a.avg, min=a.min, max=a.max, count=a.count)
        )
    wanted = [metric] if metric else list(METRICS)
    return MetricsOut(
        instance_id=str(found.id), instance_name=found.name, start=s, end=e,
        series=[SeriesOut(metric=m, unit=METRIC_UNITS[m], points=by_metric.get(m, []))
                for m in wanted],
    )


@router.post("/instances/{instance}/metrics", response_model=PushOut, status_code=202)
def push_metrics(instance: str, body: SamplesIn, ctx: CtxDep, _: Operator) -> PushOut:
    """Samples from an outside source; aggregated exactly like collected ones.

    One value per instance, metric and minute counts (the first one wins), so posting
    the same samples twice changes nothing.
    """
    r = MetricsService(ctx).push(instance, [s.model_dump() for s in body.samples])
    return PushOut(
        accepted=r.accepted, buckets_changed=r.buckets_changed, ignored_too_old=r.ignored_too_old
    )


@router.post("/metrics/backfill", response_model=BackfillOut)
def backfill_metrics(body: BackfillIn, ctx: CtxDep, _: Operator) -> BackfillOut:
    """Read the metric history the provider keeps (CloudWatch, Cloud Monitoring) for one
    account's databases, at a 1-hour period, and store it like collected metrics.

    A region or project that fails is listed in ``errors`` (the others are stored);
    an unknown account is a 404. The request waits for the read (seconds for a
    thousand databases)."""
    report = MetricsService(ctx).backfill(body.account, body.days)
    return BackfillOut.of(report)


@router.get("/instances/{instance}/activity", response_model=ActivityOut)
def get_activity(instance: str, ctx: CtxDep, _: Viewer) -> ActivityOut:
    """A 7 x 24 profile (rows Monday..Sunday, local hours) for a heatmap."""
    found, profile, hours = MetricsService(ctx).activity(instance)
    return ActivityOut.of(found, profile, hours)


@router.get("/recommendations", response_model=RecommendationPageOut,
            response_model_exclude_unset=True)
def list_recommendations(
    ctx: CtxDep, _: Viewer,
    include_dismissed: bool = Query(False, description="also list dismissed ones"),
    include_without: bool = Query(
        False, description="also list the instances without a recommendation, and why"),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=2000,
                               description="next_cursor of the previous page"),
) -> RecommendationPageOut:
    """Recommendations, largest savings first: per instance, sleep windows as a schedule
    in its zone, confidence, hours asleep a week and monthly savings (null when the cost
    is unknown). Paged; instances without one are counted, and listed with the reason
    when ``include_without`` is set."""
    page = RecommendationService(ctx).page(
        limit=limit, cursor=cursor, include_dismissed=include_dismissed,
        include_without=include_without)
    return RecommendationPageOut(
        items=[RecommendationOut.model_validate(i) for i in page.items],
        next_cursor=page.next_cursor,
        without_recommendation=page.without_recommendation, dismissed=page.dismissed)


@router.post("/recommendations/{rec_id}/dismiss", response_model=RecommendationOut,
             response_model_exclude_unset=True)
def dismiss_recommendation(
    rec_id: str, ctx: CtxDep, key: Operator,
    reason: str | None = Query(None, max_length=255,
                               description="why it does not fit (kept in the audit trail)"),
) -> RecommendationOut:
    """Hide a recommendation until the analysis recommends something different."""
    return RecommendationOut.model_validate(
        RecommendationService(ctx).dismiss(rec_id, actor=key.name, reason=reason))


@router.post("/recommendations/{rec_id}/apply", response_model=AppliedOut, status_code=201)
def apply_recommendation(
    rec_id: str, ctx: CtxDep, key: Operator,
    name: str | None = Query(None, description="schedule name (default recommended-<instance>)"),
) -> AppliedOut:
    """Create the recommended schedule and assign it to the instance."""
    return AppliedOut.of(RecommendationService(ctx).apply(rec_id, actor=key.name, name=name))
