"""The pure reconcile plan (domain/schedules/reconcile.py): data in, planned actions out.

Table tests of single situations, and hypothesis properties over random fleets: never
two actions for one instance and transition; an override beats the schedules; protected
instances are never acted on; a preview (``reconcile --dry-run``) plans the same
actions as a real run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snoozeql.domain.schedules import DesiredState, Schedule
from snoozeql.domain.schedules.assignment import Governing, Match, OverrideRecord, decide
from snoozeql.domain.schedules.reconcile import (
    ClaimState,
    Plan,
    dry_run_actions,
    matches_state,
    plan,
    plan_run,
    real_actions,
    situation,
    stop_warnings,
    verdict,
)
from snoozeql.domain.types import Instance, InstanceKind, InstanceStatus, ProviderKind

MON = datetime(2026, 11, 23, tzinfo=UTC)
OFFICE = Schedule.from_dict({"name": "office", "timezone": "UTC", "periods": [
    {"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]})
NIGHT = Schedule.from_dict({"name": "night", "timezone": "UTC", "periods": [
    {"begintime": "18:00", "endtime": "23:00", "weekdays": "mon-fri"}]})
ENFORCED = Schedule.from_dict({"name": "enforced", "timezone": "UTC", "enforced": True,
                               "periods": [{"begintime": "08:00", "endtime": "19:00",
                                            "weekdays": "mon-fri"}]})
DRY = Schedule.from_dict({"name": "dry", "timezone": "UTC", "dry_run": True, "periods": [
    {"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]})
SCHEDULES = [OFFICE, NIGHT, ENFORCED, DRY]
IDS = {s.name: uuid4() for s in SCHEDULES}


def instance(name: str, status: InstanceStatus = InstanceStatus.RUNNING, *,
             tags: dict[str, str] | None = None, cluster: str | None = None,
             iid: UUID | None = None) -> Instance:
    return Instance(
        id=iid or uuid4(), account_id=None, provider=ProviderKind.LOCAL, provider_id=name,
        kind=InstanceKind.INSTANCE, name=name, engine="postgres", engine_version=None,
        instance_class=None, region="local", status=status, raw_status=None,
        tags=tags or {}, endpoint_host=None, endpoint_port=None, multi_az=False,
        node_count=1, cluster_provider_id=cluster, hourly_cost_cents=None,
        first_seen_at=MON - timedelta(days=30), last_seen_at=MON, missing_since=None,
    )


def governing(schedule: Schedule, *others: tuple[Schedule, int], priority: int = 0,
              since: datetime = MON - timedelta(days=20)) -> Governing:
    sid = IDS.get(schedule.name) or uuid4()
    matches = [Match(sid, schedule, priority, "tag", "tag:a=b", None, since)]
    matches += [Match(IDS.get(s.name) or uuid4(), s, prio, "tag", "tag:c=d", None, since)
                for s, prio in others]
    return Governing(sid, schedule, "tag", since, tuple(matches))


def override(state: str, until: datetime, created_at: datetime) -> OverrideRecord:
    return OverrideRecord(uuid4(), state, until, "demo", "alice", created_at)


def one(inst: Instance, gov: Governing | None, ov: OverrideRecord | None, now: datetime
        ) -> Plan | None:
    return plan(inst, gov, ov, now, global_dry_run=False, cache={})


# --------------------------------------------------------------------------- tables


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
    ov = override("running", now + timedelta(hours=1), now - timedelta(hours=1))
    p = one(instance("a"), governing(OFFICE), ov, now)
    assert p and (p.kind, p.desired, p.at) == ("override", DesiredState.RUNNING, ov.created_at)
    later = now + timedelta(hours=2)
    p = one(instance("a"), governing(OFFICE), ov, later)
    assert p and (p.kind, p.desired, p.at) == ("transition", DesiredState.STOPPED, ov.until)
    assert "(override ended)" in p.reason
    assert one(instance("a"), None, None, later) is None


#: (hour of Monday, schedules as (schedule, priority), desired state, reason contains)
COMBINED = [
    (12, [(OFFICE, 0), (NIGHT, 0)], DesiredState.RUNNING, "over night: running wins"),
    (20, [(OFFICE, 0), (NIGHT, 0)], DesiredState.RUNNING, "over office: running wins"),
    (20, [(OFFICE, 5), (NIGHT, 0)], DesiredState.STOPPED, "over night: higher priority"),
    (20, [(OFFICE, 0), (NIGHT, 5)], DesiredState.RUNNING, "over office: higher priority"),
    (23, [(OFFICE, 0), (NIGHT, 0)], DesiredState.STOPPED, "schedule office"),
    (18, [(OFFICE, 5), (NIGHT, 0)], DesiredState.RUNNING, "schedule office"),
]


@pytest.mark.parametrize(("hour", "schedules", "desired", "reason"), COMBINED)
def test_priority_then_running_wins(hour: int, schedules: list[tuple[Schedule, int]],
                                    desired: DesiredState, reason: str) -> None:
    (first, prio), *rest = schedules
    p = one(instance("a"), governing(first, *rest, priority=prio), None,
            MON + timedelta(hours=hour, minutes=30))
    assert p is not None and p.desired is desired and reason in p.reason


def test_a_sleep_override_on_an_ungoverned_instance_wakes_it_at_its_end() -> None:
    now = MON + timedelta(hours=12)
    ov = override("stopped", now - timedelta(minutes=5), now - timedelta(hours=2))
    p = one(instance("a"), None, ov, now)
    assert p and (p.kind, p.desired, p.at) == ("override", DesiredState.RUNNING, ov.until)
    keep = override("running", now - timedelta(minutes=5), now - timedelta(hours=2))
    assert one(instance("a"), None, keep, now) is None


def test_plan_run_leaves_out_cluster_members_and_reports_idle_instances() -> None:
    member = instance("member", cluster="c-1")
    free = instance("free")
    other = instance("other")
    weekend = MON - timedelta(hours=12)  # Sunday noon: office says stopped
    gov = {i.id: governing(OFFICE) for i in (member, free, other)}
    anyone = Schedule.from_dict({"name": "any", "timezone": "UTC",
                                 "periods": [{"endtime": "23:00"}]})
    gov[other.id] = governing(anyone)
    got = plan_run([member, free, other, instance("ungoverned")], gov, {}, {"c-1"}, weekend,
                   global_dry_run=False)
    assert got.considered == 2
    assert [p.instance.name for p in got.plans] == ["free"]
    assert [i.name for i in got.idle] == ["other"]
    assert got.failed == []


def test_enforced_drift_is_claimed_on_the_minute_and_settled_keys_are_left_alone() -> None:
    now = MON + timedelta(hours=20, seconds=42)
    drifted = instance("drifted", InstanceStatus.RUNNING)
    settled = instance("settled", InstanceStatus.RUNNING)
    fresh = instance("fresh", InstanceStatus.RUNNING)
    plans = [p for p in (one(drifted, governing(ENFORCED), None, now),
                         one(settled, governing(OFFICE), None, now),
                         one(fresh, governing(OFFICE), None, now)) if p]
    at = MON + timedelta(hours=19)
    done = {(drifted.id, at): "ok", (settled.id, at): "ok"}
    got = real_actions(plans, done, now)
    assert [(a.plan.instance.name, a.kind, a.at) for a in got] == [
        ("fresh", "transition", at), ("drifted", "enforce", now.replace(second=0))]
    assert got[1].reason.startswith("enforced: schedule enforced")
    # An enforced key that was refused (or only a dry run) is not enforced again.
    assert real_actions(plans[:1], {(drifted.id, at): "refused"}, now) == []


def test_dry_run_plans_log_once_per_transition_and_protected_ones_are_refused() -> None:
    now = MON + timedelta(hours=20)
    a, b = instance("a"), instance("b", tags={"snoozeql-protect": "true"})
    c = instance("c", InstanceStatus.STOPPED)
    plans = [p for p in (one(i, governing(DRY), None, now) for i in (a, b, c)) if p]
    got = dry_run_actions(plans, set())
    assert [(x.plan.instance.name, x.refusal is None) for x in got] == [("a", True),
                                                                        ("b", False)]
    said = {(a.id, "stop", (MON + timedelta(hours=19)).isoformat())}
    assert [x.plan.instance.name for x in dry_run_actions(plans, said)] == ["b"]


def test_stop_warnings_skip_overridden_protected_and_dry_run_instances() -> None:
    now = MON + timedelta(hours=18, minutes=50)
    lead = timedelta(minutes=15)
    plain, guarded = instance("plain"), instance("guarded", tags={"snoozeql-protect": "yes"})
    awake, asleep = instance("awake"), instance("asleep", InstanceStatus.STOPPED)
    dry = instance("dry")
    gov = {i.id: governing(OFFICE) for i in (plain, guarded, awake, asleep)}
    gov[dry.id] = governing(DRY)
    ovs = {awake.id: override("running", now + timedelta(hours=1), now)}
    got = stop_warnings([plain, guarded, awake, asleep, dry], gov, ovs, set(), now, lead,
                        global_dry_run=False)
    assert [(i.name, at) for i, _, at in got] == [("plain", MON + timedelta(hours=19))]
    assert stop_warnings([plain], gov, {}, set(), now, lead, global_dry_run=True) == []


# --------------------------------------------------------------------------- properties

STATUSES = [InstanceStatus.RUNNING, InstanceStatus.STOPPED, InstanceStatus.STARTING,
            InstanceStatus.STOPPING, InstanceStatus.FAILED]


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[Instance], dict[UUID, Governing],
                                     dict[UUID, OverrideRecord], datetime]:
    now = MON + timedelta(minutes=draw(st.integers(0, 7 * 24 * 60 - 1)),
                          seconds=draw(st.integers(0, 59)))
    n = draw(st.integers(1, 12))
    instances: list[Instance] = []
    gov: dict[UUID, Governing] = {}
    ovs: dict[UUID, OverrideRecord] = {}
    for k in range(n):
        tags = {"snoozeql-protect": "true"} if draw(st.booleans()) and k % 3 == 0 else {}
        inst = instance(f"db-{k}", draw(st.sampled_from(STATUSES)), tags=tags)
        instances.append(inst)
        chosen = draw(st.lists(st.tuples(st.sampled_from(SCHEDULES), st.integers(0, 2)),
                               max_size=3, unique_by=lambda t: t[0].name))
        if chosen:
            (first, prio), *rest = chosen
            since = MON - timedelta(hours=draw(st.sampled_from([480, 30, 0])))
            gov[inst.id] = governing(first, *rest, priority=prio, since=since)
        if draw(st.booleans()):
            start = now - timedelta(minutes=draw(st.integers(1, 600)))
            until = now + timedelta(minutes=draw(st.integers(-300, 300)))
            ovs[inst.id] = OverrideRecord(inst.id, draw(st.sampled_from(["running",
                                                                         "stopped"])),
                                          until, "why", "alice", start)
    return instances, gov, ovs, now


Fleet = tuple[list[Instance], dict[UUID, Governing], dict[UUID, OverrideRecord], datetime]


def done_map(draw: st.DrawFn, plans: list[Plan]) -> dict[tuple[UUID, datetime], str | None]:
    done: dict[tuple[UUID, datetime], str | None] = {}
    for p in plans:
        if draw(st.booleans()):
            done[(p.instance.id, p.at)] = draw(st.sampled_from(["ok", "noop", "refused",
                                                                "failed", "dry_run"]))
    return done


@settings(max_examples=150, deadline=None)
@given(fleet=fleets(), data=st.data())
def test_never_two_actions_for_one_instance_and_transition(fleet: Fleet,
                                                           data: st.DataObject) -> None:
    instances, gov, ovs, now = fleet
    planned = plan_run(instances, gov, ovs, set(), now, global_dry_run=False)
    assert len({p.instance.id for p in planned.plans}) == len(planned.plans)
    actions = real_actions(planned.plans, done_map(data.draw, planned.plans), now)
    assert len({a.plan.instance.id for a in actions}) == len(actions)
    assert len({a.key for a in actions}) == len(actions)
    dry = dry_run_actions(planned.plans, set())
    assert len({a.plan.instance.id for a in dry}) == len(dry)
    assert not {a.plan.instance.id for a in dry} & {a.plan.instance.id for a in actions}


@settings(max_examples=150, deadline=None)
@given(fleet=fleets())
def test_a_run_shares_decisions_without_changing_any_plan(fleet: Fleet) -> None:
    """``plan_run`` decides once per schedule set (and start) for all its instances:
    each plan is the one the instance gets when planned alone."""
    instances, gov, ovs, now = fleet
    planned = plan_run(instances, gov, ovs, set(), now, global_dry_run=False)
    alone = [one(i, gov.get(i.id), ovs.get(i.id), now) for i in instances
             if i.id in gov or i.id in ovs]
    assert planned.plans == [p for p in alone if p is not None]


@settings(max_examples=150, deadline=None)
@given(fleet=fleets(), later=st.integers(0, 3 * 24 * 60))
def test_equal_situations_plan_alike(fleet: Fleet, later: int) -> None:
    """Two instants with the same :func:`situation` (every schedule set's decision and
    stretch, the overrides) get the same plans; a different plan means a different
    situation."""
    instances, gov, ovs, now = fleet
    then = now + timedelta(minutes=later)
    sets = {g.set_key: g for g in gov.values()}.values()
    first = plan_run(instances, gov, ovs, set(), now, global_dry_run=False)
    second = plan_run(instances, gov, ovs, set(), then, global_dry_run=False)
    same = situation(sets, ovs, now) == situation(sets, ovs, then)
    assert same <= (first == second)


def test_a_transition_or_an_override_ending_changes_the_situation() -> None:
    gov = governing(OFFICE)
    ov = override("running", MON + timedelta(hours=20), MON)
    at = MON + timedelta(hours=12)
    assert situation([gov], {}, at) == situation([gov], {}, at + timedelta(hours=1))
    assert situation([gov], {}, at) != situation([gov], {}, MON + timedelta(hours=19, minutes=1))
    assert situation([gov], {ov.instance_id: ov}, at) != situation(
        [gov], {ov.instance_id: ov}, MON + timedelta(hours=21))


def test_equal_schedule_sets_share_a_key_whatever_their_order() -> None:
    a = governing(OFFICE, (NIGHT, 1), (DRY, 0))
    b = governing(OFFICE, (DRY, 0), (NIGHT, 1))
    assert a.set_key == b.set_key and a.set_key != governing(OFFICE, (NIGHT, 2)).set_key
    # the same schedules governed by another of them: a tie is decided by the governing one
    assert a.set_key != governing(DRY, (NIGHT, 1), (OFFICE, 0)).set_key
    assert governing(OFFICE).set_key == IDS["office"]
    assert [r.key for r in a.ranks] == [IDS["office"], IDS["night"], IDS["dry"]]
    late = governing(OFFICE, (NIGHT, 1), since=MON)
    assert late.latest_since == MON and a.latest_since == MON - timedelta(days=20)


@settings(max_examples=150, deadline=None)
@given(fleet=fleets())
def test_an_active_override_beats_every_schedule(fleet: Fleet) -> None:
    instances, gov, ovs, now = fleet
    planned = plan_run(instances, gov, ovs, set(), now, global_dry_run=False)
    for p in planned.plans:
        ov = ovs.get(p.instance.id)
        if ov is not None and ov.until > now:
            assert (p.kind, p.desired, p.at) == ("override", DesiredState(ov.state),
                                                 ov.created_at)
        elif p.kind == "transition":
            assert p.at <= now and (ov is None or p.at >= ov.until)
    active = {i for i, ov in ovs.items() if ov.until > now}
    assert active <= {p.instance.id for p in planned.plans}


@settings(max_examples=150, deadline=None)
@given(fleet=fleets(), data=st.data())
def test_protected_instances_are_never_acted_on(fleet: Fleet, data: st.DataObject) -> None:
    instances, gov, ovs, now = fleet
    planned = plan_run(instances, gov, ovs, set(), now, global_dry_run=False)
    protected = {i.id for i in instances if i.tags.get("snoozeql-protect") == "true"}
    actions = real_actions(planned.plans, done_map(data.draw, planned.plans), now)
    actions += dry_run_actions(planned.plans, set())
    for a in actions:
        assert (a.refusal is not None) == (a.plan.instance.id in protected)
    for p in planned.plans:
        v = verdict(p, {}, {}, set(), now, global_dry_run=False)
        if p.instance.id in protected:
            assert v.result in ("refused", "noop")


@settings(max_examples=150, deadline=None)
@given(fleet=fleets(), data=st.data())
def test_a_preview_plans_the_same_actions_as_a_real_run(fleet: Fleet,
                                                        data: st.DataObject) -> None:
    """What ``reconcile --dry-run`` says a real run would do (``verdict``) is what the
    real run claims (``real_actions``) and then acts on: the instances not as wanted."""
    instances, gov, ovs, now = fleet
    planned = plan_run(instances, gov, ovs, set(), now, global_dry_run=False)
    real = [p for p in planned.plans if not p.dry_run]
    done = done_map(data.draw, real)
    claims = {(iid, p.kind, at): ClaimState("done", result, "other", now)
              for p in real for (iid, at), result in done.items()
              if (iid, at) == (p.instance.id, p.at)}
    acted = {a.plan.instance.id: a for a in real_actions(real, done, now)
             if a.refusal is None and not matches_state(a.plan.instance.status,
                                                         a.plan.desired)}
    previewed = {}
    for p in real:
        v = verdict(p, claims, {}, set(), now, global_dry_run=False)
        if v.result == "dry_run":
            previewed[p.instance.id] = v
    assert set(previewed) == set(acted)
    for iid, v in previewed.items():
        assert v.action == acted[iid].plan.action
        assert v.reason.endswith(acted[iid].reason)


def test_a_tie_is_decided_by_the_governing_schedule_then_by_name_not_by_match_order() -> None:
    """Schedules tied at the top (same priority, same state) decide alike; the plan
    names the governing one if it is among them, else the first by name, whatever the
    order in which the instance's assignments matched them (one decision is shared by
    every instance of a set)."""
    at = MON + timedelta(hours=3)  # every schedule here wants the database stopped
    assert decide(governing(OFFICE, (DRY, 0)), at)[1].name == "office"
    assert decide(governing(DRY, (OFFICE, 0)), at)[1].name == "dry"
    # the governing one is outranked: of the two tied above it, the first by name
    first = governing(ENFORCED, (OFFICE, 1), (DRY, 1), priority=0)
    second = governing(ENFORCED, (DRY, 1), (OFFICE, 1), priority=0)
    assert decide(first, at)[1].name == decide(second, at)[1].name == "dry"
    assert first.set_key == second.set_key
