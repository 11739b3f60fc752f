"""The dashboard's instances table as one read (services/instance_table.py), on SQLite
and PostgreSQL: the schedule columns of a page are the same as asking row by row, the
page reads only what can govern its rows, the statements per page do not grow with the
fleet or its assignments, and the matching count stops at its cap."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
import sqlalchemy as sa

from snoozeql.domain.types import DiscoveredInstance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.services.accounts import AccountService
from snoozeql.services.context import Context
from snoozeql.services.instance_table import InstanceTableService
from snoozeql.services.inventory import InventoryService
from snoozeql.services.schedules import ScheduleService, read_for
from snoozeql.store import instances as instance_store
from snoozeql.store import schedules as schedule_store
from snoozeql.store.instances import InstanceFilter
from tests.support.inventory import add_discovered

MON = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday
OFFICE = {"timezone": "Europe/Berlin",
          "periods": [{"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]}


@pytest.fixture
def tctx(ctx: Context) -> Context:
    ctx.clock = lambda: MON + timedelta(hours=9, minutes=30)
    return ctx


def add(ctx: Context, name: str, *, account: UUID | None = None, engine: str = "postgres",
        tags: dict[str, str] | None = None,
        status: InstanceStatus = InstanceStatus.RUNNING) -> UUID:
    d = DiscoveredInstance(
        provider=ProviderKind.AWS, provider_id=f"arn:aws:rds:eu-west-1:1:db:{name}",
        kind=InstanceKind.INSTANCE, name=name, engine=engine, engine_version="16",
        instance_class="db.t3.micro", region="eu-west-1", status=status,
        raw_status=status.value, tags=tags or {},
    )
    with ctx.engine.begin() as conn:
        return add_discovered(conn, d, account, ctx.now())


def fleet(ctx: Context) -> dict[str, UUID]:
    """Instances governed every way there is, with schedules in several zones and
    priorities; and 'noise': instances whose own assignments no page here shows."""
    dev = AccountService(ctx).add("aws", "dev", {"regions": "eu-west-1"})
    ops = AccountService(ctx).add("aws", "ops", {"regions": "eu-west-1"})
    svc = ScheduleService(ctx)
    svc.create({**OFFICE, "name": "office"})
    svc.create({**OFFICE, "name": "night", "timezone": "America/New_York"})
    svc.create({**OFFICE, "name": "tagged", "timezone": "Asia/Tokyo"})
    svc.create({**OFFICE, "name": "urgent", "priority": 7,
                "periods": [{"begintime": "10:00", "endtime": "11:00"}]})
    svc.create({**OFFICE, "name": "by-rule", "timezone": "UTC"})
    svc.create({**OFFICE, "name": "fallback", "timezone": "Australia/Sydney"})
    svc.create({**OFFICE, "name": "elsewhere"})
    ids = {
        "a-direct": add(ctx, "a-direct", account=dev.id, tags={"env": "dev"}),
        "b-owntag": add(ctx, "b-owntag", account=dev.id,
                        tags={"snoozeql-schedule": " night "}),
        "c-bytag": add(ctx, "c-bytag", account=dev.id, tags={"env": "dev"}),
        "d-urgent": add(ctx, "d-urgent", account=dev.id, tags={"team": "pay"}),
        "e-rule": add(ctx, "e-rule", account=ops.id, engine="mysql"),
        "f-account": add(ctx, "f-account", account=dev.id),
        "g-protected": add(ctx, "g-protected", account=dev.id,
                           tags={"env": "dev", "snoozeql-protect": "true"}),
        "h-unknown-tag": add(ctx, "h-unknown-tag", tags={"snoozeql-schedule": "ghost"}),
        "i-none": add(ctx, "i-none", account=ops.id),
    }
    svc.assign("office", instance="a-direct")
    svc.assign("tagged", tag="env=dev")
    svc.assign("urgent", tag="team=pay")
    svc.assign("office", instance="d-urgent")  # weaker than "urgent": lower priority
    svc.assign("by-rule", selector={"all": [{"engine": "mysql"}, {"account": "ops"}]})
    svc.assign("fallback", account="dev")
    for n in range(12):  # their own assignments belong on other pages
        name = f"z-noise-{n:02d}"
        ids[name] = add(ctx, name, account=ops.id)
        svc.assign("elsewhere", instance=name)
    return ids


def row_by_row(ctx: Context, inst_id: UUID) -> tuple[str, object] | None:
    svc = ScheduleService(ctx)
    gov = svc.governing_one(InventoryService(ctx).get(inst_id))
    if gov is None:
        return None
    return gov.schedule.name, svc.evaluate(gov.schedule_id).next


def test_page_schedules_are_those_of_asking_row_by_row(tctx: Context) -> None:
    ids = fleet(tctx)
    table = InstanceTableService(tctx)
    seen: dict[UUID, tuple[str, object] | None] = {}
    cursor = None
    while True:  # pages of 4: every page has a different mix
        page = table.page(InstanceFilter(), limit=4, cursor=cursor, count_cap=100)
        for i in page.items:
            up = page.upcoming.get(i.id)
            seen[i.id] = (up.schedule_name, up.next) if up else None
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert set(seen) == set(ids.values())
    assert seen == {i: row_by_row(tctx, i) for i in ids.values()}
    names = {n: (s[0] if s else None) for n, i in ids.items() for s in [seen[i]]}
    assert {n: v for n, v in names.items() if not n.startswith("z-")} == {
        "a-direct": "office", "b-owntag": "night", "c-bytag": "tagged",
        "d-urgent": "urgent", "e-rule": "by-rule", "f-account": "fallback",
        "g-protected": None, "h-unknown-tag": None, "i-none": None,
    }
    assert all(names[n] == "elsewhere" for n in names if n.startswith("z-"))
    # a real transition: at 10:30 in Berlin, "urgent" (10:00-11:00) stops at 11:00
    urgent = seen[ids["d-urgent"]]
    assert urgent is not None
    assert (str(urgent[1].state), urgent[1].at) == (  # type: ignore[attr-defined]
        "stopped", MON + timedelta(hours=10))


def test_a_page_reads_only_what_can_govern_its_rows(tctx: Context) -> None:
    ids = fleet(tctx)
    page_ids = {ids["a-direct"], ids["b-owntag"], ids["e-rule"]}
    inventory = InventoryService(tctx)
    page = [inventory.get(i) for i in page_ids]
    with tctx.engine.connect() as conn:
        found = read_for(tctx, conn, page)
        every = schedule_store.list_assignments(conn)
    # the page's own assignment and the rule-based ones, in list_assignments' order;
    # none of the other instances' own assignments
    assert [a.id for a in found.assignments] == [
        a.id for a in every if a.instance_id is None or a.instance_id in page_ids]
    assert {a.target for a in found.assignments} == {
        f"instance:{ids['a-direct']}", "tag:env=dev", "tag:team=pay",
        next(a.target for a in every if a.kind == "selector"),
        next(a.target for a in every if a.kind == "account")}
    assert list(found.account_names.values()) == ["dev", "ops"]
    with tctx.engine.connect() as conn:
        assert all(a.instance_id is None for a in read_for(tctx, conn, []).assignments)


@contextmanager
def statements(ctx: Context) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    sa.event.listen(ctx.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(ctx.engine, "before_cursor_execute", record)


def test_statements_per_page_do_not_grow_with_the_fleet(tctx: Context) -> None:
    fleet(tctx)
    table = InstanceTableService(tctx)
    table.page(InstanceFilter(), limit=5, count_cap=100)  # reads the rules once
    with statements(tctx) as small:
        table.page(InstanceFilter(), limit=5, count_cap=100)
    svc = ScheduleService(tctx)
    for n in range(60):  # more instances, each with an assignment of its own
        add(tctx, f"y-more-{n:02d}")
        svc.assign("elsewhere", instance=f"y-more-{n:02d}")
    with statements(tctx) as cold:  # the assignments changed: the rules are read again
        table.page(InstanceFilter(), limit=5, count_cap=100)
    with statements(tctx) as big:
        page = table.page(InstanceFilter(), limit=5, count_cap=100)
    assert len(page.items) == 5
    # the data versions, the keyset page, the page's own assignments (its capped count
    # is kept until the inventory changes)
    assert len(small) == len(big) == 3
    # ... and, once after a change: the count, the schedules, the rule-based
    # assignments, the account names
    assert len(cold) == 7


def test_a_change_made_by_another_process_shows_on_the_next_page(tctx: Context) -> None:
    ids = fleet(tctx)
    table = InstanceTableService(tctx)

    def governed() -> dict[str, str | None]:
        page = table.page(InstanceFilter(), limit=100, count_cap=1000)
        names = {v: k for k, v in ids.items()}
        return {names[i.id]: (page.upcoming[i.id].schedule_name if i.id in page.upcoming
                              else None) for i in page.items}

    assert governed()["c-bytag"] == "tagged"
    # another process: its own context (and memo) on the same store
    other = Context(settings=tctx.settings, engine=sa.create_engine(tctx.engine.url),
                    providers=tctx.providers, clock=tctx.clock)
    try:
        svc = ScheduleService(other)
        svc.unassign("tagged", tag="env=dev")
        assert governed()["c-bytag"] == "fallback"  # its account's schedule now
        svc.create({**OFFICE, "name": "late", "priority": 9})
        svc.assign("late", instance="i-none")
        assert governed()["i-none"] == "late"
        svc.update("urgent", {"priority": 0})
        assert governed()["d-urgent"] == "office"  # no longer the stronger one
        svc.delete("fallback")
        assert governed()["f-account"] is None
        AccountService(other).add("aws", "qa", {"regions": "eu-west-1"})
    finally:
        other.engine.dispose()
    page = table.page(InstanceFilter(), limit=100, count_cap=1000)
    assert list(page.account_names.values()) == ["dev", "ops", "qa"]


def test_a_next_transition_is_reused_only_until_it_has_passed(tctx: Context) -> None:
    ids = fleet(tctx)
    table = InstanceTableService(tctx)
    one = InstanceFilter(text="d-urgent")

    def nxt() -> tuple[str, datetime]:
        up = table.page(one, count_cap=10).upcoming[ids["d-urgent"]]
        assert up.next is not None
        return str(up.next.state), up.next.at

    # 10:30 Berlin: "urgent" (10:00-11:00 Berlin) stops at 11:00 Berlin (10:00 UTC)
    assert nxt() == ("stopped", MON + timedelta(hours=10))
    tctx.clock = lambda: MON + timedelta(hours=9, minutes=59)
    assert nxt() == ("stopped", MON + timedelta(hours=10))
    tctx.clock = lambda: MON + timedelta(hours=10)  # the stop itself: the next is Tuesday's
    assert nxt() == ("running", MON + timedelta(days=1, hours=9))
    tctx.clock = lambda: MON + timedelta(hours=8)  # earlier than any answer kept
    assert nxt() == ("running", MON + timedelta(hours=9))


def test_matching_count_stops_at_its_cap_and_is_skipped_when_one_page_holds_all(
        tctx: Context) -> None:
    for n in range(7):
        add(tctx, f"db-{n}", status=InstanceStatus.STOPPED if n < 2 else InstanceStatus.RUNNING)
    table = InstanceTableService(tctx)
    assert table.page(InstanceFilter(), limit=5, count_cap=4).matching == 4  # "at least 4"
    assert table.page(InstanceFilter(), limit=5, count_cap=100).matching == 7
    with statements(tctx) as seen:
        page = table.page(InstanceFilter(), limit=10, count_cap=4)
    assert page.matching == 7 and page.next_cursor is None  # exact, above the cap
    assert not any("count(" in s.lower() for s in seen)
    running = InstanceFilter(status="running")
    first = table.page(running, limit=3, count_cap=100)
    assert first.matching == 5 and first.next_cursor
    last = table.page(running, limit=3, cursor=first.next_cursor, count_cap=100)
    assert (len(last.items), last.matching, last.next_cursor) == (2, 5, None)
    assert table.page(InstanceFilter(status="starting"), count_cap=4).matching == 0
    # what is kept follows the inventory: a new instance, a status set by an action
    new = add(tctx, "db-new")
    assert table.page(running, limit=3, count_cap=100).matching == 6
    with tctx.engine.begin() as conn:
        instance_store.set_status(conn, new, InstanceStatus.STOPPED, "stopped")
    assert table.page(running, limit=3, count_cap=100).matching == 5
    assert table.page(InstanceFilter(status="stopped"), limit=1, count_cap=100).matching == 3
