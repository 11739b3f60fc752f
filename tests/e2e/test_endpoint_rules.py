"""Issue 14, items 4 and 5: the server calls a custom endpoint (an account's
``endpoint_url`` / ``api_endpoint``, a webhook) only when the operator listed it in
``SNOOZEQL_ALLOWED_ENDPOINTS``; GCP key files come only from the credentials directory,
with one message whether a refused file exists or not; foreign answers are reported as
"unexpected answer from ENDPOINT".

A real HTTP server on loopback records every request it gets, so "refused" means that
nothing reached it (no signed request, no access key id)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.config import Settings
from snoozeql.domain.endpoints import check_endpoint, endpoint_allowed, validate_patterns
from snoozeql.domain.errors import ProviderError, ValidationError
from snoozeql.domain.types import (
    Account,
    AccountStatus,
    Instance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.providers.aws.driver import AwsProvider
from snoozeql.providers.gcp.driver import GcpProvider
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.accounts import AccountService
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.notify import Notifier, StopWarning
from snoozeql.store import accounts as account_store
from tests.support.recording_server import Answer, RecordingServer

# ------------------------------------------------------------------ the pattern rule


@pytest.mark.parametrize(("url", "patterns", "allowed"), [
    ("http://127.0.0.1:5000", [], False),
    ("http://127.0.0.1:5000", ["127.0.0.1"], True),
    ("http://127.0.0.1:5000", ["127.0.0.1:5000"], True),
    ("http://127.0.0.1:5000", ["127.0.0.1:5001"], False),
    ("http://localhost:4566/", ["127.0.0.1"], False),
    ("https://rds.internal.example", ["*.internal.example"], True),
    ("https://a.b.internal.example:8443", ["*.internal.example:8443"], True),
    ("https://internal.example", ["*.internal.example"], False),
    ("https://evilinternal.example", ["*.internal.example"], False),
    ("https://RDS.Internal.Example./x", ["rds.internal.example"], True),
    ("https://rds.internal.example", ["rds.internal.example:443"], True),
    ("http://rds.internal.example", ["rds.internal.example:443"], False),
    ("http://[::1]:8080/", ["[::1]"], True),
    ("http://[::1]:8080/", ["[::1]:8081"], False),
    ("http://169.254.169.254/latest/meta-data/", ["127.0.0.1", "*.example"], False),
    ("http://user@127.0.0.1.nip.io/", ["127.0.0.1"], False),
    ("http://anything.example", ["*"], True),
])
def test_endpoint_patterns(url: str, patterns: list[str], allowed: bool) -> None:
    assert endpoint_allowed(url, patterns) is allowed


@pytest.mark.parametrize(
    "bad", ["", "http://x", "a b", "::1", "host:0", "host:99999", "*.", "[::1"])
def test_malformed_patterns_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="SNOOZEQL_ALLOWED_ENDPOINTS"):
        validate_patterns([bad])


def test_the_setting_is_a_json_list_and_empty_by_default(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.delenv("SNOOZEQL_ALLOWED_ENDPOINTS", raising=False)
    assert Settings(data_dir=tmp_path, _env_file=None).allowed_endpoints == []  # type: ignore[call-arg]
    monkeypatch.setenv("SNOOZEQL_ALLOWED_ENDPOINTS", '["127.0.0.1", "*.internal.example"]')
    got = Settings(data_dir=tmp_path, _env_file=None).allowed_endpoints  # type: ignore[call-arg]
    assert got == ["127.0.0.1", "*.internal.example"]
    monkeypatch.setenv("SNOOZEQL_ALLOWED_ENDPOINTS", '["http://x/"]')
    with pytest.raises(ValueError, match="host or host:port"):
        Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]


def test_message_says_how_to_allow_it() -> None:
    with pytest.raises(ValidationError) as exc:
        check_endpoint("http://10.0.0.7:4566/x", [], "endpoint URL")
    assert "SNOOZEQL_ALLOWED_ENDPOINTS" in exc.value.message
    assert "10.0.0.7:4566" in exc.value.message


# ------------------------------------------------------------- a recording peer


@pytest.fixture
def recorder(recording_server: Callable[..., RecordingServer]) -> RecordingServer:
    """An endpoint that answers 200 with its ``body`` and records every request."""
    return recording_server()


def _instance(account_id: uuid.UUID | None) -> Instance:
    now = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    return Instance(
        id=uuid.uuid4(), account_id=account_id, provider=ProviderKind.AWS,
        provider_id="arn:aws:rds:us-east-1:123456789012:db:db-1", kind=InstanceKind.INSTANCE,
        name="db-1", engine="postgres", engine_version="16", instance_class="db.t3.micro",
        region="us-east-1", status=InstanceStatus.RUNNING, raw_status="available", tags={},
        endpoint_host=None, endpoint_port=None, multi_az=False, node_count=1,
        cluster_provider_id=None, hourly_cost_cents=None, first_seen_at=now,
        last_seen_at=now, missing_since=None,
    )


def _only(ctx: Context, *patterns: str, **extra: Any) -> Context:
    ctx.settings = ctx.settings.model_copy(update={
        "allowed_endpoints": list(patterns), "aws_connect_timeout": 1.0,
        "aws_max_attempts": 1, **extra})
    ctx.providers = ProviderRegistry(ctx.settings)
    return ctx


# ------------------------------------------------------------------------ AWS


def test_an_unlisted_endpoint_is_refused_and_never_called(ctx: Context, aws_env: Any,
                                                          recorder: RecordingServer) -> None:
    _only(ctx)  # empty: nothing custom, loopback included
    metadata = f"{recorder.url}/latest/meta-data/iam"
    with pytest.raises(ValidationError, match="SNOOZEQL_ALLOWED_ENDPOINTS"):
        AccountService(ctx).add("aws", "probe", {"regions": "us-east-1",
                                                 "endpoint_url": metadata})
    assert AccountService(ctx).list() == []

    # an account stored before the rule (or before the list changed) is refused at call time
    account = Account(id=uuid.uuid4(), name="old", provider=ProviderKind.AWS,
                      config={"regions": ["us-east-1"], "endpoint_url": metadata})
    with ctx.engine.begin() as conn:
        account_store.insert(conn, account, datetime.now(UTC))
    report = DiscoveryService(ctx).sync("old")
    assert report.status is AccountStatus.FAILED
    assert "not an allowed endpoint" in (report.error or "")
    with pytest.raises(ProviderError, match="not an allowed endpoint"):
        AwsProvider(ctx.settings).discover(account)
    instance = _instance(account.id)
    with pytest.raises(ProviderError, match="not an allowed endpoint"):
        AwsProvider(ctx.settings).stop(account, instance)
    assert recorder.requests == []  # no signed request, no access key id

    # listing the exact host:port lets the account in; another port is still refused
    _only(ctx, f"127.0.0.1:{recorder.port + 1 if recorder.port < 65535 else 1}")
    with pytest.raises(ValidationError):
        AccountService(ctx).add("aws", "probe", {"regions": "us-east-1",
                                                 "endpoint_url": recorder.url})
    _only(ctx, f"127.0.0.1:{recorder.port}")
    assert AccountService(ctx).add("aws", "probe", {"regions": "us-east-1",
                                                    "endpoint_url": recorder.url})


def test_api_refuses_an_unlisted_endpoint_with_400(ctx: Context, recorder: RecordingServer) -> None:
    _only(ctx)
    key = ApiKeyService(ctx).create("admin-key", "admin")[1]
    api = TestClient(create_app(ctx), raise_server_exceptions=False)
    r = api.post("/api/v1/accounts", headers={"X-API-Key": key}, json={
        "provider": "aws", "name": "probe",
        "config": {"regions": ["us-east-1"], "endpoint_url": recorder.url}})
    assert r.status_code == 400
    assert "SNOOZEQL_ALLOWED_ENDPOINTS" in r.json()["error"]["message"]
    r = api.post("/api/v1/accounts", headers={"X-API-Key": key}, json={
        "provider": "gcp", "name": "probe",
        "config": {"projects": ["proj-a"], "api_endpoint": recorder.url}})
    assert r.status_code == 400
    assert recorder.requests == []


_NOT_RDS = (b'<?xml version="1.0"?><DescribeDBClustersResponse><DescribeDBClustersResult>'
            b"<DBClusters><DBCluster><Status>available</Status></DBCluster></DBClusters>"
            b"</DescribeDBClustersResult></DescribeDBClustersResponse>")


@pytest.mark.parametrize("body", [b"{}", b"<html>metadata</html>", _NOT_RDS])
def test_a_foreign_answer_is_an_unexpected_answer_not_a_key_error(
    ctx: Context, aws_env: Any, recorder: RecordingServer, body: bytes
) -> None:
    _only(ctx, "127.0.0.1")
    recorder.body, recorder.content_type = body, "text/xml"
    AccountService(ctx).add("aws", "foreign", {"regions": "us-east-1",
                                               "endpoint_url": recorder.url})
    report = DiscoveryService(ctx).sync("foreign")
    assert report.status is AccountStatus.FAILED
    assert f"unexpected answer from {recorder.url}" in (report.error or "")
    assert "KeyError" not in (report.error or "") and "metadata" not in (report.error or "")
    assert recorder.requests  # it was allowed, so it was called


# ------------------------------------------------------------------------ GCP


def _gcp(ctx: Context, creds: Path, *patterns: str) -> Context:
    return _only(ctx, *patterns, credentials_dir=creds)


def test_gcp_key_files_only_from_the_credentials_directory(ctx: Context, tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "key.json").write_text('{"type": "service_account"}')
    outside = tmp_path / "outside.json"
    outside.write_text('{"type": "service_account"}')
    (creds / "link.json").symlink_to("/etc/passwd")
    _gcp(ctx, creds)
    svc = AccountService(ctx)

    messages = []
    for path in ("/etc/shadow", "/etc/no-such-file", str(outside), str(tmp_path / "nope.json"),
                 str(creds / "link.json"), str(creds / ".." / "outside.json"),
                 str(creds / "missing.json")):
        with pytest.raises(ValidationError) as exc:
            svc.add("gcp", "g", {"projects": "proj-a", "credentials_file": path})
        messages.append(exc.value.message.replace(repr(path), "PATH"))
    # one message whatever the file: nothing learnt about which files exist
    assert len(set(messages)) == 1, messages
    assert "SNOOZEQL_CREDENTIALS_DIR" in messages[0] and "not valid JSON" not in messages[0]

    a = svc.add("gcp", "g", {"projects": "proj-a", "credentials_file": "key.json"})
    assert a.config["credentials_file"] == str((creds / "key.json").resolve())


def test_default_credentials_directory_is_in_the_data_dir(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SNOOZEQL_CREDENTIALS_DIR", raising=False)
    s = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    assert s.effective_credentials_dir == (tmp_path / "data" / "credentials").resolve()


def test_gcp_stored_key_outside_the_directory_is_never_read(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    settings = Settings(data_dir=tmp_path, credentials_dir=creds, allowed_endpoints=[],
                        _env_file=None)  # type: ignore[call-arg]
    account = Account(id=uuid.uuid4(), name="g", provider=ProviderKind.GCP,
                      config={"projects": ["p"], "credentials_file": "/etc/shadow"})
    with pytest.raises(ProviderError) as exc:
        GcpProvider(settings).discover(account)
    assert "SNOOZEQL_CREDENTIALS_DIR" in exc.value.message
    assert "JSON" not in exc.value.message and "Permission" not in exc.value.message


def test_gcp_unlisted_api_endpoint_is_never_called(tmp_path: Path,
                                                  recorder: RecordingServer) -> None:
    settings = Settings(data_dir=tmp_path, allowed_endpoints=[], _env_file=None)  # type: ignore[call-arg]
    account = Account(id=uuid.uuid4(), name="g", provider=ProviderKind.GCP,
                      config={"projects": ["p"], "api_endpoint": recorder.url})
    with pytest.raises(ProviderError, match="not an allowed endpoint"):
        GcpProvider(settings).discover(account)
    assert recorder.requests == []


def test_gcp_foreign_answer_is_reported_as_unexpected(gcp_account: Any, recorder: RecordingServer,
                                                      tmp_path: Path) -> None:
    account = gcp_account("proj-a")
    account = Account(id=account.id, name=account.name, provider=account.provider,
                      config={**account.config, "api_endpoint": recorder.url})
    recorder.body = b'{"items": [{"unexpected": true}]}'
    settings = Settings(data_dir=tmp_path, gcp_num_retries=0,
                        _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ProviderError) as exc:
        GcpProvider(settings).discover(account)
    assert f"unexpected answer from {recorder.url}" in exc.value.message
    assert "KeyError" not in exc.value.message
    assert recorder.requests


# ------------------------------------------------------------------- webhooks


def _warning() -> StopWarning:
    now = datetime(2026, 11, 23, 18, 50, tzinfo=UTC)
    return StopWarning(_instance(None), "office", now.replace(hour=19), now)


def test_webhooks_follow_the_same_allow_list(tmp_path: Path, recorder: RecordingServer,
                                             caplog: pytest.LogCaptureFixture) -> None:
    hook = f"{recorder.url}/services/T000/B000/secret-path"
    refused = Notifier(Settings(data_dir=tmp_path, webhook_urls=[hook],
                                slack_webhook_urls=[hook], allowed_endpoints=[],
                                _env_file=None))  # type: ignore[call-arg]
    assert not refused.enabled and refused.targets(_warning()) == []
    error = refused.post(hook, _warning().generic_body())
    assert error and "SNOOZEQL_ALLOWED_ENDPOINTS" in error and "secret-path" not in error
    assert "secret-path" not in caplog.text and "SNOOZEQL_ALLOWED_ENDPOINTS" in caplog.text
    assert recorder.requests == []

    allowed = Notifier(Settings(data_dir=tmp_path, webhook_urls=[hook],
                                allowed_endpoints=[f"127.0.0.1:{recorder.port}"],
                                _env_file=None))  # type: ignore[call-arg]
    [(_, url, body)] = allowed.targets(_warning())
    assert allowed.post(url, body) is None
    assert recorder.paths == ["/services/T000/B000/secret-path"]


# ----------------------------------------------------------- redirects elsewhere


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_gcp_never_follows_a_redirect_off_the_allowed_endpoint(
    gcp_account: Any, recorder: RecordingServer, tmp_path: Path, status: int,
    recording_server: Callable[..., RecordingServer],
) -> None:
    """An allowed endpoint that redirects elsewhere (an open redirect, a compromised
    test server) must not make the server call the place it points at."""
    redirector = recording_server(lambda req: Answer(
        status, headers={"Location": f"{recorder.url}/moved{req.path}"}))
    account = gcp_account("proj-a")
    account = Account(id=account.id, name=account.name, provider=account.provider,
                      config={**account.config, "api_endpoint": redirector.url})
    settings = Settings(data_dir=tmp_path, gcp_num_retries=0,
                        allowed_endpoints=[f"127.0.0.1:{redirector.port}"],
                        _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ProviderError):
        GcpProvider(settings).discover(account)
    assert redirector.requests  # the allowed endpoint was called ...
    assert recorder.requests == []  # ... and the place it points at never was


def test_a_url_clients_read_differently_is_refused_and_never_called(
    ctx: Context, aws_env: Any, recorder: RecordingServer
) -> None:
    """``http://A\\@B`` is host B for Python's URL parser (the rule) but host A for
    urllib3 (botocore): the rule must not allow what the client then sends elsewhere.
    Backslashes and blanks in an endpoint URL are refused outright."""
    other = 1 if recorder.port == 65535 else recorder.port + 1
    sneaky = f"http://127.0.0.1:{recorder.port}\\@127.0.0.1:{other}"
    for url in (sneaky, f"http://127.0.0.1:{other}\\x", f"http://127.0.0.1:{other} /",
                f"http://127.0.0.1:{other}/\t"):
        with pytest.raises(ValidationError):
            check_endpoint(url, [f"127.0.0.1:{other}"], "endpoint URL")

    # a stored account (written before, or by hand) with such a URL is refused at call time
    _only(ctx, f"127.0.0.1:{other}")
    account = Account(id=uuid.uuid4(), name="sneaky", provider=ProviderKind.AWS,
                      config={"regions": ["us-east-1"], "endpoint_url": sneaky})
    with ctx.engine.begin() as conn:
        account_store.insert(conn, account, datetime.now(UTC))
    report = DiscoveryService(ctx).sync("sneaky")
    assert report.status is AccountStatus.FAILED
    assert recorder.requests == []  # no signed request reached the other host


def test_a_credentials_file_with_a_nul_byte_is_a_400_with_the_usual_message(
    ctx: Context, tmp_path: Path
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    _gcp(ctx, creds)
    key = ApiKeyService(ctx).create("admin-key", "admin")[1]
    api = TestClient(create_app(ctx), raise_server_exceptions=False)
    for path in ("key\x00.json", "/etc/shadow\x00"):
        r = api.post("/api/v1/accounts", headers={"X-API-Key": key}, json={
            "provider": "gcp", "name": "probe",
            "config": {"projects": ["proj-a"], "credentials_file": path}})
        assert r.status_code == 400, r.text
        assert "SNOOZEQL_CREDENTIALS_DIR" in r.json()["error"]["message"]
