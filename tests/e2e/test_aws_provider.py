"""AwsProvider against moto's server over real HTTP (boto3 with endpoint_url).

Throttling, request counting and older answer shapes go through ``aws_proxy``, a
recording proxy in front of moto (see tests/support/aws_stubs.py).
"""

from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.parsers import DEFAULT_TIMESTAMP_PARSER

from snoozeql.domain.errors import ActionRefused, ProviderError
from snoozeql.domain.types import (
    DiscoveredInstance,
    Instance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.providers.aws.config import AwsAccountConfig
from snoozeql.providers.aws.driver import AwsProvider, _parse_timestamp, normalize_status
from tests.support.aws_stubs import AwsRecordingProxy
from tests.support.moto_server import (
    FAKE_SECRET_KEY,
    MOTO_ACCOUNT_ID,
    AwsTestEnv,
    MotoServer,
    free_port,
)


def as_stored(d: DiscoveredInstance) -> Instance:
    """The record the store would hold for a discovered instance."""
    now = datetime.now(UTC)
    return Instance(
        id=uuid.uuid4(),
        account_id=None,
        provider=d.provider,
        provider_id=d.provider_id,
        kind=d.kind,
        name=d.name,
        engine=d.engine,
        engine_version=d.engine_version,
        instance_class=d.instance_class,
        region=d.region,
        status=d.status,
        raw_status=d.raw_status,
        tags=d.tags,
        endpoint_host=d.endpoint_host,
        endpoint_port=d.endpoint_port,
        multi_az=d.multi_az,
        node_count=d.node_count,
        cluster_provider_id=d.cluster_provider_id,
        hourly_cost_cents=None,
        first_seen_at=now,
        last_seen_at=now,
        missing_since=None,
        extra=d.extra,
    )


def by_name(items: list[DiscoveredInstance]) -> dict[str, DiscoveredInstance]:
    return {i.name: i for i in items}


def instance_status(env: AwsTestEnv, region: str, name: str) -> str:
    rds = env.client("rds", region)
    return str(
        rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]["DBInstanceStatus"]
    )


def cluster_status(env: AwsTestEnv, region: str, name: str) -> str:
    rds = env.client("rds", region)
    return str(rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]["Status"])


# ------------------------------------------------------------------------ discovery


def test_discovers_every_instance_in_two_regions_paging_by_100(
    aws_env: AwsTestEnv, aws_proxy: AwsRecordingProxy
) -> None:
    east = aws_env.create_instances("us-east-1", 115, prefix="east", tags={"env": "dev"})
    west = aws_env.create_instances("eu-west-1", 40, prefix="west", engine="mysql")
    account = aws_env.account(["us-east-1", "eu-west-1"], endpoint_url=aws_proxy.url)

    found = AwsProvider(aws_env.settings).discover(account)

    assert len(found) == 155
    assert sorted(i.name for i in found if i.region == "us-east-1") == east
    assert sorted(i.name for i in found if i.region == "eu-west-1") == west
    assert len({i.provider_id for i in found}) == 155
    one = by_name(found)["east-0042"]
    assert one.provider_id == f"arn:aws:rds:us-east-1:{MOTO_ACCOUNT_ID}:db:east-0042"
    assert one.tags == {"env": "dev"}
    assert by_name(found)["west-0001"].engine == "mysql"
    # Paging: 100 per page, the second page asked for with the first page's marker.
    calls = aws_proxy.actions("DescribeDBInstances", "us-east-1")
    assert len(calls) == 2
    assert all(c.params.get("MaxRecords") == "100" for c in calls)
    assert "Marker" not in calls[0].params and calls[1].params.get("Marker")
    assert len(aws_proxy.actions("DescribeDBInstances", "eu-west-1")) == 1
    assert all(c.params.get("MaxRecords") == "100" for c in aws_proxy.actions("DescribeDBClusters"))


