"""Dashboard pages over HTTP without a browser (fast checks of server behaviour; the
browser tests are in test_web_dashboard.py): sign-in form and its CSRF, redirects,
the demo banner, error pages, CSV downloads, roles on every POST route."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(ctx), base_url="http://127.0.0.1") as c:
        yield c


def sign_in(c: TestClient, key: str) -> str:
    page = c.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = c.post("/login", data={"api_key": key, "csrf_token": token, "next": "/audit"},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/audit"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    home = c.get("/")
    return re.search(r'data-csrf="([0-9a-f]+)"', home.text).group(1)  # type: ignore[union-attr]


def test_sign_in_needs_the_forms_token_and_redirects_when_signed_in(
        client: TestClient, ctx: Context) -> None:
    _, key = ApiKeyService(ctx).create("me", "viewer")
    r = client.post("/login", data={"api_key": key, "csrf_token": "nope"})
    assert r.status_code == 403 and "sign-in form expired" in r.text
    assert "snoozeql_session" not in client.cookies
    sign_in(client, key)
    r = client.get("/login?next=/instances", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/instances"
    r = client.get("/login?next=https://evil.example/", follow_redirects=False)
    assert r.headers["location"] == "/"


def test_every_action_route_refuses_a_viewer(client: TestClient, ctx: Context) -> None:
    _, key = ApiKeyService(ctx).create("watcher", "viewer")
    token = sign_in(client, key)
    some_id = "00000000-0000-0000-0000-000000000001"
    for path in ("/instances/bulk/preview", "/instances/bulk", f"/instances/{some_id}/action",
                 f"/instances/{some_id}/override", f"/instances/{some_id}/override/clear",
                 "/accounts", "/accounts/x/sync", "/accounts/x/remove", "/local",
                 f"/local/{some_id}/action", "/keys", "/keys/watcher/revoke"):
        r = client.post(path, data={"csrf_token": token, "action": "stop", "state": "running",
                                    "until": "2h", "provider": "aws", "name": "x"})
        assert r.status_code == 403, path
        assert "needs the" in r.text and "role" in r.text, path
        assert r.headers["content-type"].startswith("text/html"), path
    assert client.get(f"/instances/{some_id}/connection-url").status_code == 403


def test_demo_banner_and_unknown_pages(client: TestClient, ctx: Context) -> None:
    _, key = ApiKeyService(ctx).create("me", "admin")
    sign_in(client, key)
    assert 'data-testid="demo-banner"' not in client.get("/").text
    ctx.settings = ctx.settings.model_copy(update={"demo": True})
    page = client.get("/").text
    assert 'data-testid="demo-banner"' in page and "(demo)" in page
    r = client.get("/nowhere")
    assert r.status_code == 404 and "There is no page here" in r.text
    assert client.get("/api/v1/nowhere").json()["error"]["code"] == "not_found"


def test_csv_downloads(client: TestClient, ctx: Context) -> None:
    _, key = ApiKeyService(ctx).create("me", "admin")
    sign_in(client, key)
    ApiKeyService(ctx).create("other", "viewer", actor="me")
    r = client.get("/audit?kind=apikey&format=csv")
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="audit.csv"' in r.headers["content-disposition"]
    assert "other" in r.text and "sqk_" not in r.text
    r = client.get("/activity?format=csv")
    assert r.text.startswith("at,finished_at,instance")
    r = client.get("/activity?since=yesterday")
    assert r.status_code == 400 and "since" in r.text and "<html" in r.text


def test_instance_page_survives_a_bad_timezone_tag(client: TestClient, ctx: Context) -> None:
    from snoozeql.domain.types import InstanceStatus
    from snoozeql.store import instances as instance_store
    from tests.store.test_web_services import add

    _, key = ApiKeyService(ctx).create("me", "viewer")
    sign_in(client, key)
    iid = add(ctx, "tz-odd", InstanceStatus.RUNNING)
    with ctx.engine.begin() as conn:
        conn.execute(instance_store.instances.update().where(instance_store.instances.c.id == iid)
                     .values(tags={"timezone": "Mars/Olympus"}))
    r = client.get(f"/instances/{iid}")
    assert r.status_code == 200
    assert "Mars/Olympus" in r.text and 'class="alert error"' in r.text


def test_bad_filter_values_are_explained_not_ignored_or_leaked(
        client: TestClient, ctx: Context) -> None:
    _, key = ApiKeyService(ctx).create("me", "viewer")
    sign_in(client, key)
    r = client.get("/instances?cursor=garbage")
    assert r.status_code == 400 and "<html" in r.text
    assert "codec" not in r.text and "first page" in r.text
    for query, word in (("action=zzz", "action"), ("result=zzz", "result")):
        r = client.get(f"/activity?{query}")
        assert r.status_code == 400 and word in r.text and "<html" in r.text, query
        assert "zzz" in r.text, query


def test_the_overview_never_analyses_the_fleet_on_a_page_load(
    client: TestClient, ctx: Context
) -> None:
    """Top recommendations come from this process's last analysis; before there is one
    the panel says so instead of analysing every instance while the page waits."""
    from snoozeql.services.recommendations import RecommendationService

    _, key = ApiKeyService(ctx).create("ov", "viewer")
    sign_in(client, key)
    page = client.get("/").text
    assert "being analysed in the background" in page
    RecommendationService(ctx).list()  # what the analyse-activity job does
    page = client.get("/").text
    assert "being analysed in the background" not in page
    assert "No recommendations yet" in page


def test_the_table_counts_as_far_as_select_all_reaches_and_all_on_request(
        client: TestClient, ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """The header counts exactly up to the bulk limit (here 3) and says "more than"
    beyond it, with a "count all" button whose request counts to the end."""
    from snoozeql.domain.types import InstanceStatus
    from snoozeql.web.routes import instances as page_module
    from tests.store.test_web_services import add

    monkeypatch.setattr(page_module, "MAX_REFS", 3)
    monkeypatch.setattr(page_module, "COUNT_CAP", 4)
    for n in range(30):
        add(ctx, f"db-{n:02d}", InstanceStatus.STOPPED if n < 2 else InstanceStatus.RUNNING)
    assert client.get("/instances/count", follow_redirects=False).status_code == 303
    _, key = ApiKeyService(ctx).create("op", "operator")
    sign_in(client, key)

    page = client.get("/instances?limit=25&status=running").text
    assert page.count('<tr data-id="') == 25
    count = re.search(r'data-testid="matching">(.*?)</p>', page, re.S).group(1)  # type: ignore[union-attr]
    assert "<strong>more than 3</strong> matching" in count and ", showing 25" in count
    button = re.search(r'<button[^>]*data-testid="count-all"[^>]*>', count).group(0)  # type: ignore[union-attr]
    url = re.search(r'hx-get="([^"]+)"', button).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert "status=running" in url and url.startswith("/instances/count?")
    assert client.get(url).text.strip() == "<strong>28</strong> matching"
    assert re.search(r'id="select-all-matching" disabled title="more than 3 match', page)
    assert "Select all matching</label>" in page

    page = client.get("/instances?limit=25&status=stopped").text  # one page holds both
    assert "<strong>2</strong> matching</span>, showing 2" in page and "count-all" not in page
    assert "Select all 2 matching</label>" in page
    assert re.search(r'id="select-all-matching">', page)  # not disabled
    r = client.get("/instances/count?status=sleepy")
    assert r.status_code == 400 and "unknown status" in r.text


def test_the_account_form_is_drawn_from_the_providers_settings(
        client: TestClient, ctx: Context) -> None:
    """One field per setting each cloud plugin declares (``<cloud>.<setting>``); only the
    chosen cloud's are read; a secret setting is a password field never sent back."""
    from snoozeql.services.accounts import AccountService, cloud_forms

    _, key = ApiKeyService(ctx).create("boss", "admin")
    token = sign_in(client, key)
    page = client.get("/accounts").text
    for cloud in cloud_forms():
        assert f'name="provider" value="{cloud.name}"' in page
        for f in cloud.fields:
            assert f'name="{cloud.name}.{f.name}"' in page, (cloud.name, f.name)
    assert re.search(r'name="aws.external_id"[^>]*type="password"', page)

    secret = "ext-id-0b5e7c"
    form = {"csrf_token": token, "provider": "aws", "name": "web-acct",
            "aws.regions": "eu-west-1", "aws.external_id": secret,
            "aws.role_arn": "arn:aws:iam::123456789012:role/reader",
            "gcp.projects": "ignored-project", "intent": "validate"}
    r = client.post("/accounts", data=form)
    assert r.status_code == 200 and "The settings are valid" in r.text
    assert "external_id=(set)" in r.text and secret not in r.text
    assert 'value="eu-west-1"' in r.text  # the form keeps what was typed, secrets aside

    r = client.post("/accounts", data=form | {"intent": "add", "aws.regions": ""})
    assert r.status_code == 400 and "at least one region" in r.text
    assert AccountService(ctx).list() == []  # nothing half-made
    r = client.post("/accounts", data=form | {"intent": "add"})
    assert r.status_code == 200 and "Added web-acct." in r.text
    [made] = AccountService(ctx).list()
    assert made.config["regions"] == ["eu-west-1"] and "projects" not in made.config
    r = client.post("/accounts", data=form | {"provider": "azure", "intent": "add"})
    assert r.status_code == 422 and "unknown provider &#39;azure&#39;" in r.text
