"""Issue 14, item 3: an AWS role's external id is stored encrypted, shown as ``set`` to
everyone but admins over the API (viewers, audit, the CLI), and still reaches STS."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.domain.types import Account, ProviderKind
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.accounts import AccountService
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.discovery import DiscoveryService
from snoozeql.store import accounts as account_store
from tests.support.local_databases import store_dump

EXTERNAL_ID = "ext-Sup3r-S3cret-4711"
ROLE = "arn:aws:iam::222233334444:role/snoozeql-reader"


def _api(ctx: Context) -> TestClient:
    keys = {role: ApiKeyService(ctx).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator", "admin")}
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    client.keys = keys  # type: ignore[attr-defined]
    return client


def _as(api: TestClient, role: str) -> dict[str, str]:
    return {"X-API-Key": api.keys[role]}  # type: ignore[attr-defined]


def test_external_id_is_encrypted_and_shown_as_set(ctx: Context, aws_env: Any,
                                                   aws_proxy: Any) -> None:
    ctx.settings = ctx.settings.model_copy(update={"aws_max_attempts": 2})
    ctx.providers = ProviderRegistry(ctx.settings)
    api = _api(ctx)
    r = api.post("/api/v1/accounts", headers=_as(api, "admin"), json={
        "provider": "aws", "name": "other", "config": {
            "regions": ["us-east-1"], "role_arn": ROLE, "external_id": EXTERNAL_ID,
            "endpoint_url": aws_proxy.url}})
    assert r.status_code == 201, r.text
    assert r.json()["config"]["external_id"] == EXTERNAL_ID  # the admin who set it

    assert EXTERNAL_ID not in store_dump(ctx)  # not in the row, not in the audit log

    for role in ("viewer", "operator"):
        listed = api.get("/api/v1/accounts", headers=_as(api, role))
        one = api.get("/api/v1/accounts/other", headers=_as(api, role))
        assert listed.json()[0]["config"]["external_id"] == "set"
        assert one.json()["config"]["external_id"] == "set"
        assert EXTERNAL_ID not in listed.text + one.text
        audit = api.get("/api/v1/audit", headers=_as(api, role))
        assert audit.status_code == 200 and EXTERNAL_ID not in audit.text
    [entry] = api.get("/api/v1/audit?kind=account", headers=_as(api, "viewer")).json()
    assert entry["after"]["config"]["external_id"] == "set"
    admin = api.get("/api/v1/accounts/other", headers=_as(api, "admin")).json()
    assert admin["config"]["external_id"] == EXTERNAL_ID

    # a change keeps it (and its audit entry shows "set" on both sides)
    r = api.patch("/api/v1/accounts/other", headers=_as(api, "admin"),
                  json={"config": {"regions": ["us-east-1", "eu-west-1"]}})
    assert r.status_code == 200 and r.json()["config"]["external_id"] == EXTERNAL_ID
    assert EXTERNAL_ID not in store_dump(ctx)
    # sending back what a viewer sees ("set") keeps the value
    r = api.patch("/api/v1/accounts/other", headers=_as(api, "admin"),
                  json={"config": {"external_id": "set"}})
    assert r.status_code == 200 and r.json()["config"]["external_id"] == EXTERNAL_ID

    # the provider still gets the real value: STS receives it
    report = DiscoveryService(ctx).sync("other")
    assert report.error is None, report.error
    assumes = aws_proxy.actions("AssumeRole")
    assert assumes and all(a.params["ExternalId"] == EXTERNAL_ID for a in assumes)

    # removing the role removes the secret too
    r = api.patch("/api/v1/accounts/other", headers=_as(api, "admin"),
                  json={"config": {"role_arn": None, "external_id": None}})
    assert r.status_code == 200 and "external_id" not in r.json()["config"]
    assert api.delete("/api/v1/accounts/other", headers=_as(api, "admin")).status_code == 204


def test_a_plain_text_external_id_from_before_is_encrypted_on_first_read(ctx: Context) -> None:
    legacy = Account(id=uuid4(), name="legacy", provider=ProviderKind.AWS,
                     config={"regions": ["us-east-1"], "role_arn": ROLE,
                             "external_id": EXTERNAL_ID})
    with ctx.engine.begin() as conn:
        account_store.insert(conn, legacy, datetime.now(UTC))
    assert EXTERNAL_ID in store_dump(ctx)
    [a] = AccountService(ctx).list()
    assert a.config["external_id"] == EXTERNAL_ID
    assert EXTERNAL_ID not in store_dump(ctx)
    assert AccountService(ctx).get("legacy").config["external_id"] == EXTERNAL_ID


def test_listing_a_plain_text_row_with_an_encrypted_one_decrypts_both(ctx: Context) -> None:
    """The first listing after an upgrade, with an account added since (encrypted) beside
    one from before (plain text): both come back with their external id, so a sync of
    every account assumes each role with its id."""
    AccountService(ctx).add("aws", "newer", {"regions": "us-east-1", "role_arn": ROLE,
                                             "external_id": "newer-id"})
    legacy = Account(id=uuid4(), name="legacy", provider=ProviderKind.AWS,
                     config={"regions": ["us-east-1"], "role_arn": ROLE,
                             "external_id": EXTERNAL_ID})
    with ctx.engine.begin() as conn:
        account_store.insert(conn, legacy, datetime.now(UTC))
    got = {a.name: a.config.get("external_id") for a in AccountService(ctx).list()}
    assert got == {"legacy": EXTERNAL_ID, "newer": "newer-id"}
    assert EXTERNAL_ID not in store_dump(ctx)


def test_cli_shows_set(snoozeql_cli: Any, aws_env: Any) -> None:
    cli = snoozeql_cli
    r = cli("accounts", "add", "aws", "other", "--regions", "us-east-1", "--role-arn", ROLE,
            "--external-id", EXTERNAL_ID, "--endpoint-url", aws_env.endpoint_url, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["config"]["external_id"] == "set"
    for args in (("accounts", "show", "other"), ("accounts", "show", "other", "--json"),
                 ("accounts", "list", "--json"), ("audit", "list", "--json")):
        out = cli(*args)
        assert out.exit_code == 0, out.output
        assert EXTERNAL_ID not in out.output, args
    assert "set" in cli("accounts", "show", "other").output
