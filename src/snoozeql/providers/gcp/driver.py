"""GCP Cloud SQL: discovery and lifecycle through the Cloud SQL Admin API v1.

Why it looks the way it does:

* Google's own client library (``googleapiclient`` over ``httplib2``, credentials from
  ``google-auth``) with the discovery document bundled in the package
  (``static_discovery=True``): no network fetch of discovery documents, and
  ``api_endpoint`` can point at a proxy or a local test server.
* ``httplib2`` is not thread-safe, so every thread (one per project during discovery)
  builds its own client; the credentials object is shared (a concurrent token refresh
  only fetches a token twice).
* 429 and 5xx answers (and dropped connections) are retried with randomized exponential
  back-off by ``HttpRequest.execute(num_retries=...)``.
* Discovery is all or nothing: a failure on any project (403, retries exhausted, a
  ``REGION_UNREACHABLE`` warning that says the list is incomplete) raises
  :class:`ProviderError` naming every failed project, never a partial list.
* Stop and start set ``settings.activationPolicy`` to ``NEVER`` / ``ALWAYS`` with
  ``instances.patch``; restart is ``instances.restart``. Each returns a long-running
  operation that is polled with ``operations.get`` until ``DONE`` or a deadline.
* Cloud SQL cannot stop read replicas (nor read pools, nor the on-premises primaries it
  only mirrors): refused with :class:`ActionRefused` before any call that changes
  anything.

Status normalization (``raw_status`` keeps ``STATE/ACTIVATIONPOLICY``):

=========================================  =========  ==================================
Cloud SQL                                  SnoozeQL   why
=========================================  =========  ==================================
RUNNABLE + ALWAYS (or ON_DEMAND, unset)    running
RUNNABLE + NEVER, or legacy state STOPPED  stopped
PENDING_CREATE, PENDING_DELETE,            pending    a transition Cloud SQL is making
MAINTENANCE, REPAIRING
ONLINE_MAINTENANCE (deprecated)            running    it keeps serving during it
SUSPENDED                                  failed     not serving and not startable by
                                                      us (billing, legal, KMS key): a
                                                      human must act; ``stopped`` would
                                                      invite a schedule to start it
FAILED                                     failed
anything else (UNSPECIFIED, UNKNOWN_STATE)  unknown
=========================================  =========  ==================================
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import google.auth
import google.auth.exceptions
import google.oauth2.credentials
import google_auth_httplib2
import httplib2
from google.oauth2 import service_account
from googleapiclient import discovery
from googleapiclient.errors import HttpError

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
from snoozeql.observability import Telemetry
from snoozeql.providers.base import allowed_endpoint
from snoozeql.providers.gcp.config import GcpAccountConfig, credentials_file_path

__all__ = [
    "GcpProvider",
    "SCOPES",
    "instance_from_resource",
    "normalize_status",
    "parse_database_version",
    "split_provider_id",
]

logger = logging.getLogger(__name__)

#: OAuth scope asked for. cloud-platform also covers Cloud Monitoring for metrics.
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

#: Page size for instances.list; the API's default and the most it promises per page.
PAGE_SIZE = 500
#: Upper bound on pages per project, so a server that keeps sending tokens cannot loop us.
MAX_PAGES = 1000

#: Loaded credentials, keyed by their source; see ``GcpProvider._credentials``.
_CREDENTIALS_CACHE: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_CREDENTIALS_CACHE_SIZE = 64
_CREDENTIALS_LOCK = threading.Lock()

_DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "sqlserver": 1433}
_ENGINE_PREFIXES = {"POSTGRES": "postgres", "MYSQL": "mysql", "SQLSERVER": "sqlserver"}
_REPLICA_TYPES = {
    "READ_REPLICA_INSTANCE": "read replicas cannot be stopped, started or restarted",
    "READ_POOL_INSTANCE": "read pools cannot be stopped, started or restarted",
    "ON_PREMISES_INSTANCE": "this is an external (on-premises) primary that Cloud SQL "
    "only mirrors; it cannot be stopped, started or restarted from GCP",
}
_STATE_STATUS = {
    "PENDING_CREATE": InstanceStatus.PENDING,
    "PENDING_DELETE": InstanceStatus.PENDING,
    "MAINTENANCE": InstanceStatus.PENDING,
    "REPAIRING": InstanceStatus.PENDING,
    "ONLINE_MAINTENANCE": InstanceStatus.RUNNING,
    "SUSPENDED": InstanceStatus.FAILED,
    "FAILED": InstanceStatus.FAILED,
    "STOPPED": InstanceStatus.STOPPED,
}


# --------------------------------------------------------------------------------------
# Pure translation: Cloud SQL resources -> domain types
# --------------------------------------------------------------------------------------


def parse_database_version(database_version: str | None) -> tuple[str, str | None]:
    """``POSTGRES_9_6`` -> ``("postgres", "9.6")``; ``SQLSERVER_2019_STANDARD`` ->
    ``("sqlserver", "2019 standard")``; unknown -> ``("unknown", None)``."""
    if not database_version:
        return "unknown", None
    head, _, rest = database_version.partition("_")
    engine = _ENGINE_PREFIXES.get(head)
    if engine is None:
        return "unknown", None
    parts = [p for p in rest.split("_") if p]
    numbers = [p for p in parts if p.isdigit()]
    words = [p.lower() for p in parts if not p.isdigit()]
    version = " ".join(filter(None, [".".join(numbers), *words]))
    return engine, version or None


def normalize_status(state: str | None, activation_policy: str | None) -> InstanceStatus:
    """Map Cloud SQL's (state, activation policy) to a normalized status; see module doc."""
    if state == "RUNNABLE":
        return InstanceStatus.STOPPED if activation_policy == "NEVER" else InstanceStatus.RUNNING
    if state is None:
        return InstanceStatus.UNKNOWN
    return _STATE_STATUS.get(state, InstanceStatus.UNKNOWN)


