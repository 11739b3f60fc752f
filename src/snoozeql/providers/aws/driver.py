"""The AWS driver: RDS DB instances and Aurora / Multi-AZ DB clusters.

With its neighbours in this package (CloudWatch in :mod:`.metrics`, the Price List in
:mod:`.pricing`), this module is the only place that knows boto3's shapes; the
credentials, client settings and error wording here serve all three. It turns
DescribeDBInstances and DescribeDBClusters pages into :class:`DiscoveredInstance`
values and carries out start, stop and restart, turning AWS refusals into
:class:`ActionRefused` and every other failure into :class:`ProviderError`.

Why it looks the way it does:

* Regions are scanned in parallel threads. Credentials are resolved once (profile,
  default chain, or an STS role) and every client is made from one shared boto3
  session, under a lock (a session is not thread-safe; its clients are), with the
  account's credentials passed to the client: a session per client would load the
  service models and endpoint data again each time, about 12 MB kept per account.
* Discovery is all-or-nothing: one failing region fails the whole sync, because a
  partial list would wrongly mark the unseen databases as missing.
* Throttling is retried by botocore's ``standard`` retry mode (exponential backoff
  with jitter), bounded by ``Settings.aws_max_attempts``.
* Error messages name the region and the AWS error code and message, and are scrubbed
  of anything that looks like an access key or matches the credentials in use.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import DEFAULT_TIMESTAMP_PARSER, ResponseParserError

from snoozeql.config import Settings
from snoozeql.domain.errors import ActionRefused, ProviderError
from snoozeql.domain.types import (
    Account,
    ActionOutcome,
    DiscoveredInstance,
    Instance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
    already_message,
)
from snoozeql.observability import Telemetry, in_context
from snoozeql.providers.aws.config import AwsAccountConfig
from snoozeql.providers.base import allowed_endpoint

log = logging.getLogger(__name__)

PAGE_SIZE = 100
"""Records per DescribeDBInstances / DescribeDBClusters page (the API's maximum)."""

_T = TypeVar("_T")

# --------------------------------------------------------------------------- statuses

_RUNNING = InstanceStatus.RUNNING
_STATUS_WORDS: dict[str, InstanceStatus] = {
    "available": _RUNNING,
    "stopped": InstanceStatus.STOPPED,
    "starting": InstanceStatus.STARTING,
    "started": InstanceStatus.STARTING,  # what StartDBCluster answers while it starts
    "rebooting": InstanceStatus.STARTING,
    "stopping": InstanceStatus.STOPPING,
    "deleting": InstanceStatus.STOPPING,
    "delete-precheck": InstanceStatus.STOPPING,
    "creating": InstanceStatus.PENDING,
    "migrating": InstanceStatus.PENDING,
    "preparing-data-migration": InstanceStatus.PENDING,
    "promoting": InstanceStatus.PENDING,
    "failed": InstanceStatus.FAILED,
    "storage-full": InstanceStatus.FAILED,
    "restore-error": InstanceStatus.FAILED,
    "insufficient-capacity": InstanceStatus.FAILED,
    "cloning-failed": InstanceStatus.FAILED,
    "migration-failed": InstanceStatus.FAILED,
    "inaccessible-encryption-credentials": InstanceStatus.FAILED,
    "inaccessible-encryption-credentials-recoverable": InstanceStatus.FAILED,
}
# States in which the database keeps serving: it is up while AWS works on it.
_SERVING_WORDS = {
    "backing-up", "backtracking", "configuring-activity-stream",
    "configuring-enhanced-monitoring", "configuring-iam-database-auth",
    "configuring-log-exports", "converting-to-vpc", "failing-over", "maintenance",
    "modifying", "moving-to-vpc", "renaming", "resetting-master-credentials",
    "storage-config-upgrade", "storage-initialization", "storage-optimization",
    "update-iam-db-auth", "upgrading",
}


def normalize_status(raw: str | None) -> InstanceStatus:
    """Map an RDS instance or cluster status word to our normalized status."""
    if not raw:
        return InstanceStatus.UNKNOWN
    word = raw.strip().lower()
    if word in _STATUS_WORDS:
        return _STATUS_WORDS[word]
    if word in _SERVING_WORDS:
        return _RUNNING
    if word.startswith("incompatible-"):
        return InstanceStatus.FAILED
    return InstanceStatus.UNKNOWN


@dataclass(frozen=True)
class AwsCredentials:
    """Resolved credentials; ``repr`` never shows them."""

    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)

    def secrets(self) -> list[str]:
        return [s for s in (self.access_key, self.secret_key, self.token) if s]

    def client(self, service: str, region: str, *, endpoint_url: str | None, config: Config,
               telemetry: Telemetry | None = None) -> Any:
        """A client of ``service`` with these credentials (thread-safe once made), whose
        calls are counted on ``telemetry`` when given."""
        if service not in ENDPOINT_PREFIXES:  # its endpoint data was not kept
            raise ValueError(f"no AWS client for {service!r}: add it to ENDPOINT_PREFIXES")
        with _SHARED_LOCK:
            client = _shared_session().client(
                service, region_name=region, endpoint_url=endpoint_url, config=config,
                aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                aws_session_token=self.token,
            )
        if telemetry is not None:
            count_calls(client.meta.events, telemetry)
        return client


