"""A local stand-in for the Google Cloud APIs SnoozeQL calls, plus pytest fixtures.

No emulator exists for the Cloud SQL Admin API, so this module is a **test double**:
a small HTTP server (stdlib ``http.server`` in a thread, on a free 127.0.0.1 port)
written from the public Cloud SQL Admin API v1 REST reference. The real Google client
library (``googleapiclient`` + ``google-auth``) talks to it over HTTP, exactly as it
would talk to ``https://sqladmin.googleapis.com/`` when pointed there with
``client_options={"api_endpoint": server.url}``.

URL layout. The bundled static discovery document ``sqladmin.v1.json`` has
``rootUrl = https://sqladmin.googleapis.com/``, an empty ``servicePath`` and method
paths such as ``v1/projects/{project}/instances``; the client joins the endpoint and
the path with one ``/``. So the server answers at ``/v1/projects/...`` of its root.

Implemented (Cloud SQL Admin API v1):

===========================================================  =========================
``GET   /v1/projects/{project}/instances``                   instances.list
                                                             (``maxResults`` default
                                                             500, max 1000;
                                                             ``pageToken`` /
                                                             ``nextPageToken``)
``GET   /v1/projects/{project}/instances/{instance}``        instances.get
``PATCH /v1/projects/{project}/instances/{instance}``        instances.patch (partial
                                                             ``settings``: see
                                                             ``_PATCHABLE_SETTINGS``)
``POST  /v1/projects/{project}/instances/{instance}/restart`` instances.restart
``GET   /v1/projects/{project}/operations/{operation}``      operations.get
``GET   /v3/projects/{project}/timeSeries``                  Cloud Monitoring
                                                             timeSeries.list (filter on
                                                             metric.type and
                                                             database_id, one_of();
                                                             per-series alignment;
                                                             paging by points)
``POST  /token``                                             OAuth 2.0 token endpoint
                                                             (JWT bearer grant, as a
                                                             service-account key file
                                                             uses it)
===========================================================  =========================

Behaviour modelled from the reference:

* Long-running operations: patch and restart return an ``Operation`` (``sql#operation``)
  in status ``PENDING``; the first ``GcpApiState.operation_polls`` ``operations.get``
  calls answer ``RUNNING`` and the next one ``DONE``. Its effect on the instance
  (activation policy, restart count) is applied when it becomes ``DONE``. A failing
  operation ends ``DONE`` with an ``error.errors[]`` list and no effect.
* Errors are Google JSON errors: ``{"error": {"code", "message", "status",
  "errors": [{"message", "domain", "reason"}]}}`` (403 ``PERMISSION_DENIED`` /
  ``notAuthorized``, 404 ``NOT_FOUND`` / ``instanceDoesNotExist``, 429
  ``RESOURCE_EXHAUSTED`` / ``rateLimitExceeded``, 503 ``UNAVAILABLE``, 401
  ``UNAUTHENTICATED``).
* Every API route needs ``Authorization: Bearer <token>`` with a token the ``/token``
  endpoint issued (set ``state.require_auth = False`` to skip). The token endpoint
  verifies the JWT assertion's RS256 signature against the public key of a registered
  service account, its expiry, its ``scope`` claim, and its audience
  (``https://oauth2.googleapis.com/token``, which google-auth always signs for).
* Choices the reference leaves open, made here on purpose: restarting an instance that
  is not running (``RUNNABLE`` + ``ALWAYS``) is HTTP 400 ``FAILED_PRECONDITION`` /
  ``invalidState``; patching a field outside ``_PATCHABLE_SETTINGS`` is HTTP 400 so a
  test never silently relies on something not modelled.

Fault injection: ``deny_project`` (403 on every call) and ``fail_next`` (the next N
calls for a project answer 429 / 5xx) apply to every route that has a ``{project}`` in
its path, so a Cloud Monitoring route added later gets them too; ``fail_operation``
(the next operation on an instance ends with an error) and ``make_region_unreachable``
(instances.list leaves a region out and says so with a ``REGION_UNREACHABLE`` warning)
are Cloud SQL specific.

Extending (e.g. Cloud Monitoring ``timeSeries.list`` for the metrics work): add a
dataclass for the new resources and a field for them on :class:`GcpApiState` (and
clear it in :meth:`GcpApiState.reset`), write a handler
``def handler(api: GcpApiServer, req: ApiRequest) -> dict`` that raises
:class:`ApiError` for failures, and append
``Route("GET", "/v3/projects/{project}/timeSeries", handler)`` to :data:`ROUTES`.
Auth, faults and the request log then apply to it unchanged. (Monitoring's bundled
discovery document ``monitoring.v3.json`` also has an empty ``servicePath``; its path
``v3/{+name}/timeSeries`` with ``name="projects/p"`` yields exactly that URL, so one
server can stand in for both APIs with each client's ``api_endpoint`` set to it.)

Fixtures (loaded as a plugin by ``tests/conftest.py``):

``gcp_api_server``       session: the running :class:`GcpApiServer`.
``gcp_service_account``  session: a real RSA service-account key file registered with
                         the server (``token_uri`` points at it); a
                         :class:`ServiceAccountKey`.
``gcp_api``              function: the server with its state reset (instances,
                         operations, faults, request log) and Google client retry
                         back-off made tiny (see :func:`_fast_google_backoff`).
                         Seed it with ``add_instance`` / ``add_instances`` and inject
                         faults with ``deny_project`` / ``fail_next`` /
                         ``fail_operation``; inspect ``requests`` / ``count``.
``gcp_account``          function: a factory ``gcp_account(*projects, adc=False)``
                         returning a domain ``Account`` that points at the server and
                         uses the key file (or, with ``adc=True``, Application Default
                         Credentials through ``GOOGLE_APPLICATION_CREDENTIALS``).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import googleapiclient.http
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt as google_jwt

from snoozeql.domain.types import Account, ProviderKind

# --------------------------------------------------------------------------------------
# State: plain dataclasses
# --------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class CloudSqlInstance:
    """One Cloud SQL instance; ``to_resource`` renders the API's DatabaseInstance."""

    project: str
    name: str
    database_version: str = "POSTGRES_15"
    region: str = "us-central1"
    gce_zone: str | None = "us-central1-a"
    tier: str = "db-custom-1-3840"
    state: str = "RUNNABLE"
    activation_policy: str = "ALWAYS"
    availability_type: str = "ZONAL"
    labels: dict[str, str] = field(default_factory=dict)
    ip_addresses: list[dict[str, str]] = field(default_factory=list)
    instance_type: str = "CLOUD_SQL_INSTANCE"
    master_instance_name: str | None = None
    replica_names: list[str] = field(default_factory=list)
    suspension_reason: list[str] = field(default_factory=list)
    settings_version: int = 1
    restart_count: int = 0

    def to_resource(self, base_url: str) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "kind": "sql#settings",
            "tier": self.tier,
            "activationPolicy": self.activation_policy,
            "availabilityType": self.availability_type,
            "settingsVersion": str(self.settings_version),
            "userLabels": dict(self.labels),
        }
        body: dict[str, Any] = {
            "kind": "sql#instance",
            "name": self.name,
            "project": self.project,
            "state": self.state,
            "databaseVersion": self.database_version,
            "region": self.region,
            "instanceType": self.instance_type,
            "backendType": "SECOND_GEN",
            "connectionName": f"{self.project}:{self.region}:{self.name}",
            "selfLink": f"{base_url}/v1/projects/{self.project}/instances/{self.name}",
            "settings": settings,
        }
        if self.gce_zone:
            body["gceZone"] = self.gce_zone
        if self.ip_addresses:
            body["ipAddresses"] = [dict(ip) for ip in self.ip_addresses]
        if self.master_instance_name:
            body["masterInstanceName"] = self.master_instance_name
        if self.replica_names:
            body["replicaNames"] = list(self.replica_names)
        if self.suspension_reason:
            body["suspensionReason"] = list(self.suspension_reason)
        return body


