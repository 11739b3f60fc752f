"""What the dashboard asks of the services beyond the API's needs (SQLite and
PostgreSQL): the fleet summary of the overview, and the bulk pre-check behind the
confirm dialog (who will be acted on, who is left out and why)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.types import DiscoveredInstance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.services import bulk as bulk_module
from snoozeql.services.bulk import BulkService
from snoozeql.services.context import Context
from snoozeql.services.inventory import InventoryService
from tests.support.inventory import add_discovered


def add(ctx: Context, name: str, status: InstanceStatus, cost: str | None = "10",
        kind: InstanceKind = InstanceKind.INSTANCE, cluster: str | None = None,
        missing: bool = False, provider: ProviderKind = ProviderKind.AWS) -> UUID:
    d = DiscoveredInstance(
        provider=provider, provider_id=f"arn:{name}", kind=kind, name=name,
        engine="postgres", engine_version="16", instance_class="db.t3.micro",
        region="us-east-1", status=status, raw_status=status.value,
        cluster_provider_id=f"arn:{cluster}" if cluster else None,
    )
    with ctx.engine.begin() as conn:
        return add_discovered(conn, d, None, ctx.now(), Decimal(cost) if cost else None,
                              missing_since=datetime(2026, 1, 1, tzinfo=UTC) if missing else None)


def test_fleet_summary_counts_and_costs(ctx: Context) -> None:
    add(ctx, "a", InstanceStatus.RUNNING, "12.5")
    add(ctx, "b", InstanceStatus.STOPPED, "30")
    add(ctx, "c", InstanceStatus.RUNNING, None, provider=ProviderKind.LOCAL)
    add(ctx, "gone", InstanceStatus.RUNNING, "99", missing=True)  # not counted
    s = InventoryService(ctx).summary()
    assert s.total == 3
    assert s.by_provider == {"aws": 2, "local": 1}
    assert s.by_status == {"running": 2, "stopped": 1}
    assert s.by_account == {None: 3}
    assert (s.running_cost_cents, s.all_running_cost_cents) == (Decimal("12.5"), Decimal("42.5"))


def test_bulk_check_leaves_out_what_would_only_be_refused(ctx: Context) -> None:
    add(ctx, "up", InstanceStatus.RUNNING)
    add(ctx, "down", InstanceStatus.STOPPED)
    add(ctx, "going", InstanceStatus.STOPPING)
    add(ctx, "lost", InstanceStatus.RUNNING, missing=True)
    add(ctx, "c1", InstanceStatus.RUNNING, kind=InstanceKind.CLUSTER)
    add(ctx, "c1-m0", InstanceStatus.RUNNING, cluster="c1")
    svc = BulkService(ctx)
    everything = svc.resolve_filter(InventoryService(ctx).build_filter())
    assert [s.instance.name for s in everything.skipped] == ["c1-m0"]

    stop = svc.check("stop", everything)
    assert sorted(i.name for i in stop.instances) == ["c1", "up"]
    assert {s.instance.name: s.reason for s in stop.skipped} == {
        "c1-m0": "member of cluster c1, which is selected",
        "down": "already stopped", "going": "already stopping",
        "lost": "missing since 2026-01-01 00:00 UTC (not seen by the last sync)",
    }
    start = svc.check("start", everything)
    assert sorted(i.name for i in start.instances) == ["down", "going"]
    restart = svc.check("restart", everything)
    assert "down: stopped, not running; start it" in [
        f"{s.instance.name}: {s.reason}" for s in restart.skipped]
    with pytest.raises(ValidationError, match="unknown action"):
        svc.check("explode", everything)


def test_select_all_matching_is_capped(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(4):
        add(ctx, f"db-{n}", InstanceStatus.RUNNING)
    monkeypatch.setattr(bulk_module, "MAX_REFS", 3)
    svc = BulkService(ctx)
    with pytest.raises(ValidationError, match="more than 3 instances match; act on at most 3"):
        svc.resolve_filter(InventoryService(ctx).build_filter())
    assert InventoryService(ctx).count(InventoryService(ctx).build_filter(), cap=2) == 2
    f = InventoryService(ctx).build_filter(text="db-1")
    assert [i.name for i in svc.resolve_filter(f).instances] == ["db-1"]
