"""Discovery and lifecycle services against moto's server, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from snoozeql.domain.errors import ActionRefused, ConflictError, NotFoundError, ValidationError
from snoozeql.domain.types import AccountStatus, InstanceKind, InstanceStatus
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.accounts import AccountService
from snoozeql.services.actions import ActionLogService
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.inventory import InventoryService
from snoozeql.services.lifecycle import LifecycleService
from snoozeql.store.instances import instances as instances_t
from tests.support.moto_server import free_port


@pytest.fixture
def aws_ctx(ctx, aws_env):  # noqa: ANN001, ANN201
    """A service context whose AWS calls go to moto with small timeouts."""
    ctx.settings = ctx.settings.model_copy(update={
        "aws_connect_timeout": 1.0, "aws_max_attempts": 2, "discovery_workers": 4,
    })
    ctx.providers = ProviderRegistry(ctx.settings)
    return ctx


def _add(ctx, aws_env, regions=("us-east-1", "eu-west-1"), name="dev-account", **cfg):  # noqa: ANN001, ANN201
    return AccountService(ctx).add(
        "aws", name, {"regions": ",".join(regions), "endpoint_url": aws_env.endpoint_url, **cfg}
    )


def _stored(ctx) -> int:  # noqa: ANN001
    with ctx.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(instances_t)).scalar_one()


def test_sync_discovers_instances_and_clusters_across_regions(aws_ctx, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 80, prefix="use", tags={"env": "dev"})
    aws_env.create_instances("eu-west-1", 75, prefix="euw", engine="mysql", tags={"env": "prod"})
    members = aws_env.create_aurora_cluster("eu-west-1", "reports", members=2)
    _add(aws_ctx, aws_env)
    progress: list[str] = []

    report = DiscoveryService(aws_ctx).sync("dev-account", progress=progress.append)

    assert report.status == AccountStatus.CONNECTED, report.error
    assert report.found == 80 + 75 + 2 + 1
    assert report.new == report.found and report.missing == 0
    assert progress, "a sync reports its progress"
    account = AccountService(aws_ctx).get("dev-account")
    assert account.status == AccountStatus.CONNECTED
    assert account.last_sync_at is not None and account.last_error is None

    inv = InventoryService(aws_ctx)
    assert len(inv.list_all(inv.build_filter(region="us-east-1"))) == 80
    assert len(inv.list_all(inv.build_filter(tags=["env=prod"]))) == 75
    assert len(inv.list_all(inv.build_filter(engine="mysql", account="dev-account"))) == 75
    cluster = inv.get("reports")
    assert cluster.kind == InstanceKind.CLUSTER and cluster.node_count == 2
    assert sorted(m.name for m in inv.members(cluster)) == sorted(members)
    assert inv.get(members[0]).cluster_provider_id == cluster.provider_id
    one = inv.get("use-0007")
    assert one.provider_id.startswith("arn:aws:rds:us-east-1:")
    assert one.status == InstanceStatus.RUNNING and one.raw_status == "available"
    assert one.tags == {"env": "dev"} and one.endpoint_port
    assert one.hourly_cost_cents is None  # no price known: never an invented number


def test_resync_marks_deleted_instances_missing_and_keeps_them(aws_ctx, aws_env) -> None:  # noqa: ANN001
    names = aws_env.create_instances("us-east-1", 5)
    _add(aws_ctx, aws_env, regions=("us-east-1",))
    svc = DiscoveryService(aws_ctx)
    first_at = aws_ctx.now()
    aws_ctx.clock = lambda: first_at
    first = svc.sync("dev-account")
    rds = aws_env.client("rds", "us-east-1")
    for gone in names[:2]:
        rds.delete_db_instance(DBInstanceIdentifier=gone, SkipFinalSnapshot=True)
    t0 = aws_ctx.now()
    aws_ctx.clock = lambda: t0 + timedelta(minutes=5)

    second = svc.sync("dev-account")

    assert second.missing == 2 and second.new == 0 and second.found == 3
    assert second.changed == 0  # the three left are as they were: not rewritten
    inv = InventoryService(aws_ctx)
    missing = inv.list_all(inv.build_filter(missing=True))
    assert sorted(i.name for i in missing) == names[:2]
    assert all(i.missing_since == t0 + timedelta(minutes=5) for i in missing)
    assert all(i.last_seen_at == first_at for i in missing)
    # Unchanged and not rewritten, yet seen by the second sync.
    assert {i.last_seen_at for i in inv.list_all(inv.build_filter(missing=False))} == {
        t0 + timedelta(minutes=5)}
    assert _stored(aws_ctx) == first.found  # nothing deleted
    with pytest.raises(ActionRefused, match="not seen by the last sync"):
        LifecycleService(aws_ctx).act(names[0], "start", actor="cli")


def test_failed_sync_keeps_inventory_and_says_why(aws_ctx, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 3)
    _add(aws_ctx, aws_env, regions=("us-east-1",))
    svc = DiscoveryService(aws_ctx)
    assert svc.sync("dev-account").status == AccountStatus.CONNECTED
    with aws_ctx.engine.connect() as conn:
        before = conn.execute(sa.select(instances_t).order_by(instances_t.c.id)).all()

    dead = f"http://127.0.0.1:{free_port()}"
    AccountService(aws_ctx).update("dev-account", {"endpoint_url": dead})
    report = svc.sync("dev-account")

    assert report.status == AccountStatus.FAILED
    account = AccountService(aws_ctx).get("dev-account")
    assert account.status == AccountStatus.FAILED
    assert "us-east-1" in account.last_error and "testing-secret" not in account.last_error
    assert account.last_sync_at is not None  # the last good sync is still shown
    with aws_ctx.engine.connect() as conn:
        after = conn.execute(sa.select(instances_t).order_by(instances_t.c.id)).all()
    assert after == before


def test_bad_credentials_fail_the_account(aws_ctx, aws_env, moto_server_auth) -> None:  # noqa: ANN001
    AccountService(aws_ctx).add(
        "aws", "locked", {"regions": "us-east-1", "endpoint_url": moto_server_auth.url}
    )
    report = DiscoveryService(aws_ctx).sync("locked")
    assert report.status == AccountStatus.FAILED
    assert "InvalidClientTokenId" in report.error or "security token" in report.error
    assert "testing-secret" not in report.error


def test_a_running_sync_is_not_started_twice(aws_ctx, aws_env) -> None:  # noqa: ANN001
    account = _add(aws_ctx, aws_env, regions=("us-east-1",))
    DiscoveryService(aws_ctx)._begin(account)
    with pytest.raises(ConflictError, match="already being synced"):
        DiscoveryService(aws_ctx).sync("dev-account")


def test_lifecycle_acts_through_aws_and_logs_every_attempt(aws_ctx, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 2)
    members = aws_env.create_aurora_cluster("us-east-1", "orders", members=2)
    _add(aws_ctx, aws_env, regions=("us-east-1",))
    DiscoveryService(aws_ctx).sync("dev-account")
    life = LifecycleService(aws_ctx)

    stopped = life.act("db-0000", "stop", actor="cli")
    assert stopped.instance.status in (InstanceStatus.STOPPING, InstanceStatus.STOPPED)
    rds = aws_env.client("rds", "us-east-1")
    live = rds.describe_db_instances(DBInstanceIdentifier="db-0000")["DBInstances"][0]
    assert live["DBInstanceStatus"] in ("stopping", "stopped")
    started = life.act(stopped.instance.id, "start", actor="ops-key")
    assert started.instance.status in (InstanceStatus.STARTING, InstanceStatus.RUNNING)
    life.act("db-0001", "restart", actor="cli")

    with pytest.raises(ActionRefused, match="cluster"):
        life.act(members[0], "stop", actor="cli")
    cluster = life.act("orders", "stop", actor="cli")
    assert cluster.instance.kind == InstanceKind.CLUSTER
    live_c = rds.describe_db_clusters(DBClusterIdentifier="orders")["DBClusters"][0]
    assert live_c["Status"] in ("stopping", "stopped")

    log = ActionLogService(aws_ctx).list()
    assert [(r.action, r.instance_name, r.result) for r in reversed(log)] == [
        ("stop", "db-0000", "ok"), ("start", "db-0000", "ok"), ("restart", "db-0001", "ok"),
        ("stop", members[0], "refused"), ("stop", "orders", "ok"),
    ]
    refused = log[1]
    assert "cluster" in refused.error and refused.reason == "manual"
    assert log[3].actor == "ops-key"
    assert ActionLogService(aws_ctx).list(instance="db-0000")[0].action == "start"


def test_unknown_and_ambiguous_references(aws_ctx, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 1, prefix="same")
    aws_env.create_instances("eu-west-1", 1, prefix="same")
    _add(aws_ctx, aws_env)
    DiscoveryService(aws_ctx).sync("dev-account")
    inv = InventoryService(aws_ctx)
    with pytest.raises(NotFoundError):
        inv.get("nope")
    with pytest.raises(ConflictError, match="use an id"):
        inv.get("same-0000")
    both = inv.list_all(inv.build_filter(text="same-0000"))
    assert inv.get(both[0].provider_id).id == both[0].id
    with pytest.raises(ValidationError, match="action"):
        LifecycleService(aws_ctx).act(both[0].id, "explode", actor="cli")


def test_price_table_gives_costs_and_cluster_cost_per_node(aws_ctx, aws_env, tmp_path) -> None:  # noqa: ANN001
    table = tmp_path / "prices.json"
    table.write_text(json.dumps({"price": [
        {"provider": "aws", "instance_class": "db.t3.micro", "usd_per_hour": 0.018,
         "engine": "postgres", "region": "us-east-1"},
        {"provider": "aws", "instance_class": "db.t3.micro", "usd_per_hour": 0.5},
        {"provider": "aws", "instance_class": "db.r6g.large", "usd_per_hour": 0.26},
    ]}))
    aws_ctx.settings = aws_ctx.settings.model_copy(update={"price_table": table})
    aws_env.create_instances("us-east-1", 1, prefix="pg")
    aws_env.create_instances("us-east-1", 1, prefix="my", engine="mysql")
    aws_env.create_instances("us-east-1", 1, prefix="big", instance_class="db.m5.large")
    aws_env.create_aurora_cluster("us-east-1", "c1", members=2)
    _add(aws_ctx, aws_env, regions=("us-east-1",))
    DiscoveryService(aws_ctx).sync("dev-account")
    inv = InventoryService(aws_ctx)
    assert inv.get("pg-0000").hourly_cost_cents == Decimal("1.8")  # most specific entry
    assert inv.get("my-0000").hourly_cost_cents == Decimal("50")  # wildcard engine/region
    assert inv.get("big-0000").hourly_cost_cents is None  # unknown stays unknown
    assert inv.get("c1").hourly_cost_cents == Decimal("26")  # mean of members, per node


def test_account_input_is_validated(ctx) -> None:  # noqa: ANN001
    svc = AccountService(ctx)
    with pytest.raises(ValidationError, match="region"):
        svc.add("aws", "a1", {"regions": "mars-1"})
    with pytest.raises(ValidationError, match="at least one region"):
        svc.add("aws", "a1", {})
    with pytest.raises(ValidationError, match="external-id"):
        svc.add("aws", "a1", {"regions": "us-east-1", "external_id": "x"})
    with pytest.raises(ValidationError, match="IAM role ARN"):
        svc.add("aws", "a1", {"regions": "us-east-1", "role_arn": "role"})
    with pytest.raises(ValidationError, match="unknown provider"):
        svc.add("azure", "a1", {})
    with pytest.raises(ValidationError, match="project"):
        svc.add("gcp", "a1", {"regions": "us-east-1"})
    svc.add("aws", "a1", {"regions": "us-east-1"})
    with pytest.raises(ConflictError, match="already exists"):
        svc.add("aws", "a1", {"regions": "us-east-1"})
    assert [a.name for a in svc.list()] == ["a1"]
