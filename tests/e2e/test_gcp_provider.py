"""GcpProvider against the local Cloud SQL Admin API test server (tests/support/gcp_api.py).

The real Google client library does the HTTP, OAuth and retries; the server is the
test double written from the public REST reference (no emulator exists).
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from snoozeql.config import Settings
from snoozeql.domain.errors import ActionRefused, ProviderError
from snoozeql.domain.types import (
    Account,
    Instance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.providers.gcp.driver import (
    GcpProvider,
    instance_from_resource,
    parse_database_version,
    split_provider_id,
)
from tests.support.gcp_api import GcpApiServer, ServiceAccountKey

MakeAccount = Callable[..., Account]

LIST = "/v1/projects/{project}/instances"
GET = "/v1/projects/{project}/instances/{instance}"
RESTART = "/v1/projects/{project}/instances/{instance}/restart"
OPERATION = "/v1/projects/{project}/operations/{operation}"


@pytest.fixture
def provider(tmp_path: Path) -> GcpProvider:
    # Polls every millisecond so operations that take several polls stay fast.
    return GcpProvider(
        Settings(data_dir=tmp_path),
        operation_poll_interval=0.001,
        operation_timeout=30,
        num_retries=3,
        http_timeout=10,
    )


def stored(provider_id: str, name: str | None = None) -> Instance:
    """An inventory record as the lifecycle service hands it to the provider."""
    now = datetime.now(UTC)
    return Instance(
        id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        provider=ProviderKind.GCP,
        provider_id=provider_id,
        kind=InstanceKind.INSTANCE,
        name=name or provider_id.rsplit(":", 1)[1],
        engine="postgres",
        engine_version="15",
        instance_class="db-custom-1-3840",
        region="us-central1",
        status=InstanceStatus.RUNNING,
        raw_status="RUNNABLE/ALWAYS",
        tags={},
        endpoint_host=None,
        endpoint_port=None,
        multi_az=False,
        node_count=1,
        cluster_provider_id=None,
        hourly_cost_cents=None,
        first_seen_at=now,
        last_seen_at=now,
        missing_since=None,
    )


# -- discovery ------------------------------------------------------------------------


def test_discovers_over_600_instances_in_two_projects_paging_at_500(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instances("proj-a", 550)
    gcp_api.add_instances("proj-b", 120, database_version="MYSQL_8_0")

    found = provider.discover(gcp_account("proj-a", "proj-b"))

    assert len(found) == 670
    ids = {i.provider_id for i in found}
    assert len(ids) == 670
    assert "proj-a:db-0549" in ids and "proj-b:db-0119" in ids
    # proj-a needs two pages (500 + 50), proj-b one.
    assert gcp_api.count("GET", LIST, project="proj-a") == 2
    assert gcp_api.count("GET", LIST, project="proj-b") == 1
    lists = [r for r in gcp_api.requests if r.path.endswith("/instances")]
    assert all(r.query["maxResults"] == ["500"] for r in lists)
    assert sum("pageToken" in r.query for r in lists) == 1
    assert {i.engine for i in found if i.provider_id.startswith("proj-b:")} == {"mysql"}


def test_project_with_no_instances_gives_empty_list(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    assert provider.discover(gcp_account("empty-proj")) == []
    assert gcp_api.count("GET", LIST, project="empty-proj") == 1


def test_maps_a_cloud_sql_instance_to_the_inventory_fields(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instance(
        "proj-a",
        "orders",
        database_version="POSTGRES_15",
        region="europe-west1",
        gce_zone="europe-west1-b",
        tier="db-custom-2-7680",
        availability_type="REGIONAL",
        labels={"env": "staging", "team": "orders"},
        ip_addresses=[
            {"type": "OUTGOING", "ipAddress": "34.1.1.1"},
            {"type": "PRIVATE", "ipAddress": "10.0.0.5"},
            {"type": "PRIMARY", "ipAddress": "35.2.2.2"},
        ],
    )
    gcp_api.add_instance(
        "proj-a",
        "orders-replica",
        database_version="POSTGRES_15",
        instance_type="READ_REPLICA_INSTANCE",
        master_instance_name="proj-a:orders",
        ip_addresses=[{"type": "PRIVATE", "ipAddress": "10.0.0.6"}],
    )
    gcp_api.add_instance("proj-a", "legacy", database_version="SQLSERVER_2019_STANDARD")

    found = {i.name: i for i in provider.discover(gcp_account("proj-a"))}

    orders = found["orders"]
    assert orders.provider is ProviderKind.GCP
    assert orders.provider_id == "proj-a:orders"
    assert orders.kind is InstanceKind.INSTANCE
    assert (orders.engine, orders.engine_version) == ("postgres", "15")
    assert orders.instance_class == "db-custom-2-7680"
    assert orders.region == "europe-west1"
    assert orders.tags == {"env": "staging", "team": "orders"}
    assert (orders.endpoint_host, orders.endpoint_port) == ("35.2.2.2", 5432)
    assert orders.multi_az is True
    assert (orders.status, orders.raw_status) == (InstanceStatus.RUNNING, "RUNNABLE/ALWAYS")
    assert orders.extra["project"] == "proj-a"
    assert orders.extra["instance_type"] == "CLOUD_SQL_INSTANCE"
    assert orders.extra["zone"] == "europe-west1-b"
    assert orders.extra["replica_names"] == ["orders-replica"]

    replica = found["orders-replica"]
    assert replica.extra["master_instance_name"] == "proj-a:orders"
    assert replica.extra["instance_type"] == "READ_REPLICA_INSTANCE"
    assert replica.endpoint_host == "10.0.0.6"  # no public address: the private one
    assert replica.multi_az is False

    legacy = found["legacy"]
    assert (legacy.engine, legacy.engine_version, legacy.endpoint_port) == (
        "sqlserver",
        "2019 standard",
        1433,
    )


STATES = [
    ("RUNNABLE", "ALWAYS", InstanceStatus.RUNNING, "RUNNABLE/ALWAYS"),
    ("RUNNABLE", "NEVER", InstanceStatus.STOPPED, "RUNNABLE/NEVER"),
    ("STOPPED", "NEVER", InstanceStatus.STOPPED, "STOPPED/NEVER"),
    ("SUSPENDED", "ALWAYS", InstanceStatus.FAILED, "SUSPENDED/ALWAYS"),
    ("MAINTENANCE", "ALWAYS", InstanceStatus.PENDING, "MAINTENANCE/ALWAYS"),
    ("PENDING_CREATE", "ALWAYS", InstanceStatus.PENDING, "PENDING_CREATE/ALWAYS"),
    ("PENDING_DELETE", "ALWAYS", InstanceStatus.PENDING, "PENDING_DELETE/ALWAYS"),
    ("REPAIRING", "ALWAYS", InstanceStatus.PENDING, "REPAIRING/ALWAYS"),
    ("FAILED", "ALWAYS", InstanceStatus.FAILED, "FAILED/ALWAYS"),
    ("UNKNOWN_STATE", "ALWAYS", InstanceStatus.UNKNOWN, "UNKNOWN_STATE/ALWAYS"),
    (
        "SQL_INSTANCE_STATE_UNSPECIFIED",
        "ALWAYS",
        InstanceStatus.UNKNOWN,
        "SQL_INSTANCE_STATE_UNSPECIFIED/ALWAYS",
    ),
]


def test_normalizes_every_state_and_keeps_the_raw_one(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    for i, (state, policy, _, _) in enumerate(STATES):
        gcp_api.add_instance("proj-s", f"s{i:02d}", state=state, activation_policy=policy)

    found = {i.name: i for i in provider.discover(gcp_account("proj-s"))}

    got = [(found[f"s{i:02d}"].status, found[f"s{i:02d}"].raw_status) for i in range(len(STATES))]
    assert got == [(status, raw) for _, _, status, raw in STATES]


@pytest.mark.parametrize(
    ("database_version", "expected"),
    [
        ("POSTGRES_15", ("postgres", "15")),
        ("POSTGRES_9_6", ("postgres", "9.6")),
        ("MYSQL_8_0", ("mysql", "8.0")),
        ("MYSQL_8_0_31", ("mysql", "8.0.31")),
        ("MYSQL_5_7", ("mysql", "5.7")),
        ("SQLSERVER_2019_STANDARD", ("sqlserver", "2019 standard")),
        ("SQLSERVER_2022_ENTERPRISE", ("sqlserver", "2022 enterprise")),
        ("SQL_DATABASE_VERSION_UNSPECIFIED", ("unknown", None)),
        (None, ("unknown", None)),
    ],
)
def test_engine_and_version_come_from_database_version(
    database_version: str | None, expected: tuple[str, str | None]
) -> None:
    assert parse_database_version(database_version) == expected


def test_instance_without_settings_or_addresses_still_maps() -> None:
    inst = instance_from_resource("p", {"name": "bare", "state": "RUNNABLE"})
    assert inst.provider_id == "p:bare"
    assert (inst.status, inst.raw_status) == (InstanceStatus.RUNNING, "RUNNABLE")
    assert (inst.engine, inst.endpoint_host, inst.endpoint_port, inst.tags) == (
        "unknown",
        None,
        None,
        {},
    )


def test_provider_id_splits_on_the_last_colon_for_domain_scoped_projects() -> None:
    assert split_provider_id("example.com:analytics:pg-1") == ("example.com:analytics", "pg-1")
    assert split_provider_id("proj-a:db") == ("proj-a", "db")
    with pytest.raises(ProviderError):
        split_provider_id("no-colon")


def test_denied_project_fails_the_whole_discovery_naming_it(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instances("proj-a", 3)
    gcp_api.add_instances("proj-b", 3)
    gcp_api.deny_project("proj-b", "Cloud SQL Admin API has not been used in project proj-b.")

    with pytest.raises(ProviderError) as err:
        provider.discover(gcp_account("proj-a", "proj-b"))

    message = err.value.message
    assert "proj-b" in message
    assert "proj-a" not in message
    assert "permission denied" in message and "PERMISSION_DENIED" in message
    assert "has not been used in project proj-b" in message
    # 403 is not retried: one call for the denied project.
    assert gcp_api.count("GET", LIST, project="proj-b") == 1


def test_every_failed_project_is_named(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.deny_project("proj-x")
    gcp_api.deny_project("proj-y")
    with pytest.raises(ProviderError) as err:
        provider.discover(gcp_account("proj-x", "ok-proj", "proj-y"))
    assert "proj-x" in err.value.message and "proj-y" in err.value.message
    assert "ok-proj" not in err.value.message


def test_throttled_and_unavailable_answers_are_retried_then_succeed(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instances("proj-a", 2)
    gcp_api.fail_next("proj-a", 429, 503)

    found = provider.discover(gcp_account("proj-a"))

    assert sorted(i.name for i in found) == ["db-0000", "db-0001"]
    statuses = [r.status for r in gcp_api.requests if r.project == "proj-a"]
    assert statuses == [429, 503, 200]


def test_throttling_past_the_retries_is_a_provider_error(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, tmp_path: Path
) -> None:
    provider = GcpProvider(Settings(data_dir=tmp_path), num_retries=2)
    gcp_api.add_instances("proj-a", 1)
    gcp_api.fail_next("proj-a", 429, 429, 429, 429)

    with pytest.raises(ProviderError) as err:
        provider.discover(gcp_account("proj-a"))

    assert "proj-a" in err.value.message
    assert "after 2 retries" in err.value.message and "RESOURCE_EXHAUSTED" in err.value.message
    assert gcp_api.count("GET", LIST, project="proj-a") == 3  # first try + 2 retries


def test_incomplete_list_with_unreachable_region_fails_instead_of_returning_part(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instance("proj-a", "near", region="us-central1")
    gcp_api.add_instance("proj-a", "far", region="asia-east1")
    gcp_api.make_region_unreachable("proj-a", "asia-east1")

    with pytest.raises(ProviderError) as err:
        provider.discover(gcp_account("proj-a"))
    assert "proj-a" in err.value.message and "REGION_UNREACHABLE" in err.value.message


def test_account_without_projects_is_an_error(
    gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    with pytest.raises(ProviderError, match="no projects"):
        provider.discover(gcp_account())


def test_unreachable_endpoint_is_a_provider_error(gcp_account: MakeAccount, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    account = gcp_account("proj-a")
    account.config["api_endpoint"] = f"http://127.0.0.1:{closed_port}"
    provider = GcpProvider(Settings(data_dir=tmp_path), num_retries=1)

    with pytest.raises(ProviderError) as err:
        provider.discover(account)
    assert "proj-a" in err.value.message and "cannot reach" in err.value.message


# -- credentials -----------------------------------------------------------------------


def test_service_account_key_file_gets_a_token_from_the_token_endpoint(
    gcp_api: GcpApiServer,
    gcp_account: MakeAccount,
    gcp_service_account: ServiceAccountKey,
    provider: GcpProvider,
    tmp_path: Path,
) -> None:
    # A copy at a new path: not in the provider's process-wide credentials cache.
    key_file = tmp_path / "key.json"
    key_file.write_text(gcp_service_account.path.read_text())
    account = gcp_account("proj-a")
    account.config["credentials_file"] = str(key_file)
    gcp_api.add_instances("proj-a", 1)

    provider.discover(account)

    assert gcp_api.state.token_grants == [gcp_service_account.email]
    assert [r.status for r in gcp_api.requests] == [200]  # authorized on the first try


def test_credentials_and_their_token_are_reused_across_calls(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, tmp_path: Path
) -> None:
    gcp_api.add_instances("proj-a", 1)
    account = gcp_account("proj-a")
    GcpProvider(Settings(data_dir=tmp_path)).discover(account)
    grants = len(gcp_api.state.token_grants)

    GcpProvider(Settings(data_dir=tmp_path)).discover(account)
    GcpProvider(Settings(data_dir=tmp_path)).discover(account)

    assert len(gcp_api.state.token_grants) == grants
    assert gcp_api.count("GET", LIST) == 3


def test_application_default_credentials_are_used_without_a_key_file(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instances("proj-a", 2)
    account = gcp_account("proj-a", adc=True)
    assert account.config["credentials_file"] is None

    assert len(provider.discover(account)) == 2


def test_key_the_token_endpoint_rejects_is_a_provider_error_without_the_key(
    gcp_api: GcpApiServer,
    gcp_account: MakeAccount,
    gcp_service_account: ServiceAccountKey,
    provider: GcpProvider,
    tmp_path: Path,
) -> None:
    # Same service account, but signed with a key the "Google" side does not know.
    info = json.loads(gcp_service_account.path.read_text())
    rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = rogue.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key_file = tmp_path / "rogue.json"
    key_file.write_text(json.dumps(info))
    account = gcp_account("proj-a")
    account.config["credentials_file"] = str(key_file)

    with pytest.raises(ProviderError) as err:
        provider.discover(account)

    assert "rejected the credentials" in err.value.message
    assert "Invalid JWT Signature" in err.value.message
    assert "PRIVATE KEY" not in err.value.message
    assert gcp_api.count("GET", LIST) == 0


def test_missing_key_file_is_a_provider_error(
    gcp_account: MakeAccount, provider: GcpProvider, tmp_path: Path
) -> None:
    account = gcp_account("proj-a")
    account.config["credentials_file"] = str(tmp_path / "nope.json")
    # the same message as for a file outside the credentials directory (issue 14)
    with pytest.raises(ProviderError, match="not a key file in the credentials directory"):
        provider.discover(account)


def test_requests_without_a_valid_token_are_refused_by_the_server(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    """Guards the double itself: auth really is checked, so the tests above mean something."""
    import httplib2

    resp, _ = httplib2.Http().request(f"{gcp_api.url}/v1/projects/proj-a/instances")
    assert resp.status == 401


# -- lifecycle -------------------------------------------------------------------------


def test_stop_patches_activation_policy_and_follows_the_operation(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instance("proj-a", "pg")
    gcp_api.state.operation_polls = 3

    outcome = provider.stop(gcp_account("proj-a"), stored("proj-a:pg"))

    assert outcome.status is InstanceStatus.STOPPED
    assert outcome.raw_status == "RUNNABLE/NEVER"
    assert outcome.message and "UPDATE" in outcome.message
    assert gcp_api.instance("proj-a", "pg").activation_policy == "NEVER"
    assert gcp_api.count("PATCH", GET) == 1
    assert gcp_api.count("GET", OPERATION) == 4  # three RUNNING answers, then DONE


def test_start_patches_activation_policy_back_to_always(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instance("proj-a", "pg", activation_policy="NEVER")

    outcome = provider.start(gcp_account("proj-a"), stored("proj-a:pg"))

    assert (outcome.status, outcome.raw_status) == (InstanceStatus.RUNNING, "RUNNABLE/ALWAYS")
    assert gcp_api.instance("proj-a", "pg").activation_policy == "ALWAYS"
    assert gcp_api.count("GET", OPERATION) == 3


def test_restart_calls_instances_restart_and_waits(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instance("proj-a", "pg")
    gcp_api.state.operation_polls = 4

    outcome = provider.restart(gcp_account("proj-a"), stored("proj-a:pg"))

    assert outcome.status is InstanceStatus.RUNNING
    assert outcome.message and "RESTART" in outcome.message
    assert gcp_api.instance("proj-a", "pg").restart_count == 1
    assert gcp_api.count("POST", RESTART) == 1
    assert gcp_api.count("GET", OPERATION) == 5


def test_lifecycle_works_for_a_domain_scoped_project(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instance("example.com:analytics", "pg")
    outcome = provider.stop(
        gcp_account("example.com:analytics"), stored("example.com:analytics:pg")
    )
    assert outcome.status is InstanceStatus.STOPPED
    assert gcp_api.instance("example.com:analytics", "pg").activation_policy == "NEVER"


def test_stop_of_a_stopped_instance_changes_nothing(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instance("proj-a", "pg", activation_policy="NEVER")

    outcome = provider.stop(gcp_account("proj-a"), stored("proj-a:pg"))

    assert outcome.status is InstanceStatus.STOPPED
    assert outcome.message and "already stopped" in outcome.message
    assert gcp_api.count("PATCH", GET) == 0


def test_failed_operation_is_a_provider_error_with_its_reason(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instance("proj-a", "pg")
    gcp_api.fail_operation("proj-a", "pg", "INTERNAL_ERROR", "Disk quota exceeded in zone.")

    with pytest.raises(ProviderError) as err:
        provider.stop(gcp_account("proj-a"), stored("proj-a:pg"))

    assert "proj-a:pg" in err.value.message
    assert "failed: INTERNAL_ERROR: Disk quota exceeded in zone." in err.value.message
    assert gcp_api.instance("proj-a", "pg").activation_policy == "ALWAYS"


def test_operation_that_never_finishes_times_out_with_a_clear_message(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, tmp_path: Path
) -> None:
    provider = GcpProvider(
        Settings(data_dir=tmp_path), operation_poll_interval=0.001, operation_timeout=0.05
    )
    gcp_api.add_instance("proj-a", "pg")
    gcp_api.state.operation_polls = 1_000_000

    with pytest.raises(ProviderError) as err:
        provider.stop(gcp_account("proj-a"), stored("proj-a:pg"))

    assert "did not finish within 0.05s" in err.value.message
    assert "last status RUNNING" in err.value.message


@pytest.mark.parametrize("action", ["stop", "start", "restart"])
def test_read_replica_is_refused_before_anything_changes(
    action: str, gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instance("proj-a", "primary")
    gcp_api.add_instance(
        "proj-a",
        "replica",
        instance_type="READ_REPLICA_INSTANCE",
        master_instance_name="proj-a:primary",
    )

    with pytest.raises(ActionRefused) as err:
        getattr(provider, action)(gcp_account("proj-a"), stored("proj-a:replica"))

    assert "read replicas cannot be stopped" in err.value.message
    assert "proj-a:replica" in err.value.message
    assert gcp_api.count("PATCH", GET) == 0 and gcp_api.count("POST", RESTART) == 0


def test_instance_with_a_master_is_a_replica_even_without_the_type(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instance("proj-a", "r", instance_type="", master_instance_name="proj-a:p")
    with pytest.raises(ActionRefused, match="read replicas cannot be stopped"):
        provider.stop(gcp_account("proj-a"), stored("proj-a:r"))


def test_restart_of_a_stopped_instance_is_refused(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instance("proj-a", "pg", activation_policy="NEVER")
    with pytest.raises(ActionRefused, match="it is stopped; start it instead"):
        provider.restart(gcp_account("proj-a"), stored("proj-a:pg"))
    assert gcp_api.count("POST", RESTART) == 0


def test_stop_of_an_instance_in_maintenance_is_refused(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instance("proj-a", "pg", state="MAINTENANCE")
    with pytest.raises(ActionRefused, match="state MAINTENANCE"):
        provider.stop(gcp_account("proj-a"), stored("proj-a:pg"))
    assert gcp_api.count("PATCH", GET) == 0


def test_vanished_instance_is_a_clear_provider_error(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    with pytest.raises(ProviderError) as err:
        provider.stop(gcp_account("proj-a"), stored("proj-a:gone"))
    assert "proj-a:gone" in err.value.message
    assert "not found in GCP" in err.value.message and "404" in err.value.message


def test_lifecycle_call_is_retried_after_throttling(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instance("proj-a", "pg")
    gcp_api.fail_next("proj-a", 503, 429)  # hits the first instances.get

    outcome = provider.stop(gcp_account("proj-a"), stored("proj-a:pg"))

    assert outcome.status is InstanceStatus.STOPPED
    assert [r.status for r in gcp_api.requests][:3] == [503, 429, 200]


def test_lifecycle_in_a_denied_project_is_a_provider_error(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    gcp_api.add_instance("proj-a", "pg")
    gcp_api.deny_project("proj-a")
    with pytest.raises(ProviderError, match="permission denied"):
        provider.stop(gcp_account("proj-a"), stored("proj-a:pg"))


def test_status_reads_the_state_without_changing_anything(
    gcp_api: GcpApiServer, gcp_account: MakeAccount, provider: GcpProvider
) -> None:
    """What a takeover reads to resolve a dead replica's pending action (issue 13)."""
    gcp_api.add_instance("proj-a", "pg", activation_policy="NEVER")
    outcome = provider.status(gcp_account("proj-a"), stored("proj-a:pg"))
    assert (outcome.status, outcome.raw_status) == (InstanceStatus.STOPPED, "RUNNABLE/NEVER")
    assert gcp_api.count("PATCH", GET) == 0
