"""The stacks editor in a real browser: Debian's Chromium (Playwright) against a real
``snoozeql serve``, with stack instances applied as real native database processes.

One serve and one browser for the module; each test signs in its own browser context.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from snoozeql.config import Settings
from snoozeql.providers.local.native import NativeRuntime
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.stacks import StackService
from snoozeql.services.templates import TemplateService
from tests.support.moto_server import free_port
from tests.support.web import SNOOZEQL, WebServer, axe_violations, launch_chromium, sign_in

pytestmark = pytest.mark.slow


@dataclass
class Dash:
    server: WebServer
    browser: Any
    keys: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def page(self, role: str) -> Any:
        return sign_in(self.browser, self.url, self.keys[role])

    def svc(self) -> StackService:
        return StackService(self.server.ctx())

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real CLI on the same store."""
        return subprocess.run([SNOOZEQL, *args], env=self.server.env, capture_output=True,
                              text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def dash(debian_servers: None) -> Iterator[Dash]:
    # native database servers run as unprivileged users: a data dir they can enter
    data_dir = Path(tempfile.mkdtemp(prefix="snoozeql-webstacks-", dir="/tmp"))
    os.chmod(data_dir, 0o755)
    server = WebServer(data_dir, env={
        "SNOOZEQL_DOCKER_HOST": "unix:///nonexistent/snoozeql-test/docker.sock"})
    pw = browser = None
    try:
        ctx = server.ctx()
        keys = {role: ApiKeyService(ctx).create(f"{role}-key", role)[1]
                for role in ("viewer", "operator", "admin")}
        server.start()
        pw, browser = launch_chromium()
        yield Dash(server, browser, keys)
    finally:
        if browser is not None:
            browser.close()
        if pw is not None:
            pw.stop()
        server.stop()
        runtime = NativeRuntime(Settings(data_dir=data_dir), stop_timeout=5)
        for name in runtime.names():
            with contextlib.suppress(Exception):
                runtime.stop(name)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def debian_servers() -> None:
    from tests.support.local_servers import DEBIAN_SERVERS, _check_server

    for engine in DEBIAN_SERVERS:
        _check_server(engine)


def forged_post(page: Any, path: str, data: dict[str, str]) -> int:
    """POST from inside the signed-in page (its cookies), as a script could."""
    return int(page.evaluate(
        """async ([path, data]) => {
            const r = await fetch(path, {method: 'POST', body: new URLSearchParams(data),
                headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                credentials: 'same-origin'});
            return r.status;
        }""", [path, data]))


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def no_serious_violations(page: Any) -> None:
    found = axe_violations(page)
    assert found == [], (page.url, found)


def states(page: Any) -> dict[str, str]:
    return dict(page.locator("#instances-table tbody tr").evaluate_all(
        "trs => trs.map(t => [t.dataset.name, t.querySelector('[data-testid=state]')"
        ".textContent.trim()])"))


def add_instance(page: Any, stack: str, template: str, name: str) -> None:
    page.goto(f"/stacks/{stack}")
    page.get_by_label("Search the catalogue").fill(template)
    card = page.locator("#tpl-list li:not([hidden])")
    assert card.count() >= 1
    page.locator(f"#tpl-list input[value='{template}']").check()
    page.get_by_label("Instance name").fill(name)
    page.get_by_role("button", name="Add instance").click()
    page.wait_for_url(re.compile(rf"/stacks/{stack}$"))
    assert f"Added {name} from {template}" in page.get_by_test_id("notice").inner_text()


WATCH_PROGRESS = """() => {
    // every state of the progress table the page went through, as it went
    window.__seen = [];
    new MutationObserver(() => {
        window.__seen.push(Array.from(document.querySelectorAll('#run-table tbody tr'))
            .map(tr => tr.dataset.outcome || tr.children[2].textContent));
    }).observe(document.getElementById('run-region'),
               {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def run(page: Any, what: str) -> dict[str, str]:
    """Click Apply or Down and wait for the streamed outcome; outcome per instance."""
    page.evaluate(WATCH_PROGRESS)
    page.get_by_role("button", name=what, exact=True).click()
    if what == "Down":
        page.get_by_test_id("confirm").click()
    region = page.get_by_test_id("run-region")
    region.wait_for(state="visible")
    page.wait_for_function(
        "() => document.getElementById('run-region').dataset.done", timeout=120_000)
    return dict(page.locator("#run-table tbody tr").evaluate_all(
        "trs => trs.map(t => [t.dataset.instance, t.dataset.outcome])"))


# --- the whole flow ---------------------------------------------------------------------


def test_create_override_export_apply_kill_and_apply_again(dash: Dash) -> None:
    page = dash.page("operator")
    page.goto("/stacks")
    no_serious_violations(page)
    page.get_by_label("Name", exact=True).fill("shop")
    page.get_by_label("Description (optional)").fill("the shop")
    page.get_by_role("button", name="Create stack").click()
    page.wait_for_url(re.compile(r"/stacks/shop$"))
    assert page.get_by_test_id("empty").is_visible()
    no_serious_violations(page)

    # the catalogue search hides what does not match
    page.get_by_label("Search the catalogue").fill("zzz-no-such")
    assert page.locator("#tpl-none").is_visible()
    add_instance(page, "shop", "redis", "cache")
    add_instance(page, "shop", "postgres", "db")
    assert states(page) == {"cache": "not applied", "db": "not applied"}

    # ports: a bad row is refused inline (and nothing is written), then a good one
    cache_port, db_port = free_port(), free_port()
    page.goto("/stacks/shop/instances/cache?tab=ports")
    no_serious_violations(page)
    page.get_by_label("replace the template's ports").check()
    page.get_by_role("button", name="Add a row").click()
    page.get_by_label("Host IP of row 1").fill("127.0.0.1")
    page.get_by_label("Host port of row 1").fill("99999")
    page.get_by_label("Container port of row 1").fill("6379")
    page.get_by_role("button", name="Save ports").click()
    error = page.get_by_test_id("form-error").inner_text()
    assert "row 1" in error and "host port must be from 1 to 65535" in error
    assert page.locator("tr.sk-bad").count() == 1
    assert [o.kind.value for o in dash.svc().get_instance("shop", "cache").overrides] == [
        "env_vars"]  # only the generated password: no ports override was written
    page.get_by_label("Host port of row 1").fill(str(cache_port))
    page.get_by_role("button", name="Save ports").click()
    assert "Saved the ports override (replace)" in page.get_by_test_id("notice").inner_text()
    eff = page.locator("table.sk-eff[data-kind=ports] tr")
    assert eff.evaluate_all("trs => trs.map(t => [t.dataset.entry, t.dataset.origin])") == [
        [f"127.0.0.1:{cache_port}:6379/tcp", "replaced"]]

    for kind in ("volumes", "labels", "domains", "healthcheck", "config_files"):
        page.goto(f"/stacks/shop/instances/cache?tab={kind}")
        no_serious_violations(page)
    page.goto("/stacks/shop/instances/db?tab=ports")
    page.get_by_label("replace the template's ports").check()
    page.get_by_role("button", name="Add a row").click()
    page.get_by_label("Host port of row 1").fill(str(db_port))
    page.get_by_label("Container port of row 1").fill("5432")
    page.get_by_role("button", name="Save ports").click()
    page.get_by_test_id("notice").wait_for()

    # env: the generated password is a stored secret (masked, never in the HTML)
    page.goto("/stacks/shop/instances/db?tab=env_vars")
    no_serious_violations(page)
    password = dash.svc().secrets("shop", "db").env_vars[0].value
    assert password and password not in page.content()
    page.get_by_role("button", name="Add a row").click()
    page.get_by_label("Name of row 2").fill("TZ")
    page.get_by_label("Value of row 2").fill("UTC")
    page.get_by_role("button", name="Save environment").click()
    page.get_by_test_id("notice").wait_for()
    env = dict(page.locator("table.sk-eff[data-kind=env_vars] tr").evaluate_all(
        "trs => trs.map(t => [t.dataset.entry, t.dataset.origin])"))
    assert env["TZ"] == "override" and env["POSTGRES_USER"] == "template"
    assert env["POSTGRES_PASSWORD"] == "override"
    # the stored secret was kept as it was (the blank field means "unchanged")
    assert dash.svc().secrets("shop", "db").env_vars[0].value == password
    assert password not in page.content()
    page.get_by_role("button", name="Reveal POSTGRES_PASSWORD").click()
    page.wait_for_function("() => document.getElementById('value-0').type === 'text'")
    assert page.locator("#value-0").input_value() == password

    # export: the page, the download and the zip are the CLI's export
    page.goto("/stacks/shop/export")
    no_serious_violations(page)
    cli_yaml = dash.cli("stacks", "export", "shop")
    assert cli_yaml.returncode == 0, cli_yaml.stderr
    assert page.get_by_test_id("compose-yaml").text_content() == cli_yaml.stdout
    with page.expect_download() as dl:
        page.get_by_test_id("download-yaml").click()
    assert Path(dl.value.path()).read_text() == cli_yaml.stdout
    assert "${SNOOZEQL_DB_POSTGRES_PASSWORD}" in cli_yaml.stdout and password not in page.content()
    with page.expect_download() as dl:
        page.get_by_test_id("download-zip").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(dl.value.path()).read_bytes()))
    out = Path(tempfile.mkdtemp(prefix="snoozeql-export-"))
    try:
        written = dash.cli("stacks", "export", "shop", "-o", str(out))
        assert written.returncode == 0, written.stderr
        names = {n.split("/", 1)[1] for n in archive.namelist()}
        assert names == {"compose.yaml", ".env"}
        project = archive.namelist()[0].split("/")[0]
        for name in names:
            assert archive.read(f"{project}/{name}").decode() == (out / name).read_text()
        assert (archive.getinfo(f"{project}/.env").external_attr >> 16) & 0o777 == 0o600
    finally:
        shutil.rmtree(out, ignore_errors=True)

    # plan, then apply natively, with the outcome per instance
    page.goto("/stacks/shop")
    plan = dict(page.locator("#plan-table tbody tr").evaluate_all(
        "trs => trs.map(t => [t.dataset.instance, t.dataset.action])"))
    assert plan == {"cache": "create", "db": "create"}
    try:
        assert run(page, "Apply") == {"cache": "ok", "db": "ok"}
        assert page.locator("#run-status").inner_text() == "Done: every step succeeded."
        # the steps arrived one by one: the page showed the first done while the
        # second still waited or worked (a buffered answer would show only the end)
        seen = page.evaluate("window.__seen")
        assert ["ok", "working…"] in seen or ["ok", "waiting"] in seen, seen
        no_serious_violations(page)  # with the progress table
        page.wait_for_function("() => document.querySelector('h1 [data-testid=state]')"
                               ".textContent.trim() === 'up'")
        assert states(page) == {"cache": "running", "db": "running"}
        assert port_open(cache_port) and port_open(db_port)

        # killed behind SnoozeQL's back: failed in the stack page, the plan and the list
        pid = NativeRuntime(dash.server.settings()).status("snoozeql-shop-cache", None).pid
        assert pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while port_open(cache_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        page.goto("/stacks/shop")
        assert states(page) == {"cache": "failed", "db": "running"}
        assert page.locator("h1 [data-testid=state]").inner_text() == "partly up"
        row = page.locator("#plan-table tr[data-instance=cache]")
        assert row.get_attribute("data-action") == "start"
        assert "failed: the server process exited" in row.inner_text()
        no_serious_violations(page)
        page.goto("/stacks")
        shop = page.locator("#stacks-table tr[data-name=shop]")
        assert "partly up" in shop.inner_text() and "1 failed" in shop.inner_text()
        assert "ago" in shop.inner_text() or "just now" in shop.inner_text()

        # apply again: started again, the stack is up
        page.goto("/stacks/shop")
        assert run(page, "Apply") == {"cache": "ok"}
        page.wait_for_function("() => document.querySelector('h1 [data-testid=state]')"
                               ".textContent.trim() === 'up'")
        assert port_open(cache_port)
        page.goto("/stacks/shop")
        assert states(page) == {"cache": "running", "db": "running"}
        assert [a for a in page.locator("#plan-table tbody tr").evaluate_all(
            "trs => trs.map(t => t.dataset.action)")] == ["unchanged", "unchanged"]

        # down, with the outcome per instance
        assert run(page, "Down") == {"cache": "ok", "db": "ok"}
        assert not port_open(cache_port) and not port_open(db_port)
        page.goto("/stacks/shop")
        assert states(page) == {"cache": "stopped", "db": "stopped"}
    finally:
        dash.svc().down("shop")
    page.context.close()


# --- instances: duplicate, rename, enable, delete with preview ---------------------------


def test_duplicate_rename_and_delete_an_instance_with_a_preview(dash: Dash) -> None:
    svc = dash.svc()
    svc.create_stack("lab")
    svc.create_instance("lab", "web", "nginx", overrides={
        "labels": {"entries": {"team": "web"}}})
    page = dash.page("operator")
    page.goto("/stacks/lab")
    row = page.locator("#instances-table tr[data-name=web]")
    row.get_by_text("Rename or duplicate").click()
    row.get_by_label("Copy name").fill("web2")
    row.get_by_label("disabled").check()
    row.get_by_role("button", name="Duplicate").click()
    assert "Created web2 as a copy of web" in page.get_by_test_id("notice").inner_text()
    assert svc.get_instance("lab", "web2").override_count == 1
    row = page.locator("#instances-table tr[data-name=web2]")
    assert "no" in row.locator("td").nth(2).inner_text()
    row.get_by_text("Rename or duplicate").click()
    row.get_by_label("New name").fill("web")  # taken: the service's message, in the page
    row.get_by_role("button", name="Rename").click()
    assert "already has an instance named 'web'" in page.get_by_test_id("form-error").inner_text()
    row = page.locator("#instances-table tr[data-name=web2]")
    row.get_by_text("Rename or duplicate").click()
    row.get_by_label("New name").fill("static")
    row.get_by_role("button", name="Rename").click()
    assert "Renamed web2 to static (snoozeql-lab-static)" in page.get_by_test_id(
        "notice").inner_text()

    page.locator("#instances-table tr[data-name=static]").get_by_role(
        "link", name="Delete static").click()
    preview = page.get_by_test_id("delete-preview").inner_text()
    assert "snoozeql-lab-static" in preview and "labels (1)" in preview
    no_serious_violations(page)
    page.get_by_role("button", name="Delete static").click()
    page.wait_for_url(re.compile(r"/stacks/lab$"))
    assert [i.name for i in svc.list_instances("lab")] == ["web"]
    page.context.close()


# --- stacks: delete with a preview, restore any deleted one --------------------------------


def test_delete_with_preview_and_restore_any_deleted_stack(dash: Dash) -> None:
    svc = dash.svc()
    first = svc.create_stack("tmp", "first")
    svc.create_instance("tmp", "cache", "redis", enabled=False)
    page = dash.page("operator")
    page.goto("/stacks")
    page.locator("#stacks-table tr[data-name=tmp]").get_by_role("link", name="Delete").click()
    preview = page.get_by_test_id("delete-preview").inner_text()
    assert "cache from redis (disabled)" in preview
    no_serious_violations(page)
    page.get_by_role("button", name="Delete stack tmp").click()
    page.wait_for_url(re.compile(r"/stacks$"))
    assert "Deleted stack tmp" in page.get_by_test_id("notice").inner_text()
    page.reload()  # the notice is shown once
    assert page.get_by_test_id("notice").count() == 0
    second = svc.create_stack("tmp", "second")
    svc.delete_stack("tmp")
    page.goto("/stacks")
    no_serious_violations(page)
    ids = page.locator("#deleted-table tbody tr").evaluate_all(
        "trs => trs.map(t => t.dataset.id)")
    assert ids.index(str(second.id)) < ids.index(str(first.id))  # newest deletion first
    # the older one, not only the latest
    page.locator(f"#deleted-table tr[data-id='{first.id}']").get_by_role(
        "button", name=re.compile("^Restore")).click()
    page.wait_for_url(re.compile(r"/stacks/tmp$"))
    assert "Restored stack tmp with 1 instance(s)" in page.get_by_test_id("notice").inner_text()
    assert svc.get_stack("tmp").id == first.id
    # a live one of that name exists now: the other cannot come back over it
    page.goto("/stacks")
    page.locator(f"#deleted-table tr[data-id='{second.id}']").get_by_role(
        "button", name=re.compile("^Restore")).click()
    assert "live stack named 'tmp' exists" in page.get_by_test_id("form-error").inner_text()
    page.context.close()


# --- templates ----------------------------------------------------------------------------


def test_templates_page_upload_and_validation(dash: Dash, tmp_path: Path) -> None:
    page = dash.page("operator")
    page.goto("/templates")
    no_serious_violations(page)
    names = page.locator("#templates-table tbody tr").evaluate_all(
        "trs => trs.map(t => t.dataset.name)")
    assert {"postgres", "redis", "nginx"} <= set(names)
    page.get_by_label("Search").fill("redis")
    page.get_by_role("button", name="Search").click()
    assert page.locator("#templates-table tbody tr").evaluate_all(
        "trs => trs.map(t => t.dataset.name)") == ["redis"]
    page.locator("#templates-table a", has_text="redis").click()
    assert "REDIS_PASSWORD" in page.locator("dl.meta").inner_text()
    no_serious_violations(page)

    bad = tmp_path / "broken.yaml"
    bad.write_text("image: example/api:1\nconfigs: []\n")
    page.goto("/templates")
    page.get_by_label("YAML file", exact=True).set_input_files(str(bad))
    page.get_by_role("button", name="Add template").click()
    assert "use config_files" in page.get_by_test_id("form-error").inner_text()
    good = tmp_path / "api.yaml"
    good.write_text("description: our API\nimage: example/api:1\nports: ['8800:8800']\n"
                    "environment:\n  TOKEN: {value: tok-secret-1, secret: true}\n")
    page.get_by_label("YAML file", exact=True).set_input_files(str(good))
    page.get_by_role("button", name="Add template").click()
    page.wait_for_url(re.compile(r"/templates/api$"))
    text = page.locator("main").inner_text()
    assert "our API" in text and "127.0.0.1:8800:8800/tcp" in text
    assert "tok-secret-1" not in page.content()
    assert not TemplateService(dash.server.ctx()).get("api").builtin
    page.context.close()


# --- roles and CSRF -----------------------------------------------------------------------


def test_a_viewer_sees_no_action_and_gets_no_secret_and_forged_posts_are_refused(
    dash: Dash,
) -> None:
    svc = dash.svc()
    svc.create_stack("ro")
    svc.create_instance("ro", "db", "postgres")
    password = svc.secrets("ro", "db").env_vars[0].value
    page = dash.page("viewer")
    for path in ("/stacks", "/stacks/ro", "/stacks/ro/instances/db?tab=env_vars",
                 "/stacks/ro/export", "/templates", "/templates/postgres",
                 "/stacks/ro/delete", "/stacks/ro/instances/db/delete"):
        page.goto(path)
        # only reading controls: search the catalogue, copy the Compose file
        assert set(page.locator("main button").all_inner_texts()) <= {"Copy", "Search"}, path
        assert page.locator("main form[method=post]").count() == 0, path
        assert password not in page.content(), path
        no_serious_violations(page)
    assert page.locator("header nav").get_by_role("link", name="Stacks").count() == 1
    # the reveal endpoint and the zip's .env are for operators
    assert page.request.get("/stacks/ro/instances/db/secret?key=POSTGRES_PASSWORD").status == 403
    zipped = page.request.get("/stacks/ro/export.zip")
    assert zipped.ok
    names = zipfile.ZipFile(io.BytesIO(zipped.body())).namelist()
    assert not any(n.endswith(".env") for n in names)

    token = page.evaluate("document.body.dataset.csrf")  # a valid token: only the role fails
    for path, data in (
        ("/stacks", {"name": "nope"}),
        ("/stacks/ro/apply", {}),
        ("/stacks/ro/delete", {}),
        ("/stacks/ro/instances", {"name": "x", "template": "redis"}),
        ("/stacks/ro/instances/db/overrides/env_vars", {"mode": "replace"}),
        ("/stacks/ro/instances/db/delete", {}),
        ("/templates", {}),
    ):
        assert forged_post(page, path, {**data, "csrf_token": token}) == 403, path
    assert [i.name for i in svc.list_instances("ro")] == ["db"]
    assert svc.get_instance("ro", "db").override_count == 1
    page.context.close()

    operator = dash.page("operator")
    operator.goto("/stacks/ro")
    assert forged_post(operator, "/stacks/ro/instances/db/delete", {}) == 403
    assert forged_post(operator, "/stacks/ro/instances/db/delete",
                       {"csrf_token": "0" * 64}) == 403
    assert forged_post(operator, "/stacks", {"name": "csrf-less"}) == 403
    assert [s.name for s in svc.list_stacks()].count("csrf-less") == 0
    assert [i.name for i in svc.list_instances("ro")] == ["db"]
    operator.context.close()


def test_unknown_stack_and_instance_are_pages_not_json(dash: Dash) -> None:
    dash.svc().create_stack("empty")
    page = dash.page("viewer")
    page.goto("/stacks/ghost")
    assert "no stack 'ghost'" in page.get_by_test_id("error-message").inner_text()
    page.goto("/stacks/empty/instances/ghost")
    assert "has no instance 'ghost'" in page.get_by_test_id("error-message").inner_text()
    page.context.close()


def test_override_errors_are_shown_inline_and_write_nothing(dash: Dash) -> None:
    svc = dash.svc()
    svc.create_stack("val")
    svc.create_instance("val", "kv", "redis", overrides={
        "ports": {"mode": "replace", "entries": [f"127.0.0.1:{free_port()}:6379"]}})
    before = svc.get_instance("val", "kv").overrides
    page = dash.page("operator")

    # a new value for the stored secret, with a bad row beside it: refused at its row,
    # and what was typed is still in the form
    page.goto("/stacks/val/instances/kv?tab=env_vars")
    page.locator("#value-0").fill("n3w-redis-pass")
    page.get_by_role("button", name="Add a row").click()
    page.get_by_label("Name of row 2").fill("1BAD")
    page.get_by_role("button", name="Save environment").click()
    assert "row 2: " in page.get_by_test_id("form-error").inner_text()
    assert "1BAD" in page.locator("tr.sk-bad + tr.sk-row-error").inner_text()
    assert svc.get_instance("val", "kv").overrides == before
    assert page.locator("#value-0").input_value() == "n3w-redis-pass"
    page.get_by_label("Name of row 2").fill("GOOD")
    page.get_by_label("Value of row 2").fill("1")
    page.get_by_role("button", name="Save environment").click()
    page.get_by_test_id("notice").wait_for()
    values = {e.key: e.value for e in svc.secrets("val", "kv").env_vars}
    assert values["REDIS_PASSWORD"] == "n3w-redis-pass"

    # two entries with one key: refused as a whole by the domain
    page.goto("/stacks/val/instances/kv?tab=labels")
    for n, value in ((1, "a"), (2, "b")):
        page.get_by_role("button", name="Add a row").click()
        page.get_by_label(f"Key of row {n}").fill("team")
        page.get_by_label(f"Value of row {n}").fill(value)
    page.get_by_role("button", name="Save labels").click()
    assert "label team is listed twice" in page.get_by_test_id("form-error").inner_text()
    assert all(o.kind.value != "labels" for o in svc.get_instance("val", "kv").overrides)

    # a public address needs the admin role, as over the API
    public = f"0.0.0.0:{free_port()}:6379"
    page.goto("/stacks/val/instances/kv?tab=ports")
    page.get_by_label("Host IP of row 1").fill("0.0.0.0")
    page.get_by_role("button", name="Save ports").click()
    assert "admin" in page.get_by_test_id("form-error").inner_text()
    page.context.close()
    admin = dash.page("admin")
    admin.goto("/stacks/val/instances/kv?tab=ports")
    admin.get_by_label("Host IP of row 1").fill("0.0.0.0")
    admin.get_by_label("Host port of row 1").fill(public.split(":")[1])
    admin.get_by_role("button", name="Save ports").click()
    admin.get_by_test_id("notice").wait_for()
    _, eff = svc.effective("val", "kv")
    assert [p.short() for p in eff.ports] == [f"{public}/tcp"]

    # healthcheck: a bad duration is the domain's message; removing the override works
    admin.goto("/stacks/val/instances/kv?tab=healthcheck")
    admin.get_by_label("Interval").fill("soon")
    admin.get_by_role("button", name="Save healthcheck").click()
    assert "duration" in admin.get_by_test_id("form-error").inner_text()
    admin.get_by_label("Interval").fill("2s")
    admin.get_by_role("button", name="Save healthcheck").click()
    admin.get_by_test_id("notice").wait_for()
    assert svc.effective("val", "kv")[1].healthcheck.interval == "2s"  # type: ignore[union-attr]
    admin.on("dialog", lambda d: d.accept())
    admin.get_by_role("button", name="Remove this override").click()
    assert "Removed the healthcheck override" in admin.get_by_test_id("notice").inner_text()
    assert svc.effective("val", "kv")[1].healthcheck.interval == "5s"  # type: ignore[union-attr]
    admin.context.close()