@dataclass
class Operation:
    """A long-running ``sql#operation``; ``effect`` runs when it becomes DONE."""

    project: str
    name: str
    operation_type: str
    target: str
    polls_left: int
    status: str = "PENDING"
    errors: list[dict[str, str]] = field(default_factory=list)
    effect: Callable[[], None] | None = None
    insert_time: str = field(default_factory=_now)
    start_time: str | None = None
    end_time: str | None = None

    def advance(self) -> None:
        """One ``operations.get`` call's worth of progress."""
        if self.status == "DONE":
            return
        if self.polls_left > 0:
            self.polls_left -= 1
            if self.status == "PENDING":
                self.status = "RUNNING"
                self.start_time = _now()
            return
        self.status = "DONE"
        self.end_time = _now()
        if self.start_time is None:
            self.start_time = self.end_time
        if not self.errors and self.effect is not None:
            self.effect()

    def to_resource(self, base_url: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "sql#operation",
            "name": self.name,
            "status": self.status,
            "operationType": self.operation_type,
            "targetId": self.target,
            "targetProject": self.project,
            "targetLink": f"{base_url}/v1/projects/{self.project}/instances/{self.target}",
            "selfLink": f"{base_url}/v1/projects/{self.project}/operations/{self.name}",
            "user": "snoozeql-test@example.iam.gserviceaccount.com",
            "insertTime": self.insert_time,
        }
        if self.start_time:
            body["startTime"] = self.start_time
        if self.end_time:
            body["endTime"] = self.end_time
        if self.status == "DONE" and self.errors:
            body["error"] = {
                "kind": "sql#operationErrors",
                "errors": [{"kind": "sql#operationError", **e} for e in self.errors],
            }
        return body


