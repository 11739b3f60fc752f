"""The pure reconcile plan (domain/schedules/plan.py): data in, planned action out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from snoozeql.domain.schedules import DesiredState, Schedule
from snoozeql.domain.schedules.plan import Governing, Match, plan
from snoozeql.domain.types import Instance, InstanceKind, InstanceStatus, ProviderKind

MON = datetime(2026, 11, 23, tzinfo=UTC)
OFFICE = Schedule.from_dict({"name": "office", "timezone": "UTC", "periods": [
    {"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]})
NIGHT = Schedule.from_dict({"name": "night", "timezone": "UTC", "periods": [
    {"begintime": "18:00", "endtime": "23:00", "weekdays": "mon-fri"}]})


def instance(name: str) -> Instance:
    return Instance(
        id=uuid4(), account_id=None, provider=ProviderKind.LOCAL, provider_id=name,
        kind=InstanceKind.INSTANCE, name=name, engine="postgres", engine_version=None,
        instance_class=None, region="local", status=InstanceStatus.RUNNING, raw_status=None,
        tags={}, endpoint_host=None, endpoint_port=None, multi_az=False, node_count=1,
        cluster_provider_id=None, hourly_cost_cents=None, first_seen_at=MON - timedelta(days=30),
        last_seen_at=MON, missing_since=None,
    )


def governing(schedule: Schedule, *others: tuple[Schedule, int]) -> Governing:
    sid = uuid4()
    since = MON - timedelta(days=20)
    matches = [Match(sid, schedule, 0, "tag", "tag:a=b", None, since)]
    matches += [Match(uuid4(), s, prio, "tag", "tag:c=d", None, since) for s, prio in others]
    return Governing(sid, schedule, "tag", since, tuple(matches))


@dataclass(frozen=True)
class Ov:
    state: str
    until: datetime
    reason: str
    created_by: str
    created_at: datetime


def test_each_schedule_set_gets_its_own_decision_within_one_run() -> None:
    now = MON + timedelta(hours=19, minutes=1)
    cache: dict[object, object] = {}
    office, night = governing(OFFICE), governing(NIGHT)
    both = governing(OFFICE, (NIGHT, 5))
    got = [plan(instance(n), g, None, now, global_dry_run=False, cache=cache)
           for n, g in (("a", office), ("b", night), ("c", office), ("d", both))]
    assert [p.desired if p else None for p in got] == [
        DesiredState.STOPPED, DesiredState.RUNNING, DesiredState.STOPPED, DesiredState.RUNNING]
    assert got[0] and got[0].at == MON + timedelta(hours=19) and got[0].kind == "transition"
    assert got[3] and "over office: higher priority" in got[3].reason


def test_an_override_wins_until_it_ends_then_the_end_is_the_transition() -> None:
    now = MON + timedelta(hours=20)
    ov = Ov("running", now + timedelta(hours=1), "demo", "alice", now - timedelta(hours=1))
    p = plan(instance("a"), governing(OFFICE), ov, now, global_dry_run=False, cache={})
    assert p and (p.kind, p.desired, p.at) == ("override", DesiredState.RUNNING, ov.created_at)
    later = now + timedelta(hours=2)
    p = plan(instance("a"), governing(OFFICE), ov, later, global_dry_run=False, cache={})
    assert p and (p.kind, p.desired, p.at) == ("transition", DesiredState.STOPPED, ov.until)
    assert "(override ended)" in p.reason
    assert plan(instance("a"), None, None, later, global_dry_run=False, cache={}) is None