_SHARED_LOCK = threading.Lock()
_SHARED: list[boto3.session.Session] = []


def _shared_session() -> boto3.session.Session:
    """The process's one boto3 session (call with ``_SHARED_LOCK`` held). It holds no
    credentials of its own: each client is given its account's. Every client made from
    it shares the loaded service models and endpoint rules instead of loading its own.

    Its clients parse the ISO 8601 timestamps of the answers with
    ``datetime.fromisoformat`` (botocore's default, dateutil, for any other form): the
    same aware datetimes for a fifth of the CPU; dateutil took about a tenth of the
    reconciler's CPU per stop (each StopDBInstance answer carries the instance's
    timestamps)."""
    if not _SHARED:
        core = botocore.session.get_session()
        core.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=_parse_timestamp)
        _keep_endpoints_of_our_services(core)
        _SHARED.append(boto3.session.Session(botocore_session=core))
    return _SHARED[0]


#: The AWS services SnoozeQL makes clients for, and each one's endpoint prefix (its
#: key in botocore's endpoint data).
ENDPOINT_PREFIXES = {"rds": "rds", "sts": "sts", "cloudwatch": "monitoring",
                     "pricing": "api.pricing"}


def _keep_endpoints_of_our_services(core: botocore.session.Session) -> None:
    """Drop every other service from the session's endpoint data.

    botocore resolves a client's region, signing and legacy endpoint from
    ``endpoints.json``: every region of each of its 300-odd services in every
    partition, about 7 MB once loaded (more than the RDS model itself), kept for the
    life of the process while only four services' entries are ever read. The data is
    the loader's cached copy, which the session's endpoint resolver is made from on
    the first client: trimmed here, before any client, each of the four resolves as
    with the whole file (tests/e2e/test_aws_provider.py compares them)."""
    data = core.get_component("data_loader").load_data("endpoints")
    kept = set(ENDPOINT_PREFIXES.values())
    for partition in data.get("partitions", ()):
        services = partition.get("services")
        if isinstance(services, dict):
            for name in [n for n in services if n not in kept]:
                del services[name]


def _parse_timestamp(value: Any) -> Any:
    """An answer's timestamp (``2024-05-01T12:00:00.123Z``) as an aware datetime."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    return DEFAULT_TIMESTAMP_PARSER(value)


#: Error codes AWS answers when it throttles (botocore retries them with backoff).
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "RequestLimitExceeded", "RequestThrottled", "BandwidthLimitExceeded",
    "LimitExceededException", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException",
})


def _throttling(http_response: Any, parsed: Any) -> bool:
    if getattr(http_response, "status_code", None) == 429:
        return True
    err = parsed.get("Error") if isinstance(parsed, dict) else None
    return isinstance(err, dict) and err.get("Code") in THROTTLING_CODES


def count_calls(events: Any, telemetry: Telemetry) -> None:
    """Count every API call of a client (``events``: its ``meta.events``, a copy of the
    session's made for that client alone) by operation and final result,
    and every throttling answer (each attempt, also those a retry then got through),
    through botocore's events: no wrapper around the calls themselves."""

    def operation(event_name: str) -> str:
        return event_name.rsplit(".", 1)[-1]

    def after_call(event_name: str = "", http_response: Any = None, parsed: Any = None,
                   **_: Any) -> None:
        status = getattr(http_response, "status_code", 0) or 0
        result = ("ok" if status < 300 else
                  "throttled" if _throttling(http_response, parsed) else "error")
        telemetry.provider_call("aws", operation(event_name), result)

    def after_call_error(event_name: str = "", **_: Any) -> None:
        telemetry.provider_call("aws", operation(event_name), "error")  # no answer at all

    def needs_retry(event_name: str = "", response: Any = None, **_: Any) -> None:
        if isinstance(response, tuple) and len(response) == 2 and _throttling(*response):
            telemetry.throttled("aws", operation(event_name))
        return None  # never decides the retry: botocore's own handler does

    events.register("after-call", after_call)
    events.register("after-call-error", after_call_error)
    events.register("needs-retry", needs_retry)


_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}(?![A-Z0-9])")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove credentials (given ones, and anything shaped like an access key id)."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "<redacted>")
    text = _KEY_ID.sub("<redacted>", text)
    return text if len(text) <= 500 else text[:497] + "..."


