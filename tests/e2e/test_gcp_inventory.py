"""GCP accounts through the services, API and CLI, against the Cloud SQL test server."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from snoozeql.domain.errors import ActionRefused, ValidationError
from snoozeql.domain.types import AccountStatus, InstanceStatus
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.accounts import AccountService
from snoozeql.services.actions import ActionLogService
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.inventory import InventoryService
from snoozeql.services.lifecycle import LifecycleService


@pytest.fixture
def gcp_ctx(ctx, gcp_api, gcp_service_account):  # noqa: ANN001, ANN201
    ctx.settings = ctx.settings.model_copy(update={"gcp_operation_poll_seconds": 0.01})
    ctx.providers = ProviderRegistry(ctx.settings)
    return ctx


def _add(ctx, gcp_api, key, projects=("proj-a", "proj-b")):  # noqa: ANN001, ANN201
    return AccountService(ctx).add("gcp", "analytics", {
        "projects": ",".join(projects), "credentials_file": str(key.path),
        "api_endpoint": gcp_api.url,
    })


def test_gcp_sync_fills_the_same_inventory(gcp_ctx, gcp_api, gcp_service_account) -> None:  # noqa: ANN001
    gcp_api.add_instances("proj-a", 30, prefix="pa", labels={"env": "dev"})
    gcp_api.add_instances("proj-b", 20, prefix="pb", database_version="MYSQL_8_0",
                          activation_policy="NEVER")
    account = _add(gcp_ctx, gcp_api, gcp_service_account)
    assert str(gcp_service_account.path) == account.config["credentials_file"]

    report = DiscoveryService(gcp_ctx).sync("analytics")

    assert report.status == AccountStatus.CONNECTED, report.error
    assert report.found == 50
    inv = InventoryService(gcp_ctx)
    one = inv.get("proj-a:pa-0003")
    assert (one.provider.value, one.engine, one.engine_version) == ("gcp", "postgres", "15")
    assert one.instance_class == "db-custom-1-3840" and one.region == "us-central1"
    assert one.tags == {"env": "dev"} and one.status == InstanceStatus.RUNNING
    stopped = inv.list_all(inv.build_filter(provider="gcp", status="stopped"))
    assert len(stopped) == 20 and {i.engine for i in stopped} == {"mysql"}


def test_gcp_403_project_fails_account_and_keeps_inventory(  # noqa: ANN001
    gcp_ctx, gcp_api, gcp_service_account
) -> None:
    gcp_api.add_instances("proj-a", 3)
    gcp_api.add_instances("proj-b", 3, prefix="b")
    _add(gcp_ctx, gcp_api, gcp_service_account)
    svc = DiscoveryService(gcp_ctx)
    assert svc.sync("analytics").status == AccountStatus.CONNECTED
    gcp_api.deny_project("proj-b")
    report = svc.sync("analytics")
    assert report.status == AccountStatus.FAILED and "proj-b" in report.error
    inv = InventoryService(gcp_ctx)
    assert len(inv.list_all(inv.build_filter(provider="gcp", missing=False))) == 6


def test_gcp_lifecycle_and_replica_refusal(gcp_ctx, gcp_api, gcp_service_account) -> None:  # noqa: ANN001
    gcp_api.add_instance("proj-a", "main")
    gcp_api.add_instance("proj-a", "main-replica", instance_type="READ_REPLICA_INSTANCE",
                         master_instance_name="proj-a:main")
    _add(gcp_ctx, gcp_api, gcp_service_account, projects=("proj-a",))
    DiscoveryService(gcp_ctx).sync("analytics")
    life = LifecycleService(gcp_ctx)
    r = life.act("proj-a:main", "stop", actor="cli")
    assert r.instance.status == InstanceStatus.STOPPED
    assert gcp_api.instance("proj-a", "main").activation_policy == "NEVER"
    assert life.act("proj-a:main", "start", actor="cli").instance.status == InstanceStatus.RUNNING
    with pytest.raises(ActionRefused, match="replica"):
        life.act("proj-a:main-replica", "stop", actor="cli")
    results = [(a.instance_name, a.result) for a in ActionLogService(gcp_ctx).list()]
    assert results == [("main-replica", "refused"), ("main", "ok"), ("main", "ok")]


def test_gcp_account_validation(ctx, tmp_path) -> None:  # noqa: ANN001
    svc = AccountService(ctx)
    with pytest.raises(ValidationError, match="credentials file"):
        svc.add("gcp", "g1", {"projects": "proj-a", "credentials_file": str(tmp_path / "no")})
    with pytest.raises(ValidationError, match="not a GCP project"):
        svc.add("gcp", "g1", {"projects": "Bad_Project"})
    with pytest.raises(ValidationError, match="unknown setting"):
        svc.add("gcp", "g1", {"projects": "proj-a", "regions": "us-east-1"})


def test_gcp_through_the_cli(gcp_api, gcp_service_account, snoozeql_cli, tmp_path) -> None:  # noqa: ANN001
    cli = snoozeql_cli
    cli.env(SNOOZEQL_GCP_OPERATION_POLL_SECONDS="0.01")
    gcp_api.add_instances("proj-a", 2, prefix="x")
    r = cli("accounts", "add", "gcp", "analytics", "--projects", "proj-a",
            "--credentials-file", str(gcp_service_account.path),
            "--api-endpoint", gcp_api.url, "--sync")
    assert r.exit_code == 0 and "connected" in r.output, r.output
    r = cli("instances", "list", "--provider", "gcp", "--json")
    assert sorted(i["provider_id"] for i in json.loads(r.stdout)) == [
        "proj-a:x-0000", "proj-a:x-0001"]
    r = cli("instances", "restart", "proj-a:x-0001")
    assert r.exit_code == 0, r.output
    assert gcp_api.instance("proj-a", "x-0001").restart_count == 1
    # The key file's path is stored, never its content.
    db = (tmp_path / "data" / "snoozeql.db").read_bytes()
    assert b"PRIVATE KEY" not in db


def test_gcp_price_table_by_tier(gcp_ctx, gcp_api, gcp_service_account, tmp_path) -> None:  # noqa: ANN001
    table = tmp_path / "prices.toml"
    table.write_text('[[price]]\nprovider = "gcp"\ninstance_class = "db-custom-1-3840"\n'
                     'region = "us-central1"\nusd_per_hour = 0.0413\n')
    gcp_ctx.settings = gcp_ctx.settings.model_copy(update={"price_table": table})
    gcp_api.add_instance("proj-a", "priced")
    gcp_api.add_instance("proj-a", "unpriced", tier="db-f1-micro")
    _add(gcp_ctx, gcp_api, gcp_service_account, projects=("proj-a",))
    DiscoveryService(gcp_ctx).sync("analytics")
    inv = InventoryService(gcp_ctx)
    assert inv.get("proj-a:priced").hourly_cost_cents == Decimal("4.13")
    assert inv.get("proj-a:unpriced").hourly_cost_cents is None