def _raw_status(resource: dict[str, Any]) -> str:
    state = resource.get("state") or "SQL_INSTANCE_STATE_UNSPECIFIED"
    policy = (resource.get("settings") or {}).get("activationPolicy")
    return f"{state}/{policy}" if policy else state


def _endpoint_host(resource: dict[str, Any]) -> str | None:
    """The first PRIMARY (public) address, else the first PRIVATE one."""
    addresses = resource.get("ipAddresses") or []
    for wanted in ("PRIMARY", "PRIVATE"):
        for ip in addresses:
            if ip.get("type") == wanted and ip.get("ipAddress"):
                return str(ip["ipAddress"])
    return None


def instance_from_resource(project: str, resource: dict[str, Any]) -> DiscoveredInstance:
    """Translate one ``sql#instance`` resource of ``project``."""
    name = str(resource["name"])
    settings = resource.get("settings") or {}
    engine, version = parse_database_version(resource.get("databaseVersion"))
    extra: dict[str, Any] = {"project": project}
    for key, out in (
        ("instanceType", "instance_type"),
        ("masterInstanceName", "master_instance_name"),
        ("replicaNames", "replica_names"),
        ("connectionName", "connection_name"),
        ("gceZone", "zone"),
        ("databaseVersion", "database_version"),
        ("suspensionReason", "suspension_reason"),
    ):
        if resource.get(key):
            extra[out] = resource[key]
    return DiscoveredInstance(
        provider=ProviderKind.GCP,
        provider_id=f"{project}:{name}",
        name=name,
        kind=InstanceKind.INSTANCE,
        engine=engine,
        engine_version=version,
        instance_class=settings.get("tier"),
        region=resource.get("region"),
        status=normalize_status(resource.get("state"), settings.get("activationPolicy")),
        raw_status=_raw_status(resource),
        tags={str(k): str(v) for k, v in (settings.get("userLabels") or {}).items()},
        endpoint_host=_endpoint_host(resource),
        endpoint_port=_DEFAULT_PORTS.get(engine),
        multi_az=settings.get("availabilityType") == "REGIONAL",
        extra=extra,
    )


