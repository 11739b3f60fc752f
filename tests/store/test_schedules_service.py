"""Schedule, override and savings services on SQLite and PostgreSQL (no cloud needed)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from snoozeql.api.schemas.savings import SavingsOut
from snoozeql.api.schemas.schedules import EvaluationOut
from snoozeql.domain.errors import ConflictError, NotFoundError, ValidationError
from snoozeql.domain.schedules.model import schedule_document
from snoozeql.domain.types import DiscoveredInstance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.services.accounts import AccountService
from snoozeql.services.context import Context
from snoozeql.services.savings import WEEKS_PER_MONTH, SavingsService
from snoozeql.services.schedules import OverrideService, ScheduleService
from snoozeql.store import schedules as schedule_store
from tests.support.inventory import add_discovered

MON = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday
OFFICE = {"name": "office", "timezone": "Europe/Berlin",
          "periods": [{"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]}


@pytest.fixture
def sctx(ctx: Context) -> Context:
    ctx.clock = lambda: MON + timedelta(hours=9)
    return ctx


def add_instance(ctx: Context, name: str, *, account: UUID | None = None,
                 tags: dict[str, str] | None = None, cost: str | None = None,
                 nodes: int = 1, kind: InstanceKind = InstanceKind.INSTANCE) -> UUID:
    d = DiscoveredInstance(
        provider=ProviderKind.AWS, provider_id=f"arn:aws:rds:us-east-1:1:db:{name}",
        kind=kind, name=name, engine="postgres", engine_version="16.4",
        instance_class="db.t3.micro", raw_status="available", status=InstanceStatus.RUNNING,
        region="us-east-1", tags=tags or {}, node_count=nodes,
    )
    with ctx.engine.begin() as conn:
        return add_discovered(conn, d, account, ctx.now(), Decimal(cost) if cost else None)


def test_crud_and_refusals(sctx) -> None:  # noqa: ANN001
    svc = ScheduleService(sctx)
    view = svc.create(OFFICE)
    assert svc.get("office").id == view.id == svc.get(str(view.id)).id
    assert schedule_document(svc.get("office").schedule)["periods"] == OFFICE["periods"]
    with pytest.raises(ConflictError, match="already exists"):
        svc.create(OFFICE)
    with pytest.raises(ValidationError, match=r"periods\[0\].weekdays: 'mon-fry'"):
        svc.create({**OFFICE, "name": "bad",
                    "periods": [{"begintime": "08:00", "weekdays": "mon-fry"}]})
    with pytest.raises(ValidationError, match="unknown time zone"):
        svc.create({**OFFICE, "name": "bad", "timezone": "Europe/Pariss"})
    with pytest.raises(ValidationError, match="begintime 18:00 is after endtime 09:00"):
        svc.create({**OFFICE, "name": "bad",
                    "periods": [{"begintime": "18:00", "endtime": "09:00"}]})
    assert [v.name for v in svc.list()] == ["office"]

    sctx.clock = lambda: MON + timedelta(hours=10)
    changed = svc.update("office", {"enforced": True, "exceptions": ["2026-12-24"]})
    assert changed.schedule.enforced and changed.schedule.periods == view.schedule.periods
    assert changed.updated_at == MON + timedelta(hours=10)
    replaced = svc.update("office", {"name": "office2", "timezone": "UTC",
                                     "periods": [{"begintime": "09:00"}]}, replace=True)
    assert replaced.name == "office2" and not replaced.schedule.enforced
    with pytest.raises(NotFoundError):
        svc.get("office")
    svc.delete("office2")
    assert svc.list() == []


def test_imports_make_schedules_that_behave_the_same(sctx) -> None:  # noqa: ANN001
    svc = ScheduleService(sctx)
    v = svc.import_custodian("off=(M-F,19);on=(M-F,7);tz=pt", name="custodian")
    assert v.schedule.timezone == "America/Los_Angeles"
    ev = svc.evaluate("custodian", "2026-11-23T19:30:00-08:00")
    assert str(ev.decision.state) == "stopped"
    assert ev.next and ev.next.at == datetime.fromisoformat("2026-11-24T07:00:00-08:00")
    config = {
        "periods": [{"type": "period", "name": "day", "begintime": "09:00",
                     "endtime": "17:00", "weekdays": ["mon-fri"]}],
        "schedules": [{"type": "schedule", "name": "is-office", "periods": ["day"],
                       "timezone": "Europe/London", "hibernate": True}],
    }
    views, warnings = svc.import_instance_scheduler(config)
    assert [x.name for x in views] == ["is-office"] and any("hibernate" in w for w in warnings)
    with pytest.raises(ConflictError):  # all or nothing
        svc.import_instance_scheduler(config)


def test_evaluate_and_preview(sctx) -> None:  # noqa: ANN001
    svc = ScheduleService(sctx)
    svc.create(OFFICE)
    ev = svc.evaluate("office", "2026-11-23T19:30:00+01:00")
    assert str(ev.decision.state) == "stopped" and ev.decision.source == "no_period"
    assert ev.next is not None and str(ev.next.state) == "running"
    assert ev.next.at.isoformat() == "2026-11-24T08:00:00+01:00"
    assert ev.next_stop and ev.next_stop.at.isoformat() == "2026-11-24T19:00:00+01:00"
    out = EvaluationOut.of(ev).model_dump(mode="json")
    assert out["state"] == "stopped" and out["next_transition"]["state"] == "running"
    with pytest.raises(ValidationError, match="UTC offset"):
        svc.evaluate("office", "2026-11-23T19:30:00")

    view, segments = svc.preview("office", start="2026-11-23T00:00:00+01:00", days=7)
    running = [s for s in segments if str(s.state) == "running"]
    assert len(running) == 5
    assert all(s.end - s.start == timedelta(hours=11) for s in running)
    assert segments[0].start.isoformat() == "2026-11-23T00:00:00+01:00"
    with pytest.raises(ValidationError, match="days"):
        svc.preview("office", days=400)


def test_assignment_precedence_and_protection(sctx) -> None:  # noqa: ANN001
    acct = AccountService(sctx).add("aws", "dev", {"regions": "us-east-1"})
    ids = {
        "direct": add_instance(sctx, "direct", account=acct.id, tags={"env": "dev"}),
        "owntag": add_instance(sctx, "owntag", account=acct.id,
                               tags={"env": "dev", "snoozeql-schedule": "night"}),
        "bytag": add_instance(sctx, "bytag", account=acct.id, tags={"env": "dev"}),
        "byacct": add_instance(sctx, "byacct", account=acct.id),
        "safe": add_instance(sctx, "safe", account=acct.id,
                             tags={"env": "dev", "snoozeql-protect": "TRUE"}),
        "none": add_instance(sctx, "none", tags={"env": "prod"}),
    }
    svc = ScheduleService(sctx)
    for name in ("office", "night", "weekend", "fallback"):
        svc.create({**OFFICE, "name": name})
    svc.assign("office", instance="direct")
    svc.assign("weekend", tag="env=dev")
    svc.assign("fallback", account="dev")
    with pytest.raises(ConflictError, match="already assigned"):
        svc.assign("weekend", tag="env=dev")
    with pytest.raises(ValidationError, match="exactly one"):
        svc.assign("office", tag="env=dev", account="dev")
    with pytest.raises(ValidationError, match="key=value"):
        svc.assign("office", tag="env")
    with pytest.raises(NotFoundError):
        svc.assign("office", instance="ghost")

    gov = svc.governing()
    got = {name: (gov[i].schedule.name, gov[i].via) for name, i in ids.items() if i in gov}
    assert got == {
        "direct": ("office", "instance"), "owntag": ("night", "own_tag"),
        "bytag": ("weekend", "tag"), "byacct": ("fallback", "account"),
    }
    assert {a.target for a in svc.assignments("weekend")} == {"tag:env=dev"}
    svc.unassign("weekend", tag="env=dev")
    assert svc.governing()[ids["bytag"]].schedule.name == "fallback"
    with pytest.raises(NotFoundError):
        svc.unassign("weekend", tag="env=dev")
    svc.delete("fallback")  # assignments go with it
    assert ids["byacct"] not in svc.governing()


def test_create_and_assign_is_all_or_nothing(sctx) -> None:  # noqa: ANN001
    add_instance(sctx, "db1")
    svc = ScheduleService(sctx)
    with pytest.raises(NotFoundError):
        svc.create_and_assign(OFFICE, instances=["db1", "ghost"])
    assert svc.list() == []
    view, made = svc.create_and_assign(OFFICE, instances=["db1"], tags=["env=dev"])
    assert [a.kind for a in made] == ["instance", "tag"]
    assert len(svc.assignments(view.id)) == 2


def test_overrides_parse_times_in_the_schedule_zone(sctx) -> None:  # noqa: ANN001
    add_instance(sctx, "db1")
    add_instance(sctx, "db2")
    ScheduleService(sctx).create(OFFICE)
    ScheduleService(sctx).assign("office", instance="db1")
    ov = OverrideService(sctx)
    # 09:00 UTC = 10:00 Berlin: "22:00" is 22:00 Berlin today, 21:00 UTC.
    _, rec = ov.set("db1", "running", "22:00", actor="alice")
    assert rec.until == MON + timedelta(hours=21)
    _, rec = ov.set("db1", "stopped", "tomorrow 08:00", actor="alice")
    assert rec.until == MON + timedelta(days=1, hours=7)
    _, rec = ov.set("db2", "running", "08:00", actor="bob")  # no schedule: UTC, next 08:00
    assert rec.until == MON + timedelta(days=1, hours=8)
    _, rec = ov.set("db2", "running", "90m", actor="bob")
    assert rec.until == MON + timedelta(hours=10, minutes=30)
    assert ov.get("db1").state == "stopped"  # replaced, one per instance
    for bad in ("25:00", "yesterday 08:00", "2026-01-01T00:00:00+00:00"):
        with pytest.raises(ValidationError, match="until"):
            ov.set("db1", "running", bad, actor="alice")
    with pytest.raises(ValidationError, match="state"):
        ov.set("db1", "napping", "22:00", actor="alice")
    assert ov.clear("db1") and ov.get("db1").until == sctx.now()
    assert not ov.clear("db1")


def _interval(ctx: Context, iid: UUID, name: str, start: datetime, end: datetime | None,
              cost: str | None, nodes: int, schedule: str | None, account: UUID | None
              ) -> None:
    interval = schedule_store.StopInterval(
        id=uuid.uuid4(), instance_id=iid, instance_name=name, account_id=account,
        schedule_id=None, schedule_name=schedule, stopped_at=start, started_at=end,
        hourly_cost_cents=Decimal(cost) if cost else None, node_count=nodes,
    )
    with ctx.engine.begin() as conn:
        schedule_store.insert_intervals(conn, [interval])


def test_savings_realized_and_projected(sctx) -> None:  # noqa: ANN001
    acct = AccountService(sctx).add("aws", "dev", {"regions": "us-east-1"})
    a = add_instance(sctx, "a", account=acct.id, cost="10", tags={"env": "dev"})
    c = add_instance(sctx, "c", account=acct.id, cost="25", nodes=2, tags={"env": "dev"},
                     kind=InstanceKind.CLUSTER)
    u = add_instance(sctx, "u", tags={"env": "dev"})  # cost unknown
    # a: stopped Sun 19:00 -> Mon 07:00; c: since Mon 07:00, still stopped at "now" (09:00);
    # u: Mon 00:00 -> 03:00 with no known cost.
    _interval(sctx, a, "a", MON - timedelta(hours=5), MON + timedelta(hours=7), "10", 1,
              "office", acct.id)
    _interval(sctx, c, "c", MON + timedelta(hours=7), None, "25", 2, "office", acct.id)
    _interval(sctx, u, "u", MON, MON + timedelta(hours=3), None, 1, None, None)

    svc = SavingsService(sctx)
    r = svc.report(start=MON, end=MON + timedelta(days=1), group_by="instance")
    rows = {x.name: x for x in r.realized}
    assert rows["a"].stopped_hours == 7 and rows["a"].saved_cents == 70  # from `from` on
    assert rows["c"].stopped_hours == 2 and rows["c"].saved_cents == 100  # until now, x2
    assert rows["u"].saved_cents == 0 and rows["u"].unpriced_hours == 3
    assert r.realized_total_cents == 170
    by_account = {x.name: x.saved_cents for x in svc.report(
        start=MON, end=MON + timedelta(days=1), group_by="account").realized}
    assert by_account == {"dev": 170, "(no account)": 0}
    by_schedule = {x.name for x in svc.report(start=MON, group_by="schedule",
                                              end=MON + timedelta(hours=8)).realized}
    assert by_schedule == {"office", "(override)"}
    with pytest.raises(ValidationError, match="group_by"):
        svc.report(group_by="planet")
    with pytest.raises(ValidationError, match="after"):
        svc.report(start=MON, end=MON - timedelta(days=1))

    ScheduleService(sctx).create(OFFICE)
    ScheduleService(sctx).assign("office", tag="env=dev")
    [p] = svc.projected()
    assert p.instances == 3 and p.unpriced_instances == 1
    assert p.stopped_hours_per_week == 168 - 5 * 11
    assert p.hourly_cost_cents == 10 + 25 * 2
    assert p.monthly_cents == (168 - 55) * WEEKS_PER_MONTH * 60
    assert SavingsOut.of(r).realized_total_usd == 1.7