@dataclass
class ProjectFaults:
    """Injected failures for one project."""

    denied_message: str | None = None
    fail_next: deque[int] = field(default_factory=deque)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    project: str | None
    status: int


@dataclass
class TimeSeriesData:
    """One Cloud Monitoring time series of a Cloud SQL instance (raw, unaligned points).

    ``kind`` is the metric kind: ``GAUGE`` (a value at an instant) or ``DELTA`` (a count
    over the interval ending at the point, e.g. ``disk/read_ops_count``).
    """

    project: str
    database_id: str
    metric_type: str
    kind: str = "GAUGE"
    value_type: str = "DOUBLE"
    labels: dict[str, str] = field(default_factory=dict)
    points: dict[datetime, float] = field(default_factory=dict)


@dataclass
class GcpApiState:
    """Everything the server knows. Handlers mutate it under ``GcpApiServer.lock``."""

    instances: dict[tuple[str, str], CloudSqlInstance] = field(default_factory=dict)
    operations: dict[tuple[str, str], Operation] = field(default_factory=dict)
    #: Cloud Monitoring time series (timeSeries.list); seed with ``add_time_series``.
    time_series: list[TimeSeriesData] = field(default_factory=list)
    faults: dict[str, ProjectFaults] = field(default_factory=dict)
    failing_operations: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    #: project -> regions whose instances instances.list leaves out, with a
    #: REGION_UNREACHABLE warning (the API's way of saying "this list is incomplete").
    unreachable_regions: dict[str, set[str]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    #: service-account email -> PEM public key; survives ``reset`` (session-wide).
    service_accounts: dict[str, str] = field(default_factory=dict)
    #: access tokens issued by ``/token``; survive ``reset`` like real tokens.
    tokens: set[str] = field(default_factory=set)
    #: service-account email of every token granted since the last reset.
    token_grants: list[str] = field(default_factory=list)
    require_auth: bool = True
    #: operations.get calls answered PENDING/RUNNING before an operation is DONE.
    operation_polls: int = 2

    def reset(self) -> None:
        self.instances.clear()
        self.operations.clear()
        self.time_series.clear()
        self.faults.clear()
        self.failing_operations.clear()
        self.unreachable_regions.clear()
        self.requests.clear()
        self.token_grants.clear()
        self.require_auth = True
        self.operation_polls = 2


# --------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------


class ApiError(Exception):
    """A Google JSON error response."""

    def __init__(self, code: int, status: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.reason = reason
        self.message = message

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
                "status": self.status,
            }
        }


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