def test_maps_a_standalone_instance(aws_env: AwsTestEnv) -> None:
    rds = aws_env.client("rds", "eu-west-1")
    rds.create_db_instance(
        DBInstanceIdentifier="orders",
        Engine="postgres",
        EngineVersion="15.4",
        DBInstanceClass="db.m6g.large",
        MasterUsername="u",
        MasterUserPassword="not-a-pass1",
        AllocatedStorage=50,
        MultiAZ=True,
        Tags=[{"Key": "team", "Value": "payments"}, {"Key": "env", "Value": "prod"}],
    )
    [item] = AwsProvider(aws_env.settings).discover(aws_env.account(["eu-west-1"]))

    assert item.provider == ProviderKind.AWS
    assert item.kind == InstanceKind.INSTANCE
    assert item.provider_id == f"arn:aws:rds:eu-west-1:{MOTO_ACCOUNT_ID}:db:orders"
    assert (item.engine, item.engine_version, item.instance_class) == (
        "postgres",
        "15.4",
        "db.m6g.large",
    )
    assert item.region == "eu-west-1"
    assert (item.status, item.raw_status) == (InstanceStatus.RUNNING, "available")
    assert item.tags == {"team": "payments", "env": "prod"}
    assert item.endpoint_host and item.endpoint_host.startswith("orders.")
    assert item.endpoint_port == 5432
    assert item.multi_az is True
    assert item.node_count == 1
    assert item.cluster_provider_id is None
    assert item.extra["allocated_storage_gb"] == 50


def test_aurora_cluster_lists_its_members_linked_to_it(aws_env: AwsTestEnv) -> None:
    members = aws_env.create_aurora_cluster("us-east-1", "c-1", members=3, tags={"env": "staging"})
    aws_env.create_instances("us-east-1", 1, prefix="solo")

    found = by_name(AwsProvider(aws_env.settings).discover(aws_env.account()))

    cluster = found["c-1"]
    arn = f"arn:aws:rds:us-east-1:{MOTO_ACCOUNT_ID}:cluster:c-1"
    assert cluster.kind == InstanceKind.CLUSTER
    assert cluster.provider_id == arn
    assert cluster.engine == "aurora-postgresql"
    assert cluster.node_count == 3
    assert cluster.instance_class == "db.r6g.large"
    assert cluster.tags == {"env": "staging"}
    assert cluster.status == InstanceStatus.RUNNING
    assert cluster.endpoint_host and cluster.endpoint_port == 5432
    assert sorted(cluster.extra["cluster_members"]) == members
    for m in members:
        assert found[m].kind == InstanceKind.INSTANCE
        assert found[m].cluster_provider_id == arn
    assert sum(found[m].extra["is_cluster_writer"] for m in members) == 1
    assert found["solo-0000"].cluster_provider_id is None


def test_cluster_with_mixed_member_classes_has_no_class(aws_env: AwsTestEnv) -> None:
    aws_env.create_aurora_cluster("us-east-1", "mixed", members=1)
    aws_env.client("rds").create_db_instance(
        DBInstanceIdentifier="mixed-big",
        DBClusterIdentifier="mixed",
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.2xlarge",
    )
    found = by_name(AwsProvider(aws_env.settings).discover(aws_env.account()))
    assert found["mixed"].instance_class is None
    assert found["mixed"].node_count == 2


def test_tags_come_from_list_tags_when_describe_lacks_them(
    aws_env: AwsTestEnv, aws_proxy: AwsRecordingProxy
) -> None:
    aws_env.create_instances("us-east-1", 2, prefix="old", tags={"owner": "ana"})
    # Older RDS answers had no TagList in DescribeDBInstances.
    aws_proxy.rewrite(
        "DescribeDBInstances",
        lambda body: re.sub(rb"<TagList>.*?</TagList>|<TagList\s*/>", b"", body, flags=re.S),
    )
    found = AwsProvider(aws_env.settings).discover(aws_env.account(endpoint_url=aws_proxy.url))

    assert [i.tags for i in found] == [{"owner": "ana"}, {"owner": "ana"}]
    assert len(aws_proxy.actions("ListTagsForResource")) == 2