def describe_error(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """A short readable description: ``Code: message`` for AWS errors."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code") or "Error"
        message = err.get("Message") or str(exc)
        text = f"{code}: {message}"
        retries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts")
        if retries:
            text += f" (after {retries} retries)"
    elif isinstance(exc, BotoCoreError):
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return scrub(text, secrets)


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def resolve_credentials(cfg: AwsAccountConfig, settings: Settings) -> AwsCredentials:
    """Credentials from the named profile or the default chain, then the role if any.

    Raises ProviderError with a readable message (never the credentials themselves).
    A custom ``endpoint_url`` must be allowed (``allowed_endpoints``) before anything
    is sent: every AWS call of an account resolves its credentials first.
    """
    allowed_endpoint(cfg.endpoint_url, settings, "AWS endpoint_url")
    try:
        base = boto3.session.Session(profile_name=cfg.profile)
        found = base.get_credentials()
        if found is None:
            where = f"profile {cfg.profile!r}" if cfg.profile else "the default AWS chain"
            raise ProviderError(f"AWS: no credentials found in {where}")
        frozen: ReadOnlyCredentials = found.get_frozen_credentials()
    except ProviderError:
        raise
    except (BotoCoreError, ClientError) as exc:
        raise ProviderError(f"AWS credentials: {describe_error(exc)}") from None
    creds = AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)
    if not cfg.role_arn:
        return creds
    region = cfg.regions[0] if cfg.regions else "us-east-1"
    try:
        sts = creds.client("sts", region, endpoint_url=cfg.endpoint_url,
                           config=client_config(settings))
        kwargs: dict[str, Any] = {"RoleArn": cfg.role_arn, "RoleSessionName": "snoozeql"}
        if cfg.external_id:
            kwargs["ExternalId"] = cfg.external_id
        got = sts.assume_role(**kwargs)["Credentials"]
        return AwsCredentials(
            str(got["AccessKeyId"]), str(got["SecretAccessKey"]), got.get("SessionToken")
        )
    except (ResponseParserError, KeyError, TypeError, AttributeError):
        where = cfg.endpoint_url or "AWS STS"
        raise ProviderError(
            f"AWS {region}: cannot assume role {cfg.role_arn}: unexpected answer from {where}"
        ) from None
    except (BotoCoreError, ClientError) as exc:
        msg = describe_error(exc, creds.secrets())
        raise ProviderError(f"AWS {region}: cannot assume role {cfg.role_arn}: {msg}") from None


def client_config(settings: Settings) -> Config:
    """Timeouts and the standard retry mode (backoff on throttling) from settings."""
    return Config(
        connect_timeout=settings.aws_connect_timeout,
        read_timeout=settings.aws_read_timeout,
        # total_max_attempts counts the first try (botocore's max_attempts would not).
        retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts},
        # The reconciler shares one client per account and region among its threads.
        max_pool_connections=max(10, settings.action_concurrency),
        user_agent_extra="snoozeql",
    )


# ------------------------------------------------------------------------- mapping


# A sync holds every instance of an account until it is written, and most of their
# strings repeat across the fleet (tag keys and values, engines, classes, zones): each
# repeated value is kept once (interned strings are freed when no longer used).
def _one(v: Any) -> Any:
    return sys.intern(v) if type(v) is str else v


def _tags(tag_list: list[dict[str, Any]] | None) -> dict[str, str]:
    return {sys.intern(str(t["Key"])): sys.intern(str(t.get("Value") or ""))
            for t in tag_list or [] if "Key" in t}


def _cluster_arn_from_instance(instance_arn: str, cluster_id: str) -> str:
    """The cluster's ARN built from a member's ARN (same partition, region, account)."""
    parts = instance_arn.split(":")
    if len(parts) >= 7 and parts[5] == "db":
        return ":".join(parts[:5] + ["cluster", cluster_id])
    return cluster_id


def map_instance(
    db: dict[str, Any], region: str, tags: dict[str, str], cluster_arns: dict[str, str]
) -> DiscoveredInstance:
    """One DescribeDBInstances record as a DiscoveredInstance."""
    arn = str(db["DBInstanceArn"])
    raw = db.get("DBInstanceStatus")
    endpoint = db.get("Endpoint") or {}
    cluster_id = db.get("DBClusterIdentifier")
    cluster_arn = None
    if cluster_id:
        cluster_arn = cluster_arns.get(cluster_id) or _cluster_arn_from_instance(arn, cluster_id)
    extra: dict[str, Any] = {}
    if db.get("ReadReplicaSourceDBInstanceIdentifier"):
        extra["read_replica_source"] = db["ReadReplicaSourceDBInstanceIdentifier"]
    if db.get("ReadReplicaDBInstanceIdentifiers"):
        extra["read_replicas"] = list(db["ReadReplicaDBInstanceIdentifiers"])
    if cluster_id:
        extra["cluster_identifier"] = cluster_id
    if db.get("AvailabilityZone"):
        extra["availability_zone"] = _one(db["AvailabilityZone"])
    if db.get("AllocatedStorage"):
        extra["allocated_storage_gb"] = db["AllocatedStorage"]
    if db.get("StorageType"):
        extra["storage_type"] = _one(db["StorageType"])
    return DiscoveredInstance(
        provider=ProviderKind.AWS,
        provider_id=arn,
        name=str(db["DBInstanceIdentifier"]),
        kind=InstanceKind.INSTANCE,
        engine=sys.intern(str(db.get("Engine") or "unknown")),
        engine_version=_one(db.get("EngineVersion")),
        instance_class=_one(db.get("DBInstanceClass")),
        region=region,
        status=normalize_status(raw),
        raw_status=_one(raw),
        tags=tags,
        endpoint_host=endpoint.get("Address"),
        endpoint_port=endpoint.get("Port"),
        multi_az=bool(db.get("MultiAZ")),
        node_count=1,
        cluster_provider_id=cluster_arn,
        extra=extra,
    )


def map_cluster(
    c: dict[str, Any], region: str, tags: dict[str, str], member_classes: dict[str, str | None]
) -> DiscoveredInstance:
    """One DescribeDBClusters record as a DiscoveredInstance (kind cluster).

    ``member_classes`` maps member instance identifiers to their instance class, so a
    cluster whose members share one class reports it.
    """
    raw = c.get("Status")
    members = c.get("DBClusterMembers") or []
    names = [str(m["DBInstanceIdentifier"]) for m in members if "DBInstanceIdentifier" in m]
    writer = next((str(m["DBInstanceIdentifier"]) for m in members if m.get("IsClusterWriter")),
                  None)
    instance_class = c.get("DBClusterInstanceClass")
    if not instance_class:
        classes = {member_classes.get(n) for n in names}
        if len(classes) == 1:
            instance_class = classes.pop()
    extra: dict[str, Any] = {"cluster_members": names}
    if writer:
        extra["writer"] = writer
    if c.get("ReaderEndpoint"):
        extra["reader_endpoint"] = c["ReaderEndpoint"]
    if c.get("EngineMode"):
        extra["engine_mode"] = c["EngineMode"]
    port = c.get("Port")
    return DiscoveredInstance(
        provider=ProviderKind.AWS,
        provider_id=str(c["DBClusterArn"]),
        name=str(c["DBClusterIdentifier"]),
        kind=InstanceKind.CLUSTER,
        engine=str(c.get("Engine") or "unknown"),
        engine_version=c.get("EngineVersion"),
        instance_class=instance_class,
        region=region,
        status=normalize_status(raw),
        raw_status=raw,
        tags=tags,
        endpoint_host=c.get("Endpoint"),
        endpoint_port=int(port) if port is not None else None,
        multi_az=bool(c.get("MultiAZ")),
        node_count=len(names),
        cluster_provider_id=None,
        extra=extra,
    )


# ------------------------------------------------------------------------ provider

_REFUSAL_CODES = {
    "InvalidDBInstanceState",
    "InvalidDBInstanceStateFault",
    "InvalidDBClusterStateFault",
    "InvalidDBClusterState",
    "InvalidParameterCombination",
    "InvalidParameterValue",
    "UnsupportedOperation",
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
    "DBClusterNotFoundFault",
}


@dataclass(frozen=True)
class _Target:
    """Where a stored record lives in AWS: region and identifier (parsed from its ARN)."""

    region: str
    identifier: str


def _target(instance: Instance) -> _Target:
    parts = instance.provider_id.split(":")
    if len(parts) >= 7 and parts[0] == "arn" and parts[2] == "rds":
        return _Target(region=parts[3], identifier=parts[6])
    if not instance.region:
        raise ProviderError(f"{instance.name}: stored record has no AWS region")
    return _Target(region=instance.region, identifier=instance.name)


#: How long lifecycle calls reuse resolved credentials and their client.
CLIENT_TTL_SECONDS = 300.0
_clock = time.monotonic  # what the credentials' and clients' lifetimes are read on


class AwsProvider:
    """Discovery and lifecycle for RDS and Aurora through boto3."""

    kind = "aws"

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or Settings()
        # Lifecycle calls reuse credentials and one (thread-safe) client per account
        # config and region for a few minutes: building them costs more CPU than the
        # call itself, which matters when the reconciler stops a thousand databases.
        # Syncs reuse the credentials, and a client only while lifecycle keeps one.
        self._creds: dict[AwsAccountConfig, tuple[float, AwsCredentials]] = {}
        self._clients: dict[tuple[Any, ...], tuple[float, AwsCredentials, Any]] = {}
        self._clients_lock = threading.Lock()
        # Set by the provider registry: where this provider counts its API calls.
        self.telemetry: Telemetry | None = None

    # ---------------------------------------------------------------- plumbing

    def _client(self, creds: AwsCredentials, cfg: AwsAccountConfig, region: str) -> Any:
        try:
            return creds.client("rds", region, endpoint_url=cfg.endpoint_url,
                                config=client_config(self._settings), telemetry=self.telemetry)
        except (BotoCoreError, ValueError) as exc:  # bad region name, bad endpoint URL
            raise ProviderError(f"AWS {region}: {describe_error(exc, creds.secrets())}") from None

    def _call(
        self, what: str, region: str, creds: AwsCredentials, fn: Callable[[], _T],
        refusable: bool = False, endpoint: str | None = None,
    ) -> _T:
        """Run one AWS call, translating its failure into a domain error.

        An answer that is not what the API returns (a foreign endpoint) is reported as
        ``unexpected answer from ENDPOINT``, never as a parser error or a raw body.
        """
        try:
            return fn()
        except (ResponseParserError, KeyError, TypeError, AttributeError):
            raise ProviderError(
                f"AWS {region}: {what} failed: unexpected answer from {endpoint or 'AWS'}"
            ) from None
        except ClientError as exc:
            msg = describe_error(exc, creds.secrets())
            if refusable and error_code(exc) in _REFUSAL_CODES:
                raise ActionRefused(f"AWS refused to {what} in {region}: {msg}") from None
            raise ProviderError(f"AWS {region}: {what} failed: {msg}") from None
        except BotoCoreError as exc:
            msg = describe_error(exc, creds.secrets())
            raise ProviderError(f"AWS {region}: {what} failed: {msg}") from None

    # --------------------------------------------------------------- discovery

    def discover(self, account: Account) -> list[DiscoveredInstance]:
        """Every DB instance and DB cluster in the account's regions, or ProviderError."""
        cfg = AwsAccountConfig.from_account(account)
        allowed_endpoint(cfg.endpoint_url, self._settings, "AWS endpoint_url")
        creds = self._credentials(cfg)
        workers = max(1, min(self._settings.discovery_workers, len(cfg.regions)))
        results: dict[str, list[DiscoveredInstance]] = {}
        errors: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aws-discover") as pool:
            futures = {
                # in_context: a throttled call marks the task run it serves (a retry)
                r: pool.submit(in_context(self._discover_region_checked), creds, cfg, r)
                for r in cfg.regions
            }
            for region, fut in futures.items():
                try:
                    results[region] = fut.result()
                except ProviderError as exc:
                    errors[region] = exc.message
                except Exception as exc:  # a bug or an unexpected shape: still all-or-nothing
                    log.exception("AWS discovery in %s failed unexpectedly", region)
                    errors[region] = f"AWS {region}: {describe_error(exc, creds.secrets())}"
        if errors:
            raise ProviderError("; ".join(errors[r] for r in cfg.regions if r in errors))
        return [item for r in cfg.regions for item in results[r]]

    def _discover_region(
        self, creds: AwsCredentials, cfg: AwsAccountConfig, region: str
    ) -> list[DiscoveredInstance]:
        creds, rds = self._cached(cfg, region, keep=False)

        def pages(operation: str, key: str) -> list[dict[str, Any]]:
            paginator = rds.get_paginator(operation)
            out: list[dict[str, Any]] = []
            for page in paginator.paginate(PaginationConfig={"PageSize": PAGE_SIZE}):
                out.extend(page.get(key) or [])
            return out

        clusters = self._call(
            "DescribeDBClusters", region, creds,
            lambda: pages("describe_db_clusters", "DBClusters"), endpoint=rds.meta.endpoint_url,
        )

        def instance_pages() -> Iterator[list[dict[str, Any]]]:
            """DescribeDBInstances a page at a time: a page's records are mapped and
            dropped before the next is asked for (an account's whole answer held at
            once, times the syncs running in parallel, was most of a server's memory)."""
            paginator = rds.get_paginator("describe_db_instances")
            it = iter(paginator.paginate(PaginationConfig={"PageSize": PAGE_SIZE}))
            while True:
                page = self._call("DescribeDBInstances", region, creds, lambda: next(it, None),
                                  endpoint=rds.meta.endpoint_url)
                if page is None:
                    return
                yield page.get("DBInstances") or []

        def tags_of(item: dict[str, Any], arn: str) -> dict[str, str]:
            if "TagList" in item:
                return _tags(item["TagList"])
            got = self._call(
                "ListTagsForResource", region, creds,
                lambda: rds.list_tags_for_resource(ResourceName=arn), endpoint=rds.meta.endpoint_url
            )
            return _tags(got.get("TagList"))

        cluster_arns = {str(c["DBClusterIdentifier"]): str(c["DBClusterArn"]) for c in clusters}
        writers = {
            str(m["DBInstanceIdentifier"]): bool(m.get("IsClusterWriter"))
            for c in clusters for m in c.get("DBClusterMembers") or []
            if "DBInstanceIdentifier" in m
        }
        member_classes: dict[str, Any] = {}
        found_instances: list[DiscoveredInstance] = []
        for records in instance_pages():
            for d in records:
                member_classes[str(d["DBInstanceIdentifier"])] = d.get("DBInstanceClass")
                item = map_instance(d, region, tags_of(d, str(d["DBInstanceArn"])), cluster_arns)
                name = item.name
                if name in writers:
                    item.extra["is_cluster_writer"] = writers[name]
                found_instances.append(item)
        found = [map_cluster(c, region, tags_of(c, str(c["DBClusterArn"])), member_classes)
                 for c in clusters]
        return found + found_instances

    def _discover_region_checked(
        self, creds: AwsCredentials, cfg: AwsAccountConfig, region: str
    ) -> list[DiscoveredInstance]:
        """``_discover_region``; records without the fields RDS always sends (a foreign
        endpoint) fail the region as ``unexpected answer from ENDPOINT``."""
        try:
            return self._discover_region(creds, cfg, region)
        except (KeyError, TypeError, AttributeError, ValueError):
            where = cfg.endpoint_url or f"https://rds.{region}.amazonaws.com"
            raise ProviderError(f"AWS {region}: unexpected answer from {where}") from None

    # --------------------------------------------------------------- lifecycle

    def _prepare(self, account: Account | None, instance: Instance) -> tuple[
        AwsCredentials, AwsAccountConfig, _Target, Any
    ]:
        if account is None:
            raise ProviderError(f"{instance.name}: an AWS action needs the instance's account")
        cfg = AwsAccountConfig.from_account(account)
        target = _target(instance)
        creds, client = self._cached(cfg, target.region)
        return creds, cfg, target, client

    def _cached(self, cfg: AwsAccountConfig, region: str, *, keep: bool = True
                ) -> tuple[AwsCredentials, Any]:
        """Credentials and one (thread-safe) client per account config and region, kept
        ``CLIENT_TTL_SECONDS``: lifecycle calls (a thousand stops of one account) do not
        pay for building them each time.

        ``keep=False`` (a sync): the kept client if there is one, else a client for this
        call only. A sync runs once per interval (300 s by default) and building its
        client costs a few tens of ms, while a kept RDS client holds most of a MB: a
        server syncing many accounts would otherwise keep one per account and region
        between syncs for nothing."""
        key = (cfg, region)  # the whole (frozen) account config
        with self._clients_lock:  # held while building: one build per key, not 16
            now = _clock()
            hit = self._clients.get(key)
            if hit is not None and hit[0] > now:
                return hit[1], hit[2]
            self._prune(now)
            until, creds = self._credentials_locked(cfg, now)
            if keep:
                hit = (until, creds, self._client(creds, cfg, region))
                self._clients[key] = hit
                return creds, hit[2]
        return creds, self._client(creds, cfg, region)

    def _credentials(self, cfg: AwsAccountConfig) -> AwsCredentials:
        """The account's credentials, resolved at most once per ``CLIENT_TTL_SECONDS``."""
        with self._clients_lock:
            now = _clock()
            self._prune(now)
            return self._credentials_locked(cfg, now)[1]

    def _prune(self, now: float) -> None:
        """Drop expired credentials and clients (an account no longer acted on would
        otherwise keep its last client for the life of the process)."""
        for k in [k for k, v in self._clients.items() if v[0] <= now]:
            del self._clients[k]
        for c in [c for c, v in self._creds.items() if v[0] <= now]:
            del self._creds[c]

    def _credentials_locked(self, cfg: AwsAccountConfig, now: float
                            ) -> tuple[float, AwsCredentials]:
        known = self._creds.get(cfg)
        if known is None or known[0] <= now:
            # A client never outlives the credentials it was made with: it is kept
            # until they expire here.
            known = (now + CLIENT_TTL_SECONDS, resolve_credentials(cfg, self._settings))
            self._creds[cfg] = known
        return known

    def start(self, account: Account | None, instance: Instance) -> ActionOutcome:
        return self._start_stop(account, instance, "start")

    def stop(self, account: Account | None, instance: Instance) -> ActionOutcome:
        return self._start_stop(account, instance, "stop")

    def _start_stop(self, account: Account | None, instance: Instance, verb: str) -> ActionOutcome:
        creds, _cfg, t, rds = self._prepare(account, instance)
        if instance.kind == InstanceKind.CLUSTER:
            op = rds.start_db_cluster if verb == "start" else rds.stop_db_cluster
            api = "StartDBCluster" if verb == "start" else "StopDBCluster"
            try:
                self._call(f"{verb} cluster {t.identifier} ({api})", t.region, creds,
                           lambda: op(DBClusterIdentifier=t.identifier), refusable=True,
                           endpoint=rds.meta.endpoint_url)
            except ActionRefused:
                done = self._already(verb, lambda: self._describe_cluster(rds, creds, t)
                                     .get("Status"))
                if done is None:
                    raise
                return done
            # Report the state AWS shows now (StopDBCluster's own answer may still be
            # the state before the call).
            after = self._describe_cluster(rds, creds, t)
            raw = after.get("Status")
            return ActionOutcome(normalize_status(raw), raw, f"{api} accepted for {t.identifier}")

        # A member of a cluster is started and stopped through its cluster. The stored
        # link refuses at once, with no request. Otherwise (the normal case) the call
        # is one request: AWS itself refuses StopDBInstance / StartDBInstance on a
        # cluster member (InvalidParameterCombination, "aurora-postgresql DB instances
        # are not eligible for stopping and starting"), and only a refusal makes the
        # driver ask what the instance is now (the record may be stale): a member of a
        # cluster, already in the wanted state, or the refusal stands.
        cluster = _cluster_name(instance.cluster_provider_id)
        if cluster:
            raise _member_refusal(instance.engine, t, cluster, verb)
        op = rds.start_db_instance if verb == "start" else rds.stop_db_instance
        api = "StartDBInstance" if verb == "start" else "StopDBInstance"
        try:
            got = self._call(f"{verb} {t.identifier} ({api})", t.region, creds,
                             lambda: op(DBInstanceIdentifier=t.identifier), refusable=True,
                             endpoint=rds.meta.endpoint_url)
        except ActionRefused as refused:
            try:
                live = self._describe_instance(rds, creds, t)
            except ActionRefused:
                raise refused from None
            if live.get("DBClusterIdentifier"):
                raise _member_refusal(str(live.get("Engine") or instance.engine), t,
                                      str(live["DBClusterIdentifier"]), verb) from None
            done = self._already(verb, lambda: live.get("DBInstanceStatus"))
            if done is None:
                raise refused from None
            return done
        raw = got.get("DBInstance", {}).get("DBInstanceStatus")
        return ActionOutcome(normalize_status(raw), raw, f"{api} accepted for {t.identifier}")

    @staticmethod
    def _already(verb: str, read_status: Callable[[], Any]) -> ActionOutcome | None:
        """After AWS refused a start/stop (``InvalidDBInstanceState`` when the instance
        is already stopped, say): read the state. If the action already happened or is
        under way, that is a success; None means the refusal stands."""
        try:
            raw = read_status()
        except ActionRefused:
            return None
        status = normalize_status(raw)
        message = already_message(verb, status)
        if message is None:
            return None
        return ActionOutcome(status, raw, message, already=True)

    def restart(self, account: Account | None, instance: Instance) -> ActionOutcome:
        """Reboot an instance; for a cluster, reboot each of its member instances."""
        creds, _cfg, t, rds = self._prepare(account, instance)
        if instance.kind != InstanceKind.CLUSTER:
            got = self._call(
                f"restart {t.identifier} (RebootDBInstance)", t.region, creds,
                lambda: rds.reboot_db_instance(DBInstanceIdentifier=t.identifier),
                refusable=True, endpoint=rds.meta.endpoint_url
            )
            raw = got.get("DBInstance", {}).get("DBInstanceStatus")
            return ActionOutcome(normalize_status(raw), raw, f"rebooting {t.identifier}")
        cluster = self._describe_cluster(rds, creds, t)
        members = [str(m["DBInstanceIdentifier"]) for m in cluster.get("DBClusterMembers") or []]
        if not members:
            raise ActionRefused(f"cluster {t.identifier} has no member instances to reboot")
        raws: list[str | None] = []
        for member in members:
            got = self._call(
                f"restart {member} of cluster {t.identifier} (RebootDBInstance)", t.region,
                creds, partial(rds.reboot_db_instance, DBInstanceIdentifier=member),
                refusable=True, endpoint=rds.meta.endpoint_url
            )
            raws.append(got.get("DBInstance", {}).get("DBInstanceStatus"))
        raw = "rebooting" if "rebooting" in raws else cluster.get("Status")
        return ActionOutcome(
            normalize_status(raw), raw,
            f"rebooted {len(members)} member(s) of {t.identifier}: {', '.join(members)}",
        )

    def status(self, account: Account | None, instance: Instance) -> ActionOutcome:
        """What AWS reports now for the instance or cluster (DescribeDB*)."""
        creds, _cfg, t, rds = self._prepare(account, instance)
        if instance.kind == InstanceKind.CLUSTER:
            raw = self._describe_cluster(rds, creds, t).get("Status")
        else:
            raw = self._describe_instance(rds, creds, t).get("DBInstanceStatus")
        return ActionOutcome(normalize_status(raw), raw, f"AWS reports {raw} for {t.identifier}")

    def _describe_cluster(self, rds: Any, creds: AwsCredentials, t: _Target) -> dict[str, Any]:
        got = self._call(
            f"describe cluster {t.identifier}", t.region, creds,
            lambda: rds.describe_db_clusters(DBClusterIdentifier=t.identifier), refusable=True,
            endpoint=rds.meta.endpoint_url
        )
        clusters = got.get("DBClusters") or []
        if not clusters:
            raise ActionRefused(f"cluster {t.identifier} no longer exists in {t.region}")
        return dict(clusters[0])

    def _describe_instance(self, rds: Any, creds: AwsCredentials, t: _Target) -> dict[str, Any]:
        got = self._call(
            f"describe {t.identifier}", t.region, creds,
            lambda: rds.describe_db_instances(DBInstanceIdentifier=t.identifier),
            refusable=True, endpoint=rds.meta.endpoint_url
        )
        items = got.get("DBInstances") or []
        if not items:
            raise ActionRefused(f"{t.identifier} no longer exists in {t.region}")
        return dict(items[0])


def _member_refusal(engine: str, t: _Target, cluster: str, verb: str) -> ActionRefused:
    """A start or stop of a cluster's member, refused: it goes through the cluster."""
    family = "Aurora cluster" if engine.startswith("aurora") else "DB cluster"
    return ActionRefused(
        f"{t.identifier} is a member of {family} {cluster}; {verb} the cluster instead")


def _cluster_name(cluster_provider_id: str | None) -> str | None:
    """``c-1`` from ``arn:aws:rds:...:cluster:c-1`` (or the value itself if not an ARN)."""
    if not cluster_provider_id:
        return None
    return cluster_provider_id.rsplit(":", 1)[-1]
