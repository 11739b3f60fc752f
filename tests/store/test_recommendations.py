"""Recommendations over the inventory (both stores): windows in the instance's zone,
"stop it" for an idle database, no recommendation without enough data, dismissal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from snoozeql.domain.errors import NotFoundError, ValidationError
from snoozeql.domain.metrics import CONNECTIONS, CPU, Sample
from snoozeql.services.context import Context
from snoozeql.services.recommendations import RecommendationService
from snoozeql.store import instances as instance_store
from snoozeql.store import metrics as store
from tests.store.test_metrics_store import add_instances

NOW = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)  # a Monday
PARIS = ZoneInfo("Europe/Paris")


def office_hours(t: datetime) -> bool:
    local = t.astimezone(PARIS)
    return local.weekday() < 5 and 9 <= local.hour < 18


def seed(ctx: Context, instance_id, busy, hours: int = 14 * 24) -> None:  # noqa: ANN001
    start = NOW.replace(minute=0) - timedelta(hours=hours)
    samples = []
    for h in range(hours):
        t = start + timedelta(hours=h, minutes=7)
        on = busy(t)
        samples += [Sample(CONNECTIONS, t, 5.0 if on else 0.0), Sample(CPU, t, 40 if on else 2)]
    store.apply_samples(ctx.engine, {instance_id: samples})


def test_recommendations_for_the_fleet_and_dismissal(ctx: Context) -> None:
    ctx.clock = lambda: NOW
    office = add_instances(ctx, "office", tags={"timezone": "Europe/Paris"}, cost=50)
    idle = add_instances(ctx, "idle", cost=100)
    young = add_instances(ctx, "young")
    add_instances(ctx, "nodata")
    seed(ctx, office["office"], office_hours)
    seed(ctx, idle["idle"], lambda _t: False)
    seed(ctx, young["young"], lambda _t: False, hours=20)
    svc = RecommendationService(ctx)
    items = {r["instance_name"]: r for r in svc.list()}

    stop = items["idle"]
    assert stop["kind"] == "always_idle" and "stop it" in stop["advice"]
    assert stop["spans"] == []
    assert stop["sleep_hours_per_week"] == 168 and stop["schedule"]["periods"] == []
    # 168 h/week x 365.25/12/7 weeks x 100 cents.
    assert stop["monthly_savings_cents"] == 73050 and stop["monthly_savings"] == 730.5

    rec = items["office"]
    assert rec["kind"] == "sleep" and rec["timezone"] == "Europe/Paris"
    assert rec["status"] == "open" and 0 < rec["confidence"] <= 1
    # Awake on weekdays from half an hour before nine to half an hour after six, local.
    assert rec["schedule"]["periods"] == [
        {"begintime": "08:30", "endtime": "18:30", "weekdays": "mon-fri"}]
    assert rec["sleep_hours_per_week"] == 168 - 50
    assert rec["monthly_savings_cents"] == round(118 * 365.25 / 12 / 7 * 50)

    assert items["young"]["status"] == "none" and items["young"]["code"] == "not_enough_data"
    assert "20 hours observed" in items["young"]["reason"]
    assert items["nodata"]["reason"].startswith("not enough data: 0 hours")
    # Largest savings first, then the instances without a recommendation.
    assert [r["instance_name"] for r in svc.list()] == ["idle", "office", "nodata", "young"]

    # The same data gives the same ids; a dismissal hides it until it changes.
    assert {r["id"] for r in svc.list()} == {r["id"] for r in items.values()}
    svc.dismiss(rec["id"], actor="tester")
    assert "office" not in {r["instance_name"] for r in svc.list()}
    shown = {r["instance_name"]: r for r in svc.list(include_dismissed=True)}
    assert shown["office"]["status"] == "dismissed" and shown["office"]["id"] == rec["id"]
    with pytest.raises(NotFoundError):
        svc.dismiss("00000000-0000-0000-0000-000000000000", actor="tester")
    with pytest.raises(ValidationError):
        svc.dismiss("not-an-id", actor="tester")


def test_recurring_nightly_job_never_inside_a_window(ctx: Context) -> None:
    ctx.clock = lambda: NOW
    ids = add_instances(ctx, "batch")
    seed(ctx, ids["batch"], lambda t: t.hour == 2)  # a job every night at 02:00 UTC
    [rec] = RecommendationService(ctx).list()
    assert rec["kind"] == "sleep"
    assert rec["schedule"]["periods"] == [
        {"begintime": "01:30", "endtime": "03:30", "weekdays": "mon-sun"}]


def test_applying_a_recommendation_creates_and_assigns_its_schedule(ctx: Context) -> None:
    from snoozeql.domain.errors import ConflictError
    from snoozeql.domain.schedules import desired_state
    from snoozeql.services.schedules import ScheduleService

    ctx.clock = lambda: NOW
    office = add_instances(ctx, "office", tags={"timezone": "Europe/Paris"}, cost=50)
    idle = add_instances(ctx, "idle", cost=100)
    seed(ctx, office["office"], office_hours)
    seed(ctx, idle["idle"], lambda _t: False)
    svc = RecommendationService(ctx)
    items = {r["instance_name"]: r for r in svc.list()}

    applied = svc.apply(items["office"]["id"], actor="tester")
    assert applied.schedule_name == "recommended-office"
    schedules = ScheduleService(ctx)
    governing = schedules.governing()
    assert governing[office["office"]].schedule.name == "recommended-office"
    sched = governing[office["office"]].schedule
    assert sched.timezone == "Europe/Paris"
    # Tuesday 03:00 in Paris: asleep; Tuesday 10:00: awake.
    assert desired_state(sched, datetime(2026, 11, 24, 3, tzinfo=PARIS)).state == "stopped"
    assert desired_state(sched, datetime(2026, 11, 24, 10, tzinfo=PARIS)).state == "running"

    stop = svc.apply(items["idle"]["id"], actor="tester", name="idle-off")
    sched = ScheduleService(ctx).governing()[idle["idle"]].schedule
    assert stop.schedule_name == "idle-off"
    assert desired_state(sched, datetime(2026, 11, 24, 10, tzinfo=PARIS)).state == "stopped"

    with pytest.raises(ConflictError):  # the same name again: nothing half-written
        svc.apply(items["idle"]["id"], actor="tester", name="idle-off")
    with pytest.raises(NotFoundError):
        svc.apply("00000000-0000-0000-0000-000000000000", actor="tester")


def test_the_fleet_analysis_is_reused_until_its_inputs_change(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [NOW]
    ctx.clock = lambda: clock[0]
    office = add_instances(ctx, "office", tags={"timezone": "Europe/Paris"}, cost=50)
    seed(ctx, office["office"], office_hours)
    analyses: list[datetime] = []
    compute = RecommendationService.compute

    def counted(self: RecommendationService, *args: Any, **kwargs: Any) -> list:
        analyses.append(self.ctx.now())
        return compute(self, *args, **kwargs)

    monkeypatch.setattr(RecommendationService, "compute", counted)

    def names() -> list[str]:
        # A new service per call, as each API request makes one.
        return [r["instance_name"] for r in RecommendationService(ctx).list()]

    assert names() == ["office"] and len(analyses) == 1
    assert names() == ["office"] and len(analyses) == 1  # nothing changed: reused

    # A dismissal shows at once, without analysing again.
    [rec] = RecommendationService(ctx).list()
    RecommendationService(ctx).dismiss(rec["id"], actor="tester")
    assert names() == [] and len(analyses) == 1

    # A new instance (an inventory write) and then new samples (a metrics write)
    # each make the next listing analyse again.
    idle = add_instances(ctx, "idle", cost=100)
    assert names() == ["idle"] and len(analyses) == 2
    assert RecommendationService(ctx).list()[0]["code"] == "not_enough_data"
    seed(ctx, idle["idle"], lambda _t: False)
    assert names() == ["idle"] and len(analyses) == 3
    assert RecommendationService(ctx).list()[0]["kind"] == "always_idle"

    # Later in the same hour: the same finished hours, reused. The next hour: again.
    clock[0] = NOW + timedelta(minutes=20)
    names()
    assert len(analyses) == 3
    clock[0] = NOW + timedelta(minutes=40)
    names()
    assert len(analyses) == 4

    # A deleted instance: analysed again, and gone from the list.
    with ctx.engine.begin() as conn:
        instance_store.delete(conn, idle["idle"])
    assert "idle" not in names() and len(analyses) == 4  # nothing left to analyse


def test_the_analysis_job_leaves_the_listing_nothing_to_compute(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from snoozeql.jobs.catalogue import catalogue

    ctx.clock = lambda: NOW
    idle = add_instances(ctx, "idle", cost=100)
    seed(ctx, idle["idle"], lambda _t: False)
    [job] = [j for j in catalogue(ctx) if j.name == "analyse-activity"]
    assert job.interval == timedelta(seconds=ctx.settings.metrics_interval_seconds)
    assert job.run(ctx) == 1

    analyses: list[int] = []
    compute = RecommendationService.compute
    monkeypatch.setattr(RecommendationService, "compute",
                        lambda self, *a, **k: analyses.append(1) or compute(self, *a, **k))
    assert [r["kind"] for r in RecommendationService(ctx).list()] == ["always_idle"]
    assert analyses == []


def test_applying_a_recommendation_to_a_protected_instance_is_refused(ctx: Context) -> None:
    """Issue 13 item 14: no schedule is applied to a snoozeql-protect=true instance."""
    from snoozeql.domain.errors import ActionRefused
    from snoozeql.services.schedules import ScheduleService

    ctx.clock = lambda: NOW
    ids = add_instances(ctx, "guarded", tags={"snoozeql-protect": "true"}, cost=100)
    seed(ctx, ids["guarded"], lambda _t: False)
    svc = RecommendationService(ctx)
    [rec] = [r for r in svc.list() if r["instance_name"] == "guarded"]
    with pytest.raises(ActionRefused) as info:
        svc.apply(rec["id"], actor="tester", name="guarded-off")
    assert info.value.message.startswith("protected")
    assert [v.name for v in ScheduleService(ctx).list()] == []  # nothing was written
def test_only_instances_whose_metrics_changed_are_analysed_again(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21: per-instance data versions; a new process reuses stored analyses."""
    ctx.clock = lambda: NOW
    ids = add_instances(ctx, "a", "b", "c", cost=10)
    for instance_id in ids.values():
        seed(ctx, instance_id, office_hours)
    analysed: list[list[str]] = []
    compute = RecommendationService.compute

    def counted(self: RecommendationService, instances: Any = None, *a: Any, **k: Any) -> list:
        analysed.append(sorted(i.name for i in instances) if instances is not None else ["*"])
        return compute(self, instances, *a, **k)

    monkeypatch.setattr(RecommendationService, "compute", counted)
    first = RecommendationService(ctx).list()
    assert analysed == [["a", "b", "c"]] and len(first) == 3

    # One new sample on b (b's only busy hour was idle before): only b is analysed.
    busy = NOW.replace(minute=0) - timedelta(days=3, hours=0)  # Friday 00:00 UTC
    store.apply_samples(ctx.engine, {ids["b"]: [Sample(CONNECTIONS, busy + timedelta(minutes=5),
                                                       4.0)]})
    after = {r["instance_name"]: r for r in RecommendationService(ctx).list()}
    assert analysed[-1] == ["b"] and len(analysed) == 2
    assert after["b"]["spans"] != after["a"]["spans"]  # the new sample shows
    # Nothing changed: nothing analysed.
    RecommendationService(ctx).list()
    assert len(analysed) == 2

    # A new process (an empty memo) serves the stored analyses without analysing.
    ctx.memo.clear()
    again = RecommendationService(ctx).list()
    assert again == list(after.values()) and len(analysed) == 2

    # Another process writes c's metrics: this one analyses c only.
    other = Context(settings=ctx.settings, engine=ctx.engine, providers=ctx.providers)
    store.apply_samples(other.engine, {ids["c"]: [Sample(CPU, busy + timedelta(minutes=9),
                                                         50.0)]})
    RecommendationService(ctx).list()
    assert analysed[-1] == ["c"] and len(analysed) == 3

    # A retention cleanup that removes hours of the lookback: everything again, also
    # in a new process (the stored analyses are for the data before the cleanup).
    with ctx.engine.begin() as conn:
        assert store.delete_before(conn, NOW - timedelta(days=10)) > 0
    ctx.memo.clear()
    RecommendationService(ctx).list()
    assert analysed[-1] == ["a", "b", "c"] and len(analysed) == 4