def test_read_replica_records_its_source(aws_env: AwsTestEnv) -> None:
    aws_env.create_instances("us-east-1", 1, prefix="main")
    aws_env.client("rds").create_db_instance_read_replica(
        DBInstanceIdentifier="main-replica", SourceDBInstanceIdentifier="main-0000"
    )
    found = by_name(AwsProvider(aws_env.settings).discover(aws_env.account()))
    assert found["main-replica"].extra["read_replica_source"] == "main-0000"
    assert found["main-0000"].extra["read_replicas"] == ["main-replica"]


def test_an_empty_account_is_an_empty_list(aws_env: AwsTestEnv) -> None:
    assert AwsProvider(aws_env.settings).discover(aws_env.account(["us-east-1"])) == []


def test_assumes_the_role_with_its_external_id(
    aws_env: AwsTestEnv, aws_proxy: AwsRecordingProxy
) -> None:
    role_arn = "arn:aws:iam::222233334444:role/snoozeql-reader"
    got = aws_env.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="setup")
    creds = got["Credentials"]
    # moto keeps each account apart: a database made with the role's keys lives in 2222...
    boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name="us-east-1",
    ).client("rds", endpoint_url=aws_env.endpoint_url).create_db_instance(
        DBInstanceIdentifier="in-other-account",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        MasterUsername="u",
        MasterUserPassword="not-a-pass1",
        AllocatedStorage=20,
    )
    aws_env.create_instances("us-east-1", 1, prefix="home")
    provider = AwsProvider(aws_env.settings)

    with_role = provider.discover(
        aws_env.account(endpoint_url=aws_proxy.url, role_arn=role_arn, external_id="ext-123")
    )
    without = provider.discover(aws_env.account())

    assert [i.provider_id for i in with_role] == [
        "arn:aws:rds:us-east-1:222233334444:db:in-other-account"
    ]
    assert [i.name for i in without] == ["home-0000"]
    [assume] = aws_proxy.actions("AssumeRole")
    assert assume.params["RoleArn"] == role_arn
    assert assume.params["ExternalId"] == "ext-123"