def split_provider_id(provider_id: str) -> tuple[str, str]:
    """``project:instance`` -> (project, instance). Splits on the *last* colon, because
    domain-scoped project IDs (``example.com:proj``) contain one; instance names never."""
    project, sep, name = provider_id.rpartition(":")
    if not sep or not project or not name:
        raise ProviderError(f"not a Cloud SQL id (want project:instance): {provider_id!r}")
    return project, name


# --------------------------------------------------------------------------------------
# Provider
# --------------------------------------------------------------------------------------


class GcpProvider:
    """Cloud SQL discovery and lifecycle.

    Knobs (keyword arguments; when left ``None`` each is read from the ``Settings``
    attribute named in brackets if it exists, else the default shown):

    * ``operation_poll_interval`` [gcp_operation_poll_seconds] = 2.0: seconds between
      ``operations.get`` calls;
    * ``operation_timeout`` [gcp_operation_timeout_seconds] = 900.0: how long to follow
      an operation before giving up (Cloud SQL stop/start usually takes 1-5 minutes);
    * ``num_retries`` [gcp_num_retries] = 5: retries of a 429 / 5xx / dropped
      connection, with randomized exponential back-off (about 1, 2, 4, 8, 16 s);
    * ``http_timeout`` [gcp_http_timeout_seconds] = 30.0: socket timeout per request.
    """

    kind = "gcp"

    def __init__(
        self,
        settings: Settings,
        *,
        operation_poll_interval: float | None = None,
        operation_timeout: float | None = None,
        num_retries: int | None = None,
        http_timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        def knob(value: Any, name: str, default: Any) -> Any:
            return value if value is not None else getattr(settings, name, default)

        self._settings = settings
        self._poll_interval = float(
            knob(operation_poll_interval, "gcp_operation_poll_seconds", 2.0)
        )
        self._operation_timeout = float(
            knob(operation_timeout, "gcp_operation_timeout_seconds", 900.0)
        )
        self._num_retries = int(knob(num_retries, "gcp_num_retries", 5))
        self._http_timeout = float(knob(http_timeout, "gcp_http_timeout_seconds", 30.0))
        self._workers = max(1, int(getattr(settings, "discovery_workers", 8)))
        self.telemetry: Telemetry | None = None  # set by the registry: counts API calls
        self._sleep = sleep

    # -- discovery -------------------------------------------------------------------
    def discover(self, account: Account) -> list[DiscoveredInstance]:
        cfg = GcpAccountConfig.from_account(account)
        if not cfg.projects:
            raise ProviderError(f"GCP account {account.name!r} lists no projects")
        credentials = self._credentials(cfg)
        workers = min(self._workers, len(cfg.projects))
        results: dict[str, list[DiscoveredInstance]] = {}
        failures: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gcp-discover") as pool:
            futures = {
                project: pool.submit(self._discover_project, credentials, cfg, project)
                for project in cfg.projects
            }
            for project, future in futures.items():
                try:
                    results[project] = future.result()
                except ProviderError as exc:
                    failures[project] = exc.message
                except (KeyError, TypeError, AttributeError, ValueError):
                    # a record without the fields Cloud SQL always sends: a foreign endpoint
                    failures[project] = (
                        f"project {project}: unexpected answer from {_endpoint(cfg)}"
                    )
                except Exception as exc:  # noqa: BLE001 - any failure fails the sync
                    logger.exception("unexpected error listing Cloud SQL in %s", project)
                    failures[project] = f"project {project}: {type(exc).__name__}: {exc}"
        if failures:
            raise ProviderError(
                "GCP discovery failed: "
                + "; ".join(failures[p] for p in cfg.projects if p in failures)
            )
        found = [inst for project in cfg.projects for inst in results[project]]
        logger.info(
            "discovered %d Cloud SQL instances in %d projects", len(found), len(cfg.projects)
        )
        return found

    def _discover_project(
        self, credentials: Any, cfg: GcpAccountConfig, project: str
    ) -> list[DiscoveredInstance]:
        service = self._service(credentials, cfg)
        what = f"project {project}: listing Cloud SQL instances"
        found: list[DiscoveredInstance] = []
        token: str | None = None
        seen_tokens: set[str] = set()
        for _ in range(MAX_PAGES):
            kwargs: dict[str, Any] = {"project": project, "maxResults": PAGE_SIZE}
            if token:
                kwargs["pageToken"] = token
            page = self._execute(service.instances().list(**kwargs), what, cfg)
            for warning in page.get("warnings") or []:
                if warning.get("code") in ("REGION_UNREACHABLE", "MAX_RESULTS_EXCEEDS_LIMIT"):
                    raise ProviderError(
                        f"{what}: the list is incomplete ({warning.get('code')}: "
                        f"{warning.get('message') or warning.get('region') or ''})"
                    )
            found.extend(instance_from_resource(project, item) for item in page.get("items") or [])
            token = page.get("nextPageToken") or None
            if token is None:
                return found
            if token in seen_tokens:
                raise ProviderError(f"{what}: the API repeated a page token")
            seen_tokens.add(token)
        raise ProviderError(f"{what}: more than {MAX_PAGES} pages")

    # -- lifecycle -------------------------------------------------------------------
    def start(self, account: Account | None, instance: Instance) -> ActionOutcome:
        return self._lifecycle(account, instance, "start")

    def stop(self, account: Account | None, instance: Instance) -> ActionOutcome:
        return self._lifecycle(account, instance, "stop")

    def restart(self, account: Account | None, instance: Instance) -> ActionOutcome:
        return self._lifecycle(account, instance, "restart")

    def status(self, account: Account | None, instance: Instance) -> ActionOutcome:
        """What Cloud SQL reports now for the instance (instances.get)."""
        cfg = GcpAccountConfig.from_account(account)
        project, name = split_provider_id(instance.provider_id)
        service = self._service(self._credentials(cfg), cfg)
        current = self._get(service, project, name, f"read Cloud SQL instance {project}:{name}",
                            cfg)
        return self._outcome(current, f"Cloud SQL reports {current.get('state')}")

    def _lifecycle(self, account: Account | None, instance: Instance, action: str) -> ActionOutcome:
        """``account`` None means Application Default Credentials and Google's endpoint."""
        cfg = GcpAccountConfig.from_account(account)
        project, name = split_provider_id(instance.provider_id)
        ident = f"{project}:{name}"
        what = f"{action} Cloud SQL instance {ident}"
        service = self._service(self._credentials(cfg), cfg)
        current = self._get(service, project, name, what, cfg)

        instance_type = current.get("instanceType") or ""
        if instance_type in _REPLICA_TYPES or current.get("masterInstanceName"):
            reason = _REPLICA_TYPES.get(instance_type, _REPLICA_TYPES["READ_REPLICA_INSTANCE"])
            raise ActionRefused(f"cannot {action} {ident}: {reason}")

        state = current.get("state")
        status = normalize_status(state, (current.get("settings") or {}).get("activationPolicy"))
        already = already_message(action, status) if action != "restart" else None
        if already is not None:
            return replace(self._outcome(current, already), already=True)
        if action == "restart" and status is InstanceStatus.STOPPED:
            raise ActionRefused(f"cannot restart {ident}: it is stopped; start it instead")
        if state not in ("RUNNABLE", "STOPPED"):
            raise ActionRefused(f"cannot {action} {ident}: Cloud SQL reports state {state}")

        instances = service.instances()
        if action == "restart":
            request = instances.restart(project=project, instance=name)
        else:
            policy = "NEVER" if action == "stop" else "ALWAYS"
            body = {"settings": {"activationPolicy": policy}}
            request = instances.patch(project=project, instance=name, body=body)
        operation = self._execute(request, what, cfg, refusable=True)
        done = self._wait(service, project, operation, what, cfg)
        final = self._get(service, project, name, what, cfg)
        return self._outcome(
            final, f"{done.get('operationType', 'operation')} {done.get('name')} done"
        )

    @staticmethod
    def _outcome(resource: dict[str, Any], message: str) -> ActionOutcome:
        settings = resource.get("settings") or {}
        return ActionOutcome(
            status=normalize_status(resource.get("state"), settings.get("activationPolicy")),
            raw_status=_raw_status(resource),
            message=message,
        )

    def _get(
        self, service: Any, project: str, name: str, what: str, cfg: GcpAccountConfig
    ) -> dict[str, Any]:
        return self._execute(service.instances().get(project=project, instance=name), what, cfg)

    def _wait(
        self,
        service: Any,
        project: str,
        operation: dict[str, Any],
        what: str,
        cfg: GcpAccountConfig,
    ) -> dict[str, Any]:
        """Poll ``operations.get`` until DONE; raise on an operation error or the deadline."""
        name = operation.get("name")
        if not name:
            raise ProviderError(f"{what}: the API returned no operation to follow")
        deadline = time.monotonic() + self._operation_timeout
        while operation.get("status") != "DONE":
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProviderError(
                    f"{what}: operation {name} did not finish within "
                    f"{self._operation_timeout:g}s (last status {operation.get('status')}); "
                    "it may still complete in GCP"
                )
            self._sleep(min(self._poll_interval, remaining))
            request = service.operations().get(project=project, operation=name)
            operation = self._execute(request, what, cfg)
        errors = (operation.get("error") or {}).get("errors") or []
        if errors:
            detail = "; ".join(
                f"{e.get('code', 'ERROR')}: {e.get('message', '')}".strip() for e in errors
            )
            raise ProviderError(f"{what}: operation {name} failed: {detail}")
        return operation

    # -- plumbing --------------------------------------------------------------------
    def _credentials(self, cfg: GcpAccountConfig) -> Any:
        """The account's credentials, cached process-wide.

        Loading a key file validates its RSA key (~0.2 s) and each fresh credentials
        object fetches a new token, so they are cached per key file (path, mtime, size:
        an edited or replaced file is reloaded) or per ADC source, and shared by every
        provider instance; google-auth refreshes the token when it expires.
        """
        allowed_endpoint(cfg.api_endpoint, self._settings, "GCP api_endpoint")
        path = cfg.credentials_file
        if path:
            path = credentials_file_path(path, self._settings, ProviderError)
            try:
                st = os.stat(path)
            except OSError as exc:
                raise ProviderError(
                    f"cannot read GCP credentials file {path}: {exc.strerror}"
                ) from None
            key: tuple[Any, ...] = ("file", path, st.st_mtime_ns, st.st_size)
        else:
            key = ("adc", os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"))
        with _CREDENTIALS_LOCK:
            cached = _CREDENTIALS_CACHE.get(key)
            if cached is not None:
                _CREDENTIALS_CACHE.move_to_end(key)
                return cached
            if path:
                creds = _load_key_file(path)
            else:
                try:
                    creds, _ = google.auth.default(scopes=list(SCOPES))
                except google.auth.exceptions.DefaultCredentialsError as exc:
                    raise ProviderError(
                        f"cannot load GCP Application Default Credentials: {_first_line(exc)}"
                    ) from None
            _CREDENTIALS_CACHE[key] = creds
            while len(_CREDENTIALS_CACHE) > _CREDENTIALS_CACHE_SIZE:
                _CREDENTIALS_CACHE.popitem(last=False)
            return creds

    def _service(self, credentials: Any, cfg: GcpAccountConfig) -> Any:
        """A fresh client: its own httplib2 connection, so one per thread."""
        http = google_auth_httplib2.AuthorizedHttp(
            credentials, http=no_redirects_http(self._http_timeout)
        )
        options = {"api_endpoint": cfg.api_endpoint} if cfg.api_endpoint else None
        return discovery.build(
            "sqladmin",
            "v1",
            http=http,
            static_discovery=True,
            cache_discovery=False,
            client_options=options,
        )

    def _execute(
        self, request: Any, what: str, cfg: GcpAccountConfig, *, refusable: bool = False
    ) -> dict[str, Any]:
        """Run a request with retries and translate every failure into a domain error."""
        try:
            result = counted_execute(self.telemetry, request, self._num_retries)
        except HttpError as exc:
            raise _http_error(exc, what, self._num_retries, refusable) from None
        except google.auth.exceptions.RefreshError as exc:
            raise ProviderError(
                f"{what}: GCP rejected the credentials: {_first_line(exc)}"
            ) from None
        except google.auth.exceptions.GoogleAuthError as exc:
            raise ProviderError(f"{what}: GCP authentication failed: {_first_line(exc)}") from None
        except (OSError, httplib2.HttpLib2Error) as exc:
            endpoint = _endpoint(cfg)
            raise ProviderError(
                f"{what}: cannot reach the Cloud SQL Admin API at {endpoint} "
                f"after {self._num_retries} retries: {type(exc).__name__}: {exc}"
            ) from None
        except (ValueError, KeyError, TypeError):
            raise ProviderError(f"{what}: unexpected answer from {_endpoint(cfg)}") from None
        return result if isinstance(result, dict) else {}


def counted_execute(telemetry: Telemetry | None, request: Any, num_retries: int) -> Any:
    """``request.execute`` counted by API method and final result on ``telemetry``.

    The client library retries a 429 inside ``execute(num_retries=...)``, out of our
    sight, so a call counts as ``throttled`` when it was still throttled after them."""
    try:
        answer = request.execute(num_retries=num_retries)
    except BaseException as exc:
        if telemetry is not None:
            operation = str(getattr(request, "methodId", None) or "request")
            throttled = isinstance(exc, HttpError) and int(exc.resp.status) == 429
            if throttled:
                telemetry.throttled("gcp", operation)
            telemetry.provider_call("gcp", operation, "throttled" if throttled else "error")
        raise
    if telemetry is not None:
        telemetry.provider_call("gcp", str(getattr(request, "methodId", None) or "request"),
                                "ok")
    return answer


def no_redirects_http(timeout: float) -> httplib2.Http:
    """An httplib2 connection that never follows a redirect: an allowed endpoint's 3xx
    pointing elsewhere is an error, not a request to a host nobody allowed."""
    http = httplib2.Http(timeout=timeout)
    http.follow_redirects = False
    http.follow_all_redirects = False
    return http


def _endpoint(cfg: GcpAccountConfig) -> str:
    return cfg.api_endpoint or "https://sqladmin.googleapis.com/"


def _load_key_file(path: str) -> Any:
    """Credentials from a service-account key file (or a gcloud user credentials file).

    Loaded by type rather than with ``google.auth.load_credentials_from_file``, which
    would also accept external-account configurations that run arbitrary executables;
    those still work through Application Default Credentials. Messages never quote
    the file's content.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh)
    except OSError as exc:
        raise ProviderError(f"cannot read GCP credentials file {path}: {exc.strerror}") from None
    except ValueError:
        raise ProviderError(f"GCP credentials file {path} is not valid JSON") from None
    kind = info.get("type") if isinstance(info, dict) else None
    try:
        if kind == "service_account":
            return service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES))
        if kind == "authorized_user":
            return google.oauth2.credentials.Credentials.from_authorized_user_info(
                info, scopes=list(SCOPES)
            )
    except ValueError as exc:
        raise ProviderError(
            f"GCP credentials file {path} is malformed: {_first_line(exc)}"
        ) from None
    raise ProviderError(
        f"GCP credentials file {path} has type {kind!r}; expected a service-account key "
        "file (use Application Default Credentials for other credential types)"
    )


def _first_line(exc: BaseException) -> str:
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _http_error(exc: HttpError, what: str, retries: int, refusable: bool) -> Exception:
    code = int(exc.resp.status)
    status, message = "", str(getattr(exc, "reason", "") or "")
    try:
        body = json.loads(exc.content.decode("utf-8", "replace"))
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            status = str(error.get("status") or "")
            message = str(error.get("message") or message)
    except (ValueError, AttributeError):
        pass
    detail = f"HTTP {code}{' ' + status if status else ''}: {message[:300]}".rstrip(": ")
    if code == 403:
        return ProviderError(f"{what}: permission denied ({detail})")
    if code == 404:
        return ProviderError(f"{what}: not found in GCP ({detail})")
    if code == 429 or code >= 500:
        return ProviderError(f"{what}: still failing after {retries} retries ({detail})")
    if refusable and code in (400, 409, 412):
        return ActionRefused(f"{what}: Cloud SQL refused it ({detail})")
    return ProviderError(f"{what}: {detail}")