def test_cached_serves_the_last_analysis_without_analysing(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard's overview reads recommendations with ``cached()``: a page load
    never starts a fleet analysis (it grows with the fleet)."""
    ctx.clock = lambda: NOW
    ids = add_instances(ctx, "quiet", cost=10)
    seed(ctx, ids["quiet"], lambda _t: False)
    svc = RecommendationService(ctx)
    calls: list[int] = []
    compute = RecommendationService.compute

    def counted(self: RecommendationService, *a: Any, **k: Any) -> list:
        calls.append(1)
        return compute(self, *a, **k)

    monkeypatch.setattr(RecommendationService, "compute", counted)
    assert svc.cached() is None and calls == []  # nothing analysed in this process yet
    listed = svc.list()
    assert calls and svc.cached() == listed
    before = len(calls)
    assert [r["instance_name"] for r in svc.cached() or []] == ["quiet"]
    assert len(calls) == before


def test_the_listing_is_paged_and_counts_what_has_no_recommendation(ctx: Context) -> None:
    """GET /recommendations serves pages of recommendations, largest savings first; the
    instances without one are a count unless asked for, so the body follows the page."""
    from fastapi.testclient import TestClient

    from snoozeql.api.app import create_app
    from snoozeql.services.apikeys import ApiKeyService

    ctx.clock = lambda: NOW
    costs = {f"idle-{k}": 10 * (k + 1) for k in range(5)}
    for name, cost in costs.items():
        ids = add_instances(ctx, name, cost=cost)
        seed(ctx, ids[name], lambda _t: False)
    for k in range(7):
        add_instances(ctx, f"nodata-{k}")
    key = ApiKeyService(ctx).create("viewer", "viewer")[1]
    api = TestClient(create_app(ctx), headers={"X-API-Key": key})

    names: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        r = api.get("/api/v1/recommendations",
                    params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["without_recommendation"] == 7 and body["dismissed"] == 0
        names += [i["instance_name"] for i in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert names == sorted(costs, key=lambda n: -costs[n])  # largest savings first

    every = api.get("/api/v1/recommendations",
                    params={"include_without": "true", "limit": 1000}).json()
    assert [i["instance_name"] for i in every["items"][5:]] == [f"nodata-{k}" for k in range(7)]
    assert all(i["status"] == "none" for i in every["items"][5:])
    assert every["items"] == RecommendationService(ctx).list()

    r = api.get("/api/v1/recommendations", params={"cursor": "not-a-cursor"})
    assert r.status_code == 400 and "cursor" in r.json()["error"]["message"]
    assert api.get("/api/v1/recommendations", params={"limit": 0}).status_code == 422
