"""What the dashboard's schedule and savings pages compute: matched counts and
conflicts for every schedule (kept while nothing changes), an instance's combined
timeline with its override, the daily savings series and the always-on cost, the
dismissal reason in the audit trail."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from snoozeql.domain.analysis import AnalysisEntry
from snoozeql.domain.errors import ValidationError
from snoozeql.services.audit import AuditService
from snoozeql.services.context import Context
from snoozeql.services.recommendations import RecommendationService
from snoozeql.services.savings import SavingsService
from snoozeql.services.schedule_board import ScheduleBoard
from snoozeql.services.schedules import OverrideService, ScheduleService
from snoozeql.store import recommendations as rec_store
from tests.store.test_schedules_service import MON, _interval, add_instance


@pytest.fixture
def sctx(ctx: Context) -> Context:
    ctx.clock = lambda: MON + timedelta(hours=9)  # a Monday, 09:00 UTC
    return ctx


OFFICE = {"name": "office", "timezone": "UTC",
          "periods": [{"begintime": "08:00", "endtime": "18:00", "weekdays": "mon-fri"}]}
NIGHT = {"name": "nightly", "timezone": "UTC",
         "periods": [{"begintime": "00:00", "endtime": "06:00"}]}


def test_counts_conflicts_and_the_winning_rule(sctx: Context) -> None:
    for n in range(3):
        add_instance(sctx, f"dev-{n}", tags={"env": "dev"}, cost="10")
    add_instance(sctx, "prod-0", tags={"env": "prod"}, cost="10")
    svc = ScheduleService(sctx)
    svc.create(OFFICE)
    svc.create({**NIGHT, "priority": 5})
    svc.assign("office", tag="env=dev")
    svc.assign("nightly", instance="dev-0")
    board = ScheduleBoard(sctx)
    rows = {s.view.name: s for s in board.summaries()}
    assert rows["office"].matched == 3 and rows["nightly"].matched == 1
    # office wants dev-0 running from 09:00 Monday, nightly (priority 5) stopped
    (c,) = board.conflicts()
    assert {c.a_name, c.b_name} == {"office", "nightly"} and c.instance_names == ("dev-0",)
    assert c.winner == "nightly" and c.rule == "higher priority"
    assert "priority 5 is higher" in c.explanation
    assert rows["office"].conflicts == rows["nightly"].conflicts == (c,)
    assert rows["office"].next is not None and str(rows["office"].next.state) == "stopped"
    # the schedule page's matched instances, a page at a time, as the service lists them
    _, every = svc.matches("office")
    total, page = board.matches_page(rows["office"].view.id, 1, 2)
    assert total == len(every) == 3
    assert [(m.instance.name, m.via) for m in page] == sorted(
        (m.instance.name, m.via) for m in every)[1:3]
    OverrideService(sctx).set("dev-1", "running", "2h", actor="alice")
    _, detail = board.matches_detail(rows["office"].view.id)
    by_name = {d.match.instance.name: d for d in detail}
    assert by_name["dev-0"].others == ("nightly",) and by_name["dev-1"].others == ()
    assert by_name["dev-1"].override is not None and by_name["dev-0"].override is None
    # same priority: running wins, explained
    svc.update("nightly", {"priority": 0})
    (c,) = ScheduleBoard(sctx).conflicts()
    assert c.winner == "office" and "running wins" in c.explanation
    # a new instance with the tag is counted (the memo follows the inventory version)
    add_instance(sctx, "dev-9", tags={"env": "dev"})
    assert {s.view.name: s.matched for s in ScheduleBoard(sctx).summaries()}["office"] == 4
    svc.unassign("nightly", instance="dev-0")
    assert ScheduleBoard(sctx).conflicts() == []


def test_instance_timeline_combines_schedules_and_the_override(sctx: Context) -> None:
    add_instance(sctx, "db1", tags={"env": "dev"})
    svc = ScheduleService(sctx)
    svc.create(OFFICE)
    svc.assign("office", instance="db1")
    OverrideService(sctx).set("db1", "stopped", "2h", actor="alice", reason="maintenance")
    inst, segments, conflicts, gov = ScheduleBoard(sctx).instance_timeline("db1", 7)
    assert gov is not None and conflicts == []
    now = sctx.now()
    first = segments[0]
    assert first.start == now and first.end == now + timedelta(hours=2)
    assert first.state == "stopped" and "maintenance" in first.source
    assert segments[1].state == "running" and segments[1].source == "office"
    assert segments[-1].end == now + timedelta(days=7)
    assert all(a.end == b.start for a, b in zip(segments, segments[1:], strict=False))


def test_daily_savings_add_up_to_the_report(sctx: Context) -> None:
    a = add_instance(sctx, "a", cost="10")
    c = add_instance(sctx, "c", cost="25", nodes=2)
    add_instance(sctx, "u")  # no price
    now = sctx.now()  # Monday 09:00
    _interval(sctx, a, "a", now - timedelta(days=2, hours=3), now - timedelta(hours=30),
              "10", 1, "office", None)
    _interval(sctx, c, "c", now - timedelta(hours=20), None, "25", 2, None, None)
    start, end = now - timedelta(days=3), now
    days = SavingsService(sctx).daily(start=start, end=end)
    assert [d.day for d in days] == [(start + timedelta(days=n)).date() for n in range(4)]
    report = SavingsService(sctx).report(start=start, end=end)
    assert sum((d.saved_cents for d in days), Decimal(0)) == report.realized_total_cents
    hourly, unpriced = SavingsService(sctx).always_on_hourly_cents()
    assert (hourly, unpriced) == (Decimal(60), 1)
    assert sum((d.hours for d in days), Decimal(0)) == 72
    assert days[-1].always_on_cents == 9 * hourly  # Monday 00:00-09:00
    assert days[-1].cost_cents == days[-1].always_on_cents - days[-1].saved_cents
    for group in ("instance", "account", "schedule"):
        _, _, rows = SavingsService(sctx).realized(start=start, end=end, group_by=group)
        assert sum((r.saved_cents for r in rows), Decimal(0)) == report.realized_total_cents


def test_a_dismissal_reason_goes_to_the_audit_trail(sctx: Context) -> None:
    iid = add_instance(sctx, "db1")
    rec_id = uuid.uuid4()
    with sctx.engine.begin() as conn:
        rec_store.replace_current(conn, [AnalysisEntry(
            iid, {"instance_name": "db1", "kind": "sleep"}, rec_id, 0, "")], sctx.now())
    RecommendationService(sctx).dismiss(rec_id, "alice", reason="  batch at night  ")
    (entry,) = AuditService(sctx).list(kind="recommendation")
    assert (entry.action, entry.actor, entry.reason) == ("dismiss", "alice",
                                                         "batch at night")


def test_the_live_preview_matches_the_services(sctx: Context) -> None:
    for n in range(6):
        add_instance(sctx, f"stg-{n}", tags={"env": "dev" if n % 2 else "prod"})
    add_instance(sctx, "stg-guarded", tags={"env": "dev", "snoozeql-protect": "true"})
    svc, board = ScheduleService(sctx), ScheduleBoard(sctx)
    for selector in ({"name": "stg-.*"}, {"tag": {"key": "env", "value": "dev"}},
                     {"all": [{"name": "stg-[0-3]"}, {"any": [{"provider": "aws"},
                                                              {"engine": "mysql"}]}]},
                     {"name": "nothing"}):
        want = sorted(m.instance.name for m in svc.preview_selector(selector))
        count, shown = board.preview_selector(selector, limit=2)
        assert count == len(want) and [m.instance.name for m in shown] == want[:2]
        assert all(m.via[0].kind == "selector" for m in shown)
    assert "stg-guarded" not in [m.instance.name for m in board.preview_selector(
        {"name": "stg-.*"}, limit=50)[1]]
    with pytest.raises(ValidationError, match="at position 4"):
        board.preview_selector({"name": "stg-("})
    facets = board.facets()
    assert facets["provider"] == ["aws"] and facets["engine"] == ["postgres"]
    # a new instance shows at once (the kept fleet follows the inventory's version)
    add_instance(sctx, "stg-new")
    assert board.preview_selector({"name": "stg-new"})[0] == 1