Handler = Callable[["GcpApiServer", ApiRequest], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    """``pattern`` uses ``{name}`` for one path segment, e.g. ``/v1/projects/{project}``."""

    method: str
    pattern: str
    handler: Handler

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        m = _compile(self.pattern).match(path)
        return {k: unquote(v) for k, v in m.groupdict().items()} if m else None


@cache
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")


def _instance(api: GcpApiServer, project: str, name: str) -> CloudSqlInstance:
    inst = api.state.instances.get((project, name))
    if inst is None:
        raise ApiError(
            404, "NOT_FOUND", "instanceDoesNotExist", "The Cloud SQL instance does not exist."
        )
    return inst


def _list_instances(api: GcpApiServer, req: ApiRequest) -> dict[str, Any]:
    project = req.params["project"]
    raw_max = req.arg("maxResults")
    try:
        max_results = int(raw_max) if raw_max is not None else 500
    except ValueError:
        raise ApiError(400, "INVALID_ARGUMENT", "invalid", "Invalid maxResults.") from None
    if max_results <= 0:
        max_results = 500
    max_results = min(max_results, 1000)
    offset = 0
    token = req.arg("pageToken")
    if token:
        try:
            offset = int(base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)[1])
        except (ValueError, IndexError):
            raise ApiError(
                400, "INVALID_ARGUMENT", "invalidPageToken", "Invalid page token."
            ) from None
    unreachable = api.state.unreachable_regions.get(project, set())
    names = sorted(
        n
        for (p, n), inst in api.state.instances.items()
        if p == project and inst.region not in unreachable
    )
    page = names[offset : offset + max_results]
    body: dict[str, Any] = {"kind": "sql#instancesList"}
    if unreachable:
        body["warnings"] = [
            {
                "code": "REGION_UNREACHABLE",
                "message": f"Region {region} is unreachable; the result may be incomplete.",
                "region": region,
            }
            for region in sorted(unreachable)
        ]
    if page:
        body["items"] = [api.state.instances[(project, n)].to_resource(api.url) for n in page]
    if offset + max_results < len(names):
        next_token = f"{project}:{offset + max_results}"
        body["nextPageToken"] = base64.urlsafe_b64encode(next_token.encode()).decode()
    return body


def _get_instance(api: GcpApiServer, req: ApiRequest) -> dict[str, Any]:
    return _instance(api, req.params["project"], req.params["instance"]).to_resource(api.url)


#: ``settings`` fields instances.patch accepts here; anything else is a 400.
_PATCHABLE_SETTINGS = {"activationPolicy", "userLabels", "tier"}


def _start_operation(
    api: GcpApiServer, inst: CloudSqlInstance, op_type: str, effect: Callable[[], None]
) -> dict[str, Any]:
    op = Operation(
        project=inst.project,
        name=str(uuid.uuid4()),
        operation_type=op_type,
        target=inst.name,
        polls_left=api.state.operation_polls,
        effect=effect,
    )
    failure = api.state.failing_operations.pop((inst.project, inst.name), None)
    if failure is not None:
        op.errors.append(failure)
    api.state.operations[(op.project, op.name)] = op
    return op.to_resource(api.url)


def _patch_instance(api: GcpApiServer, req: ApiRequest) -> dict[str, Any]:
    inst = _instance(api, req.params["project"], req.params["instance"])
    body = req.body if isinstance(req.body, dict) else {}
    extra_top = set(body) - {"settings", "name", "project", "kind"}
    settings = body.get("settings") or {}
    extra_settings = set(settings) - _PATCHABLE_SETTINGS - {"kind", "settingsVersion"}
    if extra_top or extra_settings:
        raise ApiError(
            400,
            "INVALID_ARGUMENT",
            "invalid",
            f"Fields not modelled by the test server: {sorted(extra_top | extra_settings)}",
        )
    policy = settings.get("activationPolicy")
    if policy is not None and policy not in ("ALWAYS", "NEVER"):
        raise ApiError(
            400, "INVALID_ARGUMENT", "invalidFlagValue", f"Invalid activation policy {policy}."
        )

    def effect() -> None:
        if policy is not None:
            inst.activation_policy = policy
        if "userLabels" in settings:
            inst.labels = dict(settings["userLabels"] or {})
        if "tier" in settings:
            inst.tier = settings["tier"]
        inst.settings_version += 1

    return _start_operation(api, inst, "UPDATE", effect)


def _restart_instance(api: GcpApiServer, req: ApiRequest) -> dict[str, Any]:
    inst = _instance(api, req.params["project"], req.params["instance"])
    if inst.state != "RUNNABLE" or inst.activation_policy != "ALWAYS":
        raise ApiError(
            400,
            "FAILED_PRECONDITION",
            "invalidState",
            "The instance or operation is not in an appropriate state to handle the request.",
        )

    def effect() -> None:
        inst.restart_count += 1

    return _start_operation(api, inst, "RESTART", effect)


def _get_operation(api: GcpApiServer, req: ApiRequest) -> dict[str, Any]:
    op = api.state.operations.get((req.params["project"], req.params["operation"]))
    if op is None:
        raise ApiError(404, "NOT_FOUND", "operationDoesNotExist", "The operation does not exist.")
    op.advance()
    return op.to_resource(api.url)


# -- Cloud Monitoring v3: projects.timeSeries.list ------------------------------------

