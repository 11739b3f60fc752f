"""Issue 14, items 4 and 5: the server calls a custom endpoint (an account's
``endpoint_url`` / ``api_endpoint``, a webhook) only when the operator listed it in
``SNOOZEQL_ALLOWED_ENDPOINTS``; GCP key files come only from the credentials directory,
with one message whether a refused file exists or not; foreign answers are reported as
"unexpected answer from ENDPOINT".

A real HTTP server on loopback records every request it gets, so "refused" means that
nothing reached it (no signed request, no access key id)."""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Iterator
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
from snoozeql.providers.aws import AwsProvider
from snoozeql.providers.gcp import GcpProvider
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.accounts import AccountService
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.notify import Notifier, StopWarning
from snoozeql.store import accounts as account_store

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


class Recorder:
    """An HTTP server on 127.0.0.1 that records every request and answers ``body``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.body = b"{}"
        self.content_type = "application/json"
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                rec.requests.append({"method": self.command, "path": self.path,
                                     "headers": dict(self.headers),
                                     "body": self.rfile.read(length)})
                self.send_response(200)
                self.send_header("Content-Type", rec.content_type)
                self.send_header("Content-Length", str(len(rec.body)))
                self.end_headers()
                self.wfile.write(rec.body)

            do_GET = do_POST = do_PUT = _answer  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.close()


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
                                                          recorder: Recorder) -> None:
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


def test_api_refuses_an_unlisted_endpoint_with_400(ctx: Context, recorder: Recorder) -> None:
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
    ctx: Context, aws_env: Any, recorder: Recorder, body: bytes
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


def test_gcp_unlisted_api_endpoint_is_never_called(tmp_path: Path, recorder: Recorder) -> None:
    settings = Settings(data_dir=tmp_path, allowed_endpoints=[], _env_file=None)  # type: ignore[call-arg]
    account = Account(id=uuid.uuid4(), name="g", provider=ProviderKind.GCP,
                      config={"projects": ["p"], "api_endpoint": recorder.url})
    with pytest.raises(ProviderError, match="not an allowed endpoint"):
        GcpProvider(settings).discover(account)
    assert recorder.requests == []


def test_gcp_foreign_answer_is_reported_as_unexpected(gcp_account: Any, recorder: Recorder,
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


def test_webhooks_follow_the_same_allow_list(tmp_path: Path, recorder: Recorder,
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
    assert [r["path"] for r in recorder.requests] == ["/services/T000/B000/secret-path"]