def test_syncs_reuse_credentials_but_keep_no_client_between_them(
    aws_env: AwsTestEnv, aws_proxy: AwsRecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server syncing many accounts keeps no RDS client per account and region
    between syncs (most of a MB each); lifecycle calls keep theirs for a while, and
    what expired is dropped, not held for the life of the process."""
    from snoozeql.providers.aws import driver

    role_arn = f"arn:aws:iam::{MOTO_ACCOUNT_ID}:role/snoozeql-reader"
    aws_env.create_instances("us-east-1", 2, prefix="keep")
    provider = AwsProvider(aws_env.settings)
    account = aws_env.account(endpoint_url=aws_proxy.url, role_arn=role_arn)

    first = provider.discover(account)
    second = provider.discover(account)
    assert [i.name for i in first] == [i.name for i in second] == ["keep-0000", "keep-0001"]
    assert len(aws_proxy.actions("AssumeRole")) == 1  # the credentials were reused
    assert provider._clients == {}  # noqa: SLF001 - what the process keeps is the point

    provider.stop(account, as_stored(first[0]))
    assert len(provider._clients) == 1  # noqa: SLF001
    provider.discover(account)  # a sync uses the kept client rather than making one
    assert len(provider._clients) == 1  # noqa: SLF001

    later = driver.CLIENT_TTL_SECONDS + 1
    monkeypatch.setattr(driver, "_clock", lambda: time.monotonic() + later)
    provider.discover(account)  # resolves again and drops what expired
    assert provider._clients == {}  # noqa: SLF001
    # The stop's client was made with the syncs' credentials; they expired, and now
    # they were resolved again.
    assert len(aws_proxy.actions("AssumeRole")) == 2


def _resolved(resolver: Any, prefix: str, region: str, fips: bool, dual: bool) -> object:  # noqa: ANN401
    """What a resolver answers for one endpoint, or the error it raises."""
    try:
        return resolver.construct_endpoint(prefix, region, use_fips_endpoint=fips,
                                           use_dualstack_endpoint=dual)
    except Exception as exc:  # noqa: BLE001 - compared, not handled
        return (type(exc).__name__, str(exc))


def test_the_kept_endpoint_data_resolves_our_services_as_the_whole_file_does() -> None:
    """The shared session keeps botocore's endpoint data of the four services SnoozeQL
    makes clients for (7 MB less): each resolves, in every region and partition, with
    FIPS and dual-stack, exactly as with the whole file; any other service is refused."""
    import botocore.session
    from botocore.config import Config
    from botocore.loaders import create_loader
    from botocore.regions import EndpointResolver

    from snoozeql.providers.aws import driver

    full = EndpointResolver(create_loader().load_data("endpoints"), uses_builtin_data=True)
    with driver._SHARED_LOCK:  # noqa: SLF001 - the process's one session
        core = driver._shared_session()._session  # noqa: SLF001
    kept = core._get_internal_component("endpoint_resolver")  # noqa: SLF001
    assert len(kept._endpoint_data["partitions"][0]["services"]) == 4  # noqa: SLF001

    fresh = botocore.session.get_session()
    compared = 0
    for service, prefix in driver.ENDPOINT_PREFIXES.items():
        assert fresh.get_service_model(service).endpoint_prefix == prefix
        for partition in full.get_available_partitions():
            regions = full.get_available_endpoints(prefix, partition)
            assert kept.get_available_endpoints(prefix, partition) == regions
            for region in regions:
                for fips in (False, True):
                    for dual in (False, True):
                        want, got = (_resolved(r, prefix, region, fips, dual)
                                     for r in (full, kept))
                        assert got == want, (service, region, fips, dual)
                        compared += 1
    assert compared > 400

    # Real clients: the URL they send to and the region they sign for.
    for service in driver.ENDPOINT_PREFIXES:
        for region in ("us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"):
            for fips in (False, True):
                cfg = Config(use_fips_endpoint=fips) if region != "cn-north-1" else Config()
                ours = driver.AwsCredentials("AKIDEXAMPLE", "s").client(
                    service, region, endpoint_url=None, config=cfg)
                theirs = fresh.create_client(service, region, config=cfg,
                                             aws_access_key_id="AKIDEXAMPLE",
                                             aws_secret_access_key="s")
                assert (ours.meta.endpoint_url, ours.meta.region_name) == (
                    theirs.meta.endpoint_url, theirs.meta.region_name)

    with pytest.raises(ValueError, match="no AWS client for 's3'"):
        driver.AwsCredentials("AKIDEXAMPLE", "s").client(
            "s3", "us-east-1", endpoint_url=None, config=Config())


def test_named_profile_supplies_the_keys(aws_env: AwsTestEnv, aws_proxy: AwsRecordingProxy) -> None:
    aws_env.write_profile("ops", "AKIAPROFILEKEY000001", "profile-secret")
    aws_env.create_instances("us-east-1", 1)
    found = AwsProvider(aws_env.settings).discover(
        aws_env.account(endpoint_url=aws_proxy.url, profile="ops")
    )
    assert len(found) == 1
    keys = {r.access_key for r in aws_proxy.actions("DescribeDBInstances")}
    assert keys == {"AKIAPROFILEKEY000001"}


def test_accounts_in_one_process_each_sign_with_their_own_keys(
    aws_env: AwsTestEnv, aws_proxy: AwsRecordingProxy
) -> None:
    """Every client comes from one shared session (the service models are loaded once
    per process, not once per account): the keys must still never cross accounts, also
    when the accounts sync and act from several threads at once."""
    keys = {"ops-a": "AKIASHAREDSESSION0001", "ops-b": "AKIASHAREDSESSION0002"}
    for profile, key in keys.items():
        aws_env.write_profile(profile, key, f"secret-of-{profile}")
    aws_env.create_instances("us-east-1", 2)
    aws_env.create_instances("us-west-2", 1)
    provider = AwsProvider(aws_env.settings)
    accounts = {p: aws_env.account(["us-east-1", "us-west-2"], name=p, endpoint_url=aws_proxy.url,
                                   profile=p) for p in keys}

    def sync_and_stop(profile: str) -> str:
        found = provider.discover(accounts[profile])
        mine = "db-0000" if profile == "ops-a" else "db-0001"
        target = next(d for d in found if d.name == mine)
        provider.stop(accounts[profile], as_stored(target))
        return profile

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(sync_and_stop, [*keys, *keys])) == sorted([*keys, *keys])

    signed = {(r.params.get("DBInstanceIdentifier"), r.access_key)
              for r in aws_proxy.actions("StopDBInstance")}
    assert signed == {("db-0000", keys["ops-a"]), ("db-0001", keys["ops-b"])}
    describes = aws_proxy.actions("DescribeDBInstances")
    assert {r.access_key for r in describes} == set(keys.values())
    assert {r.region for r in describes} == {"us-east-1", "us-west-2"}
    # one loaded RDS model behind both accounts' clients
    a = provider._cached(AwsAccountConfig.from_account(accounts["ops-a"]), "us-east-1")[1]
    b = provider._cached(AwsAccountConfig.from_account(accounts["ops-b"]), "us-west-2")[1]
    assert a is not b
    assert a.meta.service_model._service_description is b.meta.service_model._service_description


# ------------------------------------------------------------------ failures


def test_unreachable_endpoint_is_a_provider_error(aws_env: AwsTestEnv) -> None:
    settings = aws_env.settings.model_copy(
        update={"aws_max_attempts": 1, "aws_connect_timeout": 1.0}
    )
    account = aws_env.account(
        ["us-east-1", "eu-west-1"], endpoint_url=f"http://127.0.0.1:{free_port()}"
    )

    with pytest.raises(ProviderError) as err:
        AwsProvider(settings).discover(account)

    msg = err.value.message
    assert "us-east-1" in msg and "eu-west-1" in msg
    assert "Could not connect to the endpoint URL" in msg
    assert FAKE_SECRET_KEY not in msg


def test_bad_credentials_are_a_provider_error_without_the_keys(
    aws_env: AwsTestEnv, moto_server_auth: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY123456")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value-xyz")
    account = aws_env.account(["eu-west-1"], endpoint_url=moto_server_auth.url)

    with pytest.raises(ProviderError) as err:
        AwsProvider(aws_env.settings).discover(account)

    msg = err.value.message
    assert "eu-west-1" in msg
    assert "InvalidClientTokenId" in msg
    assert "AKIAUNKNOWNKEY123456" not in msg and "wrong-secret-value-xyz" not in msg


def test_unknown_profile_is_a_provider_error(aws_env: AwsTestEnv) -> None:
    with pytest.raises(ProviderError, match="no-such-profile"):
        AwsProvider(aws_env.settings).discover(aws_env.account(profile="no-such-profile"))


def test_account_without_regions_is_a_provider_error(aws_env: AwsTestEnv) -> None:
    with pytest.raises(ProviderError, match="no regions"):
        AwsProvider(aws_env.settings).discover(replace(aws_env.account(), config={"regions": []}))


def test_throttled_calls_are_retried_and_the_sync_succeeds(
    aws_env: AwsTestEnv, aws_proxy: AwsRecordingProxy
) -> None:
    aws_env.create_instances("us-east-1", 5)
    aws_proxy.throttle(2, action="DescribeDBInstances")
    settings = aws_env.settings.model_copy(update={"aws_max_attempts": 4})

    found = AwsProvider(settings).discover(aws_env.account(endpoint_url=aws_proxy.url))

    assert len(found) == 5
    calls = aws_proxy.actions("DescribeDBInstances")
    assert [c.throttled for c in calls] == [True, True, False]


def test_throttling_past_the_retries_fails_the_whole_sync(
    aws_env: AwsTestEnv, aws_proxy: AwsRecordingProxy
) -> None:
    aws_env.create_instances("us-east-1", 3, prefix="east")
    aws_env.create_instances("eu-west-1", 3, prefix="west")
    aws_proxy.throttle(100, action="DescribeDBInstances", region="eu-west-1")
    settings = aws_env.settings.model_copy(update={"aws_max_attempts": 2})
    account = aws_env.account(["us-east-1", "eu-west-1"], endpoint_url=aws_proxy.url)

    with pytest.raises(ProviderError) as err:
        AwsProvider(settings).discover(account)

    msg = err.value.message
    assert "eu-west-1" in msg and "Throttling" in msg and "us-east-1" not in msg
    assert len(aws_proxy.actions("DescribeDBInstances", "eu-west-1")) == 2


# ------------------------------------------------------------------ lifecycle


def _discover_one(env: AwsTestEnv, name: str) -> Instance:
    return as_stored(by_name(AwsProvider(env.settings).discover(env.account()))[name])


def test_stop_start_restart_an_instance(aws_env: AwsTestEnv) -> None:
    aws_env.create_instances("us-east-1", 1, prefix="app")
    provider, account = AwsProvider(aws_env.settings), aws_env.account()
    inst = _discover_one(aws_env, "app-0000")

    stopped = provider.stop(account, inst)
    assert (stopped.status, stopped.raw_status) == (InstanceStatus.STOPPED, "stopped")
    assert instance_status(aws_env, "us-east-1", "app-0000") == "stopped"

    # AWS refuses (InvalidDBInstanceState); the provider reads the state: already done.
    again = provider.stop(account, inst)
    assert (again.status, again.message, again.already) == (
        InstanceStatus.STOPPED, "already stopped", True)

    started = provider.start(account, inst)
    assert started.status == InstanceStatus.RUNNING
    assert instance_status(aws_env, "us-east-1", "app-0000") == "available"

    restarted = provider.restart(account, inst)
    assert restarted.status in (InstanceStatus.STARTING, InstanceStatus.RUNNING)
    assert restarted.raw_status in ("rebooting", "available")


def test_start_of_a_running_instance_is_already_running(
    aws_env: AwsTestEnv, aws_proxy: AwsRecordingProxy,
) -> None:
    aws_env.create_instances("us-east-1", 1, prefix="up")
    inst = _discover_one(aws_env, "up-0000")
    account = aws_env.account(endpoint_url=aws_proxy.url)
    outcome = AwsProvider(aws_env.settings).start(account, inst)
    assert (outcome.status, outcome.message, outcome.already) == (
        InstanceStatus.RUNNING, "already running", True)
    assert len(aws_proxy.actions("StartDBInstance")) == 1  # asked, refused, state read
    # A state that is neither done nor on its way stays a refusal, with AWS's reason.
    aws_proxy.rewrite("DescribeDBInstances", lambda body: body.replace(
        b"<DBInstanceStatus>available</DBInstanceStatus>",
        b"<DBInstanceStatus>incompatible-parameters</DBInstanceStatus>"))
    with pytest.raises(ActionRefused) as err:
        AwsProvider(aws_env.settings).start(account, inst)
    assert "InvalidDBInstanceState" in err.value.message
    assert "up-0000" in err.value.message


def test_stop_start_restart_a_cluster(aws_env: AwsTestEnv, aws_proxy: AwsRecordingProxy) -> None:
    members = aws_env.create_aurora_cluster("us-east-1", "c-1", members=2)
    provider = AwsProvider(aws_env.settings)
    account = aws_env.account(endpoint_url=aws_proxy.url)
    cluster = as_stored(by_name(provider.discover(account))["c-1"])

    stopped = provider.stop(account, cluster)
    assert stopped.status in (InstanceStatus.STOPPING, InstanceStatus.STOPPED)
    assert cluster_status(aws_env, "us-east-1", "c-1") == "stopped"
    assert [r.params["DBClusterIdentifier"] for r in aws_proxy.actions("StopDBCluster")] == ["c-1"]

    again = provider.stop(account, cluster)  # InvalidDBClusterStateFault: already done
    assert (again.status, again.message, again.already) == (
        InstanceStatus.STOPPED, "already stopped", True)

    started = provider.start(account, cluster)
    assert started.status in (InstanceStatus.STARTING, InstanceStatus.RUNNING)
    assert cluster_status(aws_env, "us-east-1", "c-1") == "available"

    restarted = provider.restart(account, cluster)
    assert restarted.status in (InstanceStatus.STARTING, InstanceStatus.RUNNING)
    rebooted = sorted(
        r.params["DBInstanceIdentifier"] for r in aws_proxy.actions("RebootDBInstance")
    )
    assert rebooted == members


def test_stopping_an_aurora_member_is_refused(
    aws_env: AwsTestEnv, aws_proxy: AwsRecordingProxy
) -> None:
    aws_env.create_aurora_cluster("us-east-1", "c-1", members=2)
    provider = AwsProvider(aws_env.settings)
    account = aws_env.account(endpoint_url=aws_proxy.url)
    member = as_stored(by_name(provider.discover(account))["c-1-m0"])
    before = len(aws_proxy.requests)

    # The stored link refuses at once: no request at all.
    with pytest.raises(ActionRefused) as err:
        provider.stop(account, member)
    assert err.value.message == (
        "c-1-m0 is a member of Aurora cluster c-1; stop the cluster instead"
    )
    assert len(aws_proxy.requests) == before
    assert instance_status(aws_env, "us-east-1", "c-1-m0") == "available"


def test_a_stale_record_of_an_aurora_member_is_refused(
    aws_env: AwsTestEnv, aws_proxy: AwsRecordingProxy
) -> None:
    """A record stored as a plain instance that AWS now has in a cluster: AWS refuses
    the call (moto does not, so the proxy answers as AWS does), then the driver asks
    what the instance is and gives the same refusal as for a fresh record."""
    aws_env.create_aurora_cluster("us-east-1", "c-1", members=2)
    provider = AwsProvider(aws_env.settings)
    account = aws_env.account(endpoint_url=aws_proxy.url)
    stale = replace(as_stored(by_name(provider.discover(account))["c-1-m0"]),
                    cluster_provider_id=None)
    for action in ("StopDBInstance", "StartDBInstance"):
        aws_proxy.refuse(action, "InvalidParameterCombination",
                         "aurora-postgresql DB instances are not eligible for stopping and "
                         "starting.", DBInstanceIdentifier="c-1-m0")
    before = len(aws_proxy.requests)

    with pytest.raises(ActionRefused) as err:
        provider.stop(account, stale)
    assert err.value.message == (
        "c-1-m0 is a member of Aurora cluster c-1; stop the cluster instead"
    )
    assert [r.action for r in aws_proxy.requests[before:]] == [
        "StopDBInstance", "DescribeDBInstances"]

    with pytest.raises(ActionRefused, match="member of Aurora cluster c-1; start the cluster"):
        provider.start(account, stale)
    assert instance_status(aws_env, "us-east-1", "c-1-m0") == "available"


def test_a_stop_of_a_plain_instance_is_one_request(
    aws_env: AwsTestEnv, aws_proxy: AwsRecordingProxy
) -> None:
    aws_env.create_instances("us-east-1", 2, prefix="one")
    provider = AwsProvider(aws_env.settings)
    account = aws_env.account(endpoint_url=aws_proxy.url)
    found = by_name(provider.discover(account))
    before = len(aws_proxy.requests)

    stopped = provider.stop(account, as_stored(found["one-0000"]))
    assert stopped.status in (InstanceStatus.STOPPING, InstanceStatus.STOPPED)
    assert [(r.action, r.params.get("DBInstanceIdentifier"))
            for r in aws_proxy.requests[before:]] == [("StopDBInstance", "one-0000")]

    # A refusal that is not "already there" stays the AWS refusal, after one look.
    aws_proxy.refuse("StopDBInstance", "InvalidParameterCombination",
                     "sqlserver-se Multi-AZ DB instances are not eligible for stopping.",
                     DBInstanceIdentifier="one-0001")
    before = len(aws_proxy.requests)
    with pytest.raises(ActionRefused, match="AWS refused to stop one-0001.*not eligible"):
        provider.stop(account, as_stored(found["one-0001"]))
    assert [r.action for r in aws_proxy.requests[before:]] == [
        "StopDBInstance", "DescribeDBInstances"]
    assert instance_status(aws_env, "us-east-1", "one-0001") == "available"


def test_stopping_a_read_replica_is_refused_with_the_aws_reason(aws_env: AwsTestEnv) -> None:
    aws_env.create_instances("us-east-1", 1, prefix="main")
    aws_env.client("rds").create_db_instance_read_replica(
        DBInstanceIdentifier="main-replica", SourceDBInstanceIdentifier="main-0000"
    )
    replica = _discover_one(aws_env, "main-replica")

    with pytest.raises(ActionRefused) as err:
        AwsProvider(aws_env.settings).stop(aws_env.account(), replica)

    assert "AWS refused to stop main-replica" in err.value.message
    assert "InvalidDBClusterStateFault" in err.value.message  # moto's code for this refusal
    assert instance_status(aws_env, "us-east-1", "main-replica") == "available"


def test_acting_on_a_deleted_instance_is_refused(aws_env: AwsTestEnv) -> None:
    aws_env.create_instances("us-east-1", 1, prefix="gone")
    inst = _discover_one(aws_env, "gone-0000")
    aws_env.client("rds").delete_db_instance(
        DBInstanceIdentifier="gone-0000", SkipFinalSnapshot=True
    )
    with pytest.raises(ActionRefused, match="DBInstanceNotFound"):
        AwsProvider(aws_env.settings).restart(aws_env.account(), inst)


def test_action_on_unreachable_endpoint_is_a_provider_error(aws_env: AwsTestEnv) -> None:
    aws_env.create_instances("us-east-1", 1, prefix="app")
    inst = _discover_one(aws_env, "app-0000")
    settings = aws_env.settings.model_copy(update={"aws_max_attempts": 1})
    account = aws_env.account(endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderError, match="us-east-1"):
        AwsProvider(settings).stop(account, inst)


# ------------------------------------------------------------------ statuses


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("available", InstanceStatus.RUNNING),
        ("stopped", InstanceStatus.STOPPED),
        ("starting", InstanceStatus.STARTING),
        ("rebooting", InstanceStatus.STARTING),
        ("stopping", InstanceStatus.STOPPING),
        ("creating", InstanceStatus.PENDING),
        ("modifying", InstanceStatus.RUNNING),
        ("backing-up", InstanceStatus.RUNNING),
        ("maintenance", InstanceStatus.RUNNING),
        ("upgrading", InstanceStatus.RUNNING),
        ("failed", InstanceStatus.FAILED),
        ("incompatible-parameters", InstanceStatus.FAILED),
        ("incompatible-network", InstanceStatus.FAILED),
        ("inaccessible-encryption-credentials", InstanceStatus.FAILED),
        ("storage-full", InstanceStatus.FAILED),
        ("deleting", InstanceStatus.STOPPING),
        ("Available", InstanceStatus.RUNNING),
        ("some-new-word", InstanceStatus.UNKNOWN),
        (None, InstanceStatus.UNKNOWN),
    ],
)
def test_rds_statuses_are_normalized(raw: str | None, expected: InstanceStatus) -> None:
    assert normalize_status(raw) == expected


def test_a_malformed_region_is_a_provider_error(aws_env: AwsTestEnv) -> None:
    aws_env.create_instances("us-east-1", 1, prefix="app")
    inst = _discover_one(aws_env, "app-0000")
    with pytest.raises(ProviderError, match="not/a/region"):
        AwsProvider(aws_env.settings).discover(aws_env.account(["us-east-1", "not/a/region"]))
    with pytest.raises(ProviderError, match="not/a/region"):
        AwsProvider(aws_env.settings).stop(aws_env.account(), replace(
            inst, provider_id="db-x", name="db-x", region="not/a/region"))


@pytest.mark.parametrize("text", [
    "2024-05-01T12:00:00.123Z", "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123456+02:00",
    "Wed, 01 May 2024 12:00:00 GMT", "1714564800", "2024-05-01T12:00:00",
])
def test_answer_timestamps_parse_as_botocore_parses_them(text: str) -> None:
    ours = _parse_timestamp(text)
    assert ours == DEFAULT_TIMESTAMP_PARSER(text)
    assert ours.utcoffset() == DEFAULT_TIMESTAMP_PARSER(text).utcoffset()