_FILTER_CLAUSE = re.compile(
    r'^\s*(metric\.type|resource\.type|resource\.labels?\.database_id)\s*=\s*'
    r'(?:"([^"]*)"|one_of\(([^)]*)\))\s*$'
)
_ALIGNERS = {"ALIGN_NONE", "ALIGN_MEAN", "ALIGN_MAX", "ALIGN_MIN", "ALIGN_SUM", "ALIGN_RATE"}


def _bad(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", "badRequest", message)


def _parse_ts_filter(text: str) -> tuple[str, set[str] | None]:
    """(metric type, database ids or None for all). Clauses joined by AND; a clause this
    double does not model is a 400, so a test never relies on something ignored."""
    metric_type: str | None = None
    ids: set[str] | None = None
    for clause in re.split(r"\s+AND\s+", text.strip()):
        m = _FILTER_CLAUSE.match(clause)
        if m is None:
            raise _bad(f"Filter clause not modelled by the test server: {clause!r}")
        name, single, many = m.groups()
        values = [single] if single is not None else re.findall(r'"([^"]*)"', many or "")
        if name == "metric.type":
            metric_type = values[0]
        elif name == "resource.type":
            if values != ["cloudsql_database"]:
                raise _bad(f"Unsupported resource type {values}")
        else:
            ids = set(values) if ids is None else ids & set(values)
    if not metric_type:
        raise _bad("The filter must specify a single metric type (metric.type = ...).")
    return metric_type, ids


def _rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_rfc3339(text: str | None, name: str) -> datetime:
    if not text:
        raise _bad(f"{name} is required.")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise _bad(f"Invalid {name} {text!r}.") from None


def _align(
    series: TimeSeriesData, start: datetime, end: datetime, period: int | None, aligner: str
) -> list[dict[str, Any]]:
    """The series' points in [start, end), aligned per the request, newest first."""
    raw = sorted((t, v) for t, v in series.points.items() if start <= t < end)
    if aligner == "ALIGN_NONE" or period is None:
        return [
            {"interval": {"startTime": _rfc3339(t), "endTime": _rfc3339(t)},
             "value": {"doubleValue": v}}
            for t, v in reversed(raw)
        ]
    if aligner == "ALIGN_RATE" and series.kind != "DELTA":
        raise _bad("ALIGN_RATE applies to DELTA and CUMULATIVE metrics only.")
    buckets: dict[int, list[float]] = {}
    for t, v in raw:
        buckets.setdefault(int(t.timestamp()) // period * period, []).append(v)
    out = []
    for b in sorted(buckets, reverse=True):
        vals = buckets[b]
        value = {
            "ALIGN_MEAN": sum(vals) / len(vals), "ALIGN_MAX": max(vals), "ALIGN_MIN": min(vals),
            "ALIGN_SUM": sum(vals), "ALIGN_RATE": sum(vals) / period,
        }[aligner]
        b_start = datetime.fromtimestamp(b, UTC)
        b_end = datetime.fromtimestamp(b + period, UTC)
        out.append({"interval": {"startTime": _rfc3339(b_start), "endTime": _rfc3339(b_end)},
                    "value": {"doubleValue": value}})
    return out


def _list_time_series(api: GcpApiServer, req: ApiRequest) -> dict[str, Any]:
    """timeSeries.list: filter, interval, per-series alignment, paging by points."""
    project = req.params["project"]
    metric_type, ids = _parse_ts_filter(req.arg("filter") or "")
    start = _parse_rfc3339(req.arg("interval.startTime"), "interval.startTime")
    end = _parse_rfc3339(req.arg("interval.endTime"), "interval.endTime")
    aligner = req.arg("aggregation.perSeriesAligner") or "ALIGN_NONE"
    if aligner not in _ALIGNERS:
        raise _bad(f"Aligner not modelled by the test server: {aligner}")
    raw_period = req.arg("aggregation.alignmentPeriod")
    period: int | None = None
    if raw_period is not None:
        if not re.fullmatch(r"\d+s", raw_period) or int(raw_period[:-1]) < 60:
            raise _bad(f"Invalid alignment period {raw_period!r}; at least 60s.")
        period = int(raw_period[:-1])
    elif aligner != "ALIGN_NONE":
        raise _bad("An alignment period is required with a per-series aligner.")
    page_size = int(req.arg("pageSize") or 100_000)
    offset = int(base64.urlsafe_b64decode((req.arg("pageToken") or "MA==").encode()).decode())
    matching = [
        ts for ts in api.state.time_series
        if ts.project == project and ts.metric_type == metric_type
        and (ids is None or ts.database_id in ids)
    ]
    body: dict[str, Any] = {"timeSeries": []}
    used = 0
    index = offset
    while index < len(matching):
        ts = matching[index]
        points = _align(ts, start, end, period, aligner)
        if body["timeSeries"] and used + len(points) > page_size:
            break
        index += 1
        used += len(points)
        if points:
            body["timeSeries"].append({
                "metric": {"type": ts.metric_type, "labels": dict(ts.labels)},
                "resource": {"type": "cloudsql_database", "labels": {
                    "project_id": ts.project, "database_id": ts.database_id,
                    "region": "us-central"}},
                "metricKind": ts.kind if aligner in ("ALIGN_NONE",) else "GAUGE",
                "valueType": "DOUBLE",
                "points": points,
            })
    if index < len(matching):
        body["nextPageToken"] = base64.urlsafe_b64encode(str(index).encode()).decode()
    if not body["timeSeries"]:
        del body["timeSeries"]
    return body


#: The routing table. Append a Route to serve another API method (see module docstring).
ROUTES: list[Route] = [
    Route("GET", "/v1/projects/{project}/instances", _list_instances),
    Route("GET", "/v1/projects/{project}/instances/{instance}", _get_instance),
    Route("PATCH", "/v1/projects/{project}/instances/{instance}", _patch_instance),
    Route("POST", "/v1/projects/{project}/instances/{instance}/restart", _restart_instance),
    Route("GET", "/v1/projects/{project}/operations/{operation}", _get_operation),
    Route("GET", "/v3/projects/{project}/timeSeries", _list_time_series),
]

#: Audiences the token endpoint accepts in a JWT assertion. google-auth signs service
#: account grants for Google's token endpoint whatever the key file's ``token_uri`` says.
_TOKEN_AUDIENCES = ["https://oauth2.googleapis.com/token"]

_FAULT_STATUS = {
    429: ("RESOURCE_EXHAUSTED", "rateLimitExceeded", "Quota exceeded for quota metric."),
    500: ("INTERNAL", "internalError", "Internal error encountered."),
    502: ("UNAVAILABLE", "backendError", "Bad gateway."),
    503: ("UNAVAILABLE", "backendError", "The service is currently unavailable."),
}


# --------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------


class GcpApiServer:
    """The server, its state and the seeding / fault-injection helpers tests use."""

    def __init__(self, routes: list[Route] | None = None) -> None:
        self.routes = routes if routes is not None else ROUTES
        self.state = GcpApiState()
        self.lock = threading.RLock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.token_uri = f"{self.url}/token"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="gcp-api-test-server",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- seeding ---------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.state.reset()

    def add_instance(self, project: str, name: str, **fields: Any) -> CloudSqlInstance:
        """Add an instance; ``fields`` are :class:`CloudSqlInstance` fields."""
        with self.lock:
            n = len(self.state.instances)
            fields.setdefault(
                "ip_addresses",
                [
                    {
                        "type": "PRIMARY",
                        "ipAddress": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
                    }
                ],
            )
            inst = CloudSqlInstance(project=project, name=name, **fields)
            self.state.instances[(project, name)] = inst
            master = inst.master_instance_name
            if master and ":" in master:
                primary = self.state.instances.get(tuple(master.rsplit(":", 1)))  # type: ignore[arg-type]
                if primary is not None:
                    primary.replica_names.append(name)
            return inst

    def add_instances(
        self, project: str, count: int, prefix: str = "db", **fields: Any
    ) -> list[CloudSqlInstance]:
        return [self.add_instance(project, f"{prefix}-{i:04d}", **fields) for i in range(count)]

    def add_time_series(
        self,
        project: str,
        instance: str,
        metric_type: str,
        points: Any,
        kind: str = "GAUGE",
        labels: dict[str, str] | None = None,
    ) -> TimeSeriesData:
        """Add a Cloud Monitoring series for ``project:instance``; ``points`` are
        (aware datetime, value) pairs (raw points, one a minute as Cloud SQL writes)."""
        data = TimeSeriesData(
            project, f"{project}:{instance}", metric_type, kind, labels=dict(labels or {}),
            points={t.astimezone(UTC): float(v) for t, v in points},
        )
        with self.lock:
            self.state.time_series.append(data)
        return data

    def instance(self, project: str, name: str) -> CloudSqlInstance:
        with self.lock:
            return self.state.instances[(project, name)]

    # -- faults ----------------------------------------------------------------------
    def deny_project(
        self, project: str, message: str = "The client is not authorized to make this request."
    ) -> None:
        """Every call for ``project`` answers 403 PERMISSION_DENIED / notAuthorized."""
        with self.lock:
            self.state.faults.setdefault(project, ProjectFaults()).denied_message = message

    def fail_next(self, project: str, *statuses: int) -> None:
        """The next ``len(statuses)`` calls for ``project`` answer these HTTP statuses."""
        for s in statuses:
            if s not in _FAULT_STATUS:
                raise ValueError(f"unsupported injected status {s}")
        with self.lock:
            self.state.faults.setdefault(project, ProjectFaults()).fail_next.extend(statuses)

    def fail_operation(
        self,
        project: str,
        instance: str,
        code: str = "INTERNAL_ERROR",
        message: str = "An internal error occurred.",
    ) -> None:
        """The next operation started on this instance ends DONE with this error."""
        with self.lock:
            self.state.failing_operations[(project, instance)] = {"code": code, "message": message}

    def make_region_unreachable(self, project: str, region: str) -> None:
        """instances.list for ``project`` omits ``region`` and warns REGION_UNREACHABLE."""
        with self.lock:
            self.state.unreachable_regions.setdefault(project, set()).add(region)

    # -- inspection ------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self.state.requests)

    def count(self, method: str, pattern: str, project: str | None = None) -> int:
        """How many recorded requests match ``method`` and a route-style ``pattern``."""
        route = Route(method, pattern, _get_instance)
        return sum(
            1
            for r in self.requests
            if route.match(r.method, r.path) is not None
            and (project is None or r.project == project)
        )

    def register_service_account(self, email: str, public_key_pem: str) -> None:
        with self.lock:
            self.state.service_accounts[email] = public_key_pem

    # -- dispatch --------------------------------------------------------------------
    def dispatch(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, dict[str, Any]]:
        split = urlsplit(raw_path)
        path, query = split.path, parse_qs(split.query)
        if method == "POST" and path == "/token":
            return self._token(raw_body, headers)
        project: str | None = None
        status, body = 404, ApiError(404, "NOT_FOUND", "notFound", f"No route {path}").body()
        with self.lock:
            for route in self.routes:
                params = route.match(method, path)
                if params is None:
                    continue
                project = params.get("project")
                try:
                    self._check_auth(headers)
                    self._apply_faults(project)
                    parsed = json.loads(raw_body) if raw_body else None
                    req = ApiRequest(method, path, params, query, parsed, headers)
                    status, body = 200, route.handler(self, req)
                except ApiError as err:
                    status, body = err.code, err.body()
                except ValueError:
                    bad = ApiError(400, "INVALID_ARGUMENT", "parseError", "Invalid JSON payload.")
                    status, body = 400, bad.body()
                except Exception as exc:  # a bug in this double: say so loudly
                    bug = ApiError(500, "INTERNAL", "internalError", f"test server bug: {exc!r}")
                    status, body = 500, bug.body()
                break
            self.state.requests.append(RecordedRequest(method, path, query, project, status))
        return status, body

    def _check_auth(self, headers: dict[str, str]) -> None:
        if not self.state.require_auth:
            return
        auth = headers.get("authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        if token is None or token not in self.state.tokens:
            raise ApiError(
                401,
                "UNAUTHENTICATED",
                "authError",
                "Request had invalid authentication credentials.",
            )

    def _apply_faults(self, project: str | None) -> None:
        if project is None:
            return
        faults = self.state.faults.get(project)
        if faults is None:
            return
        if faults.denied_message is not None:
            raise ApiError(403, "PERMISSION_DENIED", "notAuthorized", faults.denied_message)
        if faults.fail_next:
            code = faults.fail_next.popleft()
            status, reason, message = _FAULT_STATUS[code]
            raise ApiError(code, status, reason, message)

    def _token(self, raw_body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """OAuth 2.0 JWT bearer grant (RFC 7523), as google-auth's service account uses."""
        form = parse_qs(raw_body.decode())
        grant = form.get("grant_type", [""])[0]
        assertion = form.get("assertion", [""])[0]

        def oauth_error(description: str) -> tuple[int, dict[str, Any]]:
            return 400, {"error": "invalid_grant", "error_description": description}

        if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not assertion:
            return oauth_error("Unsupported grant type.")
        try:
            unverified = google_jwt.decode(assertion, verify=False)
        except ValueError:
            return oauth_error("Malformed JWT.")
        with self.lock:
            key = self.state.service_accounts.get(str(unverified.get("iss")))
        if key is None:
            return oauth_error("Invalid JWT: unknown service account.")
        try:
            claims = google_jwt.decode(assertion, certs=key, audience=_TOKEN_AUDIENCES)
        except ValueError:
            return oauth_error("Invalid JWT Signature.")
        if not claims.get("scope"):
            return oauth_error("Invalid OAuth scope or ID token audience provided.")
        token = "ya29.test-" + uuid.uuid4().hex
        with self.lock:
            self.state.tokens.add(token)
            self.state.token_grants.append(str(claims.get("iss")))
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}


def _make_handler(api: GcpApiServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httplib2 expects
        # One buffered write per response and no Nagle: otherwise every response on a
        # kept-alive loopback connection waits ~40 ms for a delayed ACK.
        wbufsize = -1
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body = api.dispatch(self.command, self.path, headers, raw)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # the request log in GcpApiState replaces stderr noise

    return _Handler


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceAccountKey:
    email: str
    path: Path


class _TinyRandom:
    """Stands in for ``random`` inside googleapiclient.http: back-off of ms, not s."""

    @staticmethod
    def random() -> float:
        return 0.001


def _fast_google_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink googleapiclient's retry back-off without touching the global modules.

    ``HttpRequest`` sleeps ``rand() * 2**retry`` seconds between retries, with ``rand``
    read from ``googleapiclient.http.random.random`` when the request is built. Swapping
    the module's ``random`` name (only inside googleapiclient.http) makes each sleep a
    few milliseconds; retries still really happen over HTTP.
    """
    monkeypatch.setattr(googleapiclient.http, "random", _TinyRandom())


@pytest.fixture(scope="session")
def gcp_api_server() -> Iterator[GcpApiServer]:
    """The Cloud SQL Admin API test server, one per session (use ``gcp_api`` in tests)."""
    server = GcpApiServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gcp_service_account(
    gcp_api_server: GcpApiServer, tmp_path_factory: pytest.TempPathFactory
) -> ServiceAccountKey:
    """A real service-account key file (fresh RSA key) the server's /token accepts."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    email = "snoozeql-test@test-project.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": uuid.uuid4().hex,
        "private_key": private_pem,
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": f"{gcp_api_server.url}/auth",
        "token_uri": gcp_api_server.token_uri,
        "auth_provider_x509_cert_url": f"{gcp_api_server.url}/certs",
        "client_x509_cert_url": f"{gcp_api_server.url}/certs/{email}",
        "universe_domain": "googleapis.com",
    }
    path = tmp_path_factory.mktemp("gcp") / "service-account.json"
    path.write_text(json.dumps(info))
    path.chmod(0o600)
    gcp_api_server.register_service_account(email, public_pem)
    return ServiceAccountKey(email=email, path=path)


@pytest.fixture
def gcp_api(gcp_api_server: GcpApiServer, monkeypatch: pytest.MonkeyPatch) -> GcpApiServer:
    """The server with empty state, and googleapiclient's retry back-off made tiny."""
    gcp_api_server.reset()
    _fast_google_backoff(monkeypatch)
    return gcp_api_server


@pytest.fixture
def gcp_account(
    gcp_api: GcpApiServer,
    gcp_service_account: ServiceAccountKey,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Account]:
    """Factory: ``gcp_account(*projects, adc=False)`` -> an Account aimed at the server."""

    def make(*projects: str, adc: bool = False, name: str = "gcp-test") -> Account:
        if adc:
            monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(gcp_service_account.path))
        config = {
            "projects": list(projects),
            "credentials_file": None if adc else str(gcp_service_account.path),
            "api_endpoint": gcp_api.url,
        }
        return Account(id=uuid.uuid4(), name=name, provider=ProviderKind.GCP, config=config)

    return make


__all__ = [
    "ROUTES",
    "ApiError",
    "ApiRequest",
    "CloudSqlInstance",
    "GcpApiServer",
    "GcpApiState",
    "Operation",
    "ProjectFaults",
    "RecordedRequest",
    "Route",
    "ServiceAccountKey",
    "TimeSeriesData",
]
