"""Which schedules govern which instance (domain/schedules/assignment.py): tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from snoozeql.domain.schedules.assignment import (
    SCHEDULE_TAG,
    AssignmentRecord,
    ScheduleRecord,
    resolve,
)
from snoozeql.domain.types import Instance, InstanceKind, InstanceStatus, ProviderKind

T0 = datetime(2026, 11, 1, tzinfo=UTC)
ACCOUNT = uuid4()


def record(name: str, priority: int = 0, updated: datetime = T0) -> ScheduleRecord:
    return ScheduleRecord(uuid4(), name, {"name": name, "timezone": "UTC", "periods": [
        {"begintime": "08:00", "endtime": "19:00"}]}, T0, updated, priority)


def instance(tags: dict[str, str] | None = None) -> Instance:
    return Instance(
        id=uuid4(), account_id=ACCOUNT, provider=ProviderKind.AWS, provider_id="db",
        kind=InstanceKind.INSTANCE, name="db", engine="postgres", engine_version=None,
        instance_class=None, region="eu-west-1", status=InstanceStatus.RUNNING,
        raw_status=None, tags=tags or {"env": "dev"}, endpoint_host=None,
        endpoint_port=None, multi_az=False, node_count=1, cluster_provider_id=None,
        hourly_cost_cents=None, first_seen_at=T0 - timedelta(days=9), last_seen_at=T0,
        missing_since=None,
    )


def assign(r: ScheduleRecord, via: str, inst: Instance, at: datetime = T0
           ) -> AssignmentRecord:
    sid = r.id
    if via == "instance":
        return AssignmentRecord(uuid4(), sid, via, f"instance:{inst.id}", inst.id, None,
                                None, None, at)
    if via == "account":
        return AssignmentRecord(uuid4(), sid, via, f"account:{ACCOUNT}", None, ACCOUNT,
                                None, None, at)
    if via == "tag":
        return AssignmentRecord(uuid4(), sid, via, "tag:env=dev", None, None, "env", "dev",
                                at)
    assert via == "selector"
    tree = {"tag": {"key": "env", "value": "dev"}}
    return AssignmentRecord(uuid4(), sid, via, "selector:x", None, None, None, None, at,
                            tree)


#: (schedules as (name, priority, via), the governing schedule's name, via)
GOVERNING = [
    ([("a", 0, "account"), ("b", 0, "instance")], "b", "instance"),
    ([("a", 0, "tag"), ("b", 0, "selector")], "a", "tag"),
    ([("a", 0, "selector"), ("b", 0, "account")], "a", "selector"),
    ([("a", 0, "instance"), ("b", 1, "account")], "b", "account"),
    ([("b", 0, "tag"), ("a", 0, "tag")], "a", "tag"),
    ([("a", -1, "instance"), ("b", 0, "tag"), ("c", 0, "own_tag")], "c", "own_tag"),
]


@pytest.mark.parametrize(("given", "name", "via"), GOVERNING)
def test_priority_then_the_strongest_assignment_then_the_name_governs(
        given: list[tuple[str, int, str]], name: str, via: str) -> None:
    records = [record(n, prio) for n, prio, _ in given]
    own = next((n for n, _, v in given if v == "own_tag"), None)
    inst = instance({"env": "dev", **({SCHEDULE_TAG: f" {own} "} if own else {})})
    assignments = [assign(r, v, inst) for r, (_, _, v) in zip(records, given, strict=True)
                   if v != "own_tag"]
    gov = resolve([inst], records, assignments)[inst.id]
    assert (gov.schedule.name, gov.via) == (name, via)
    assert sorted(m.schedule.name for m in gov.matches) == sorted(n for n, _, _ in given)


def test_protected_instances_have_no_schedule_unless_asked() -> None:
    r = record("a")
    inst = instance({"env": "dev", "snoozeql-protect": "True"})
    assignments = [assign(r, "tag", inst)]
    assert resolve([inst], [r], assignments) == {}
    assert resolve([inst], [r], assignments, include_protected=True)[inst.id].via == "tag"


def test_a_match_holds_since_the_later_of_the_assignment_and_the_schedule_change() -> None:
    later = T0 + timedelta(days=2)
    r = record("a", updated=later)
    inst = instance()
    got = resolve([inst], [r], [assign(r, "tag", inst, at=T0 + timedelta(days=1)),
                                assign(r, "account", inst, at=T0 + timedelta(days=3))])
    assert [m.since for m in got[inst.id].matches] == [later, T0 + timedelta(days=3)]


def test_unmatched_instances_and_unknown_own_tags_are_left_out() -> None:
    r = record("a")
    other = instance({"env": "prod", SCHEDULE_TAG: "nope"})
    ids: set[UUID] = set(resolve([other], [r], [assign(r, "tag", other)]))
    assert ids == set()


def test_equal_resolutions_are_one_object_shared_across_chunks() -> None:
    """20,000 instances under one tag assignment hold one Governing, not 20,000 (the
    reconciler keeps its resolution in memory between runs); own-tag matches, which
    start at each instance's first sighting, stay apart."""
    from snoozeql.domain.schedules.assignment import ParsedRules

    r, other = record("office"), record("late", priority=1, updated=T0 - timedelta(days=30))
    tagged = [instance() for _ in range(300)]
    own = [instance({SCHEDULE_TAG: "late"}) for _ in range(2)]
    own[1] = replace(own[1], first_seen_at=T0 - timedelta(days=1))
    by_tag = assign(r, "tag", tagged[0])
    parsed = ParsedRules()
    out = resolve(tagged[:150], [r, other], [by_tag], parsed=parsed)
    out |= resolve(tagged[150:] + own, [r, other], [by_tag], parsed=parsed)
    shared = {id(out[i.id]) for i in tagged}
    assert len(shared) == 1
    g = out[tagged[0].id]
    assert (g.schedule.name, g.via, g.since) == ("office", "tag", T0)
    assert out[own[0].id] is not out[own[1].id]
    assert [out[i.id].since for i in own] == [T0 - timedelta(days=9), T0 - timedelta(days=1)]
    assert {out[i.id].schedule.name for i in own} == {"late"}
