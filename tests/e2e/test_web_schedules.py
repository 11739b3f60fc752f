"""Dashboard part 2 in a real browser: schedules (list, editor with grid / text / cron,
selector builder, timelines, conflicts), recommendation cards and the savings page.

Debian's Chromium (Playwright) against a real ``snoozeql serve --no-jobs`` over a
store seeded by the demo (simulated clouds discovered by the ordinary sync, 14 days
of metrics, schedules, stop intervals), so every page has real data. What a page
saved is checked through the CLI (a separate process on the same store) and the API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from snoozeql.cli.demo import demo_settings
from snoozeql.config import Settings
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.audit import AuditService
from snoozeql.services.context import Context
from snoozeql.services.demo import DemoService
from snoozeql.services.inventory import InventoryService
from snoozeql.services.recommendations import RecommendationService
from snoozeql.services.schedule_board import ScheduleBoard
from snoozeql.services.schedules import ScheduleService
from tests.support.web import SNOOZEQL, WebServer, axe_violations, launch_chromium, sign_in

pytestmark = pytest.mark.slow


class DemoWebServer(WebServer):
    """``serve`` on a demo store (simulated providers, ``settings.demo``), no jobs."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, env={
            "SNOOZEQL_DEMO": "true",
            "SNOOZEQL_DATABASE_URL": f"sqlite:///{data_dir / 'demo.db'}",
        })

    def settings(self) -> Settings:
        return demo_settings(Settings(data_dir=self.data_dir), self.data_dir).model_copy(
            update={"jobs_enabled": False})


@dataclass
class Web:
    server: DemoWebServer
    browser: Any
    keys: dict[str, str]

    @property
    def ctx(self) -> Context:
        return self.server.ctx()

    def page(self, role: str) -> Any:
        page = sign_in(self.browser, self.server.url, self.keys[role])
        page.set_viewport_size({"width": 1280, "height": 900})
        # the machine is shared: a first page (the fleet read once) may wait for a core
        page.set_default_timeout(30_000)
        return page

    def cli(self, *args: str) -> Any:
        out = subprocess.run([SNOOZEQL, *args], env=self.server.env, capture_output=True,
                             text=True, timeout=120, check=True)
        return json.loads(out.stdout)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            f"{self.server.url}/api/v1{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.keys['admin']}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())


@pytest.fixture(scope="module")
def web() -> Iterator[Web]:
    data_dir = Path(tempfile.mkdtemp(prefix="snoozeql-web2-", dir="/tmp"))
    server = DemoWebServer(data_dir)
    pw = browser = None
    try:
        ctx = server.ctx()
        DemoService(ctx).seed(60)
        RecommendationService(ctx).list()  # the analysis the recommendations page pages
        keys = {role: ApiKeyService(ctx).create(f"{role}-2", role)[1]
                for role in ("viewer", "operator", "admin")}
        server.start()
        pw, browser = launch_chromium()
        yield Web(server, browser, keys)
    finally:
        if browser is not None:
            browser.close()
        if pw is not None:
            pw.stop()
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def no_serious(page: Any) -> None:
    found = axe_violations(page)
    assert not found, json.dumps(found, indent=1)


def cell(page: Any, d: int, h: int) -> Any:
    return page.locator(f"#week-grid td[data-d='{d}'][data-h='{h}']")


def drag(page: Any, a: Any, b: Any) -> None:
    box_a, box_b = a.bounding_box(), b.bounding_box()
    page.mouse.move(box_a["x"] + 5, box_a["y"] + 5)
    page.mouse.down()
    page.mouse.move(box_b["x"] + 5, box_b["y"] + 5, steps=12)
    page.mouse.move(box_b["x"] + 6, box_b["y"] + 6)
    page.mouse.up()


# --------------------------------------------------------------------------- pages


def test_every_new_page_renders_with_no_serious_accessibility_violation(web: Web) -> None:
    page = web.page("operator")
    views = ScheduleService(web.ctx).list()
    some = next(v for v in views if ScheduleService(web.ctx).matches(v.id)[1])
    _, matched = ScheduleService(web.ctx).matches(some.id)
    for path in ("/schedules", "/schedules/conflicts", f"/schedules/{some.id}",
                 "/schedules/new", f"/schedules/{some.id}/edit",
                 f"/instances/{matched[0].instance.id}/timeline", "/recommendations",
                 "/savings", "/savings?range=7d", "/savings?range=90d"):
        response = page.goto(path)
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
        no_serious(page)
    # the activity dialog, open
    page.goto("/recommendations")
    page.locator("[data-activity]").first.click()
    page.locator("[data-testid=rec-heatmap]").wait_for()
    no_serious(page)


def test_schedules_list_shows_counts_next_transition_and_conflicts(web: Web) -> None:
    page = web.page("viewer")
    page.goto("/schedules")
    board = {s.view.name: s for s in ScheduleBoard(web.ctx).summaries()}
    rows = page.locator("[data-testid=schedules-table] tbody tr")
    assert rows.count() == len(board)
    for i in range(rows.count()):
        row = rows.nth(i)
        name = row.get_attribute("data-schedule")
        summary = board[name]
        _, matches = ScheduleService(web.ctx).matches(name)
        assert row.locator("[data-testid=matched]").inner_text() == str(len(matches))
        assert summary.view.schedule.timezone in row.inner_text()
        badge = row.locator("[data-testid=conflicts-badge]")
        assert badge.count() == (1 if summary.conflicts else 0)
    assert any(s.conflicts for s in board.values())  # the demo's trial overlaps
    # the conflicts page explains the winner with the rule
    page.goto("/schedules/conflicts")
    conflicts = ScheduleBoard(web.ctx).conflicts()
    shown = page.locator("[data-testid=conflict]")
    assert shown.count() == len(conflicts) > 0
    first = shown.first
    assert first.locator("[data-testid=winner]").inner_text() == conflicts[0].winner
    assert "priority" in first.locator("[data-testid=rule]").inner_text()
    assert first.inner_text().count(conflicts[0].winner) >= 2  # its row, and who wins
    # a schedule's page draws the week of its instances that other schedules also match
    page.goto(f"/schedules/{conflicts[0].a_id}")
    differ = page.locator("#differ-h").locator("xpath=..")
    for name in conflicts[0].instance_names[:3]:
        assert differ.get_by_role("link", name=name).count() == 1
    assert differ.locator("[data-testid=timeline]").count() >= 1


# --------------------------------------------------------------------------- editor


def test_paint_a_grid_save_and_see_it_through_the_cli(web: Web) -> None:
    page = web.page("operator")
    page.goto("/schedules")
    page.locator("[data-testid=new-schedule]").click()
    page.get_by_label("Name", exact=True).fill("painted-hours")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.locator("[data-testid=mode-grid]").check()
    page.get_by_role("button", name="Clear").click()
    drag(page, cell(page, 0, 9), cell(page, 4, 16))  # Mon-Fri 09:00-17:00
    assert cell(page, 2, 12).get_attribute("aria-selected") == "true"
    assert cell(page, 5, 12).get_attribute("aria-selected") == "false"
    # keyboard: Saturday 10:00 on, then Shift+Right paints 11:00 too
    cell(page, 0, 0).focus()
    page.keyboard.press("Home")
    for _ in range(5):
        page.keyboard.press("ArrowDown")
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    page.keyboard.press("Shift+ArrowRight")
    assert cell(page, 5, 10).get_attribute("aria-selected") == "true"
    assert cell(page, 5, 11).get_attribute("aria-selected") == "true"
    # the next transitions follow the painting (in the schedule's zone)
    page.locator("[data-testid=draft-transitions] li strong").first.wait_for()
    assert "CET" in page.locator("[data-testid=draft-transitions]").inner_text()
    # the periods text follows the grid
    page.locator("[data-testid=mode-text]").check()
    page.wait_for_function(
        "() => document.querySelector('#f-periods').value.includes('weekdays=sat')")
    page.locator("[data-testid=save]").click()
    page.locator("[data-testid=saved]").wait_for()
    shown = web.cli("schedules", "show", "painted-hours", "--json")
    assert shown["timezone"] == "Europe/Berlin" and shown["mode"] == "periods"
    assert shown["periods"] == [
        {"begintime": "09:00", "endtime": "17:00", "weekdays": "mon-fri"},
        {"begintime": "10:00", "endtime": "12:00", "weekdays": "sat"},
    ]
    # editing it again shows the same grid (round trip), and a change is saved in place
    page.locator("[data-testid=edit]").click()
    assert page.locator("[data-testid=mode-grid]").is_checked()
    assert cell(page, 4, 16).get_attribute("aria-selected") == "true"
    assert cell(page, 4, 17).get_attribute("aria-selected") == "false"
    cell(page, 6, 8).click()  # Sunday 08:00
    page.get_by_label("Enforced: converge on every run").check()
    page.get_by_label("Priority (higher wins over other schedules on the same instance)"
                      ).fill("5")
    page.get_by_label("Holidays: one date per line with its year, stopped all day unless "
                      "followed by running; a description may follow").fill(
        "2026-12-25 Christmas\n2026-12-31 running year-end")
    page.locator("[data-testid=save]").click()
    page.locator("[data-testid=saved]").wait_for()
    shown = web.cli("schedules", "show", "painted-hours", "--json")
    assert shown["enforced"] is True and shown["priority"] == 5
    assert {"begintime": "08:00", "endtime": "09:00", "weekdays": "sun"} in shown["periods"]
    assert shown["exceptions"] == [
        {"date": "2026-12-25", "state": "stopped", "description": "Christmas"},
        {"date": "2026-12-31", "state": "running", "description": "year-end"}]


def test_periods_text_and_cron_are_checked_as_you_type(web: Web) -> None:
    page = web.page("operator")
    page.goto("/schedules/new")
    page.get_by_label("Name", exact=True).fill("typed-periods")
    page.locator("[data-testid=mode-text]").check()
    text = page.locator("[data-testid=periods-text]")
    text.fill("begintime=08:00 endtime=19:00 weekdays=mon-fri\n"
              "begintime=10:00 endtime=14:00 weekdays=sat-sun,mon-fry")
    error = page.locator("[data-testid=periods-error]")
    error.get_by_text("Line 2, column").wait_for()
    # the column of the bad item 'fry' in line 2 (1-based)
    col = "begintime=10:00 endtime=14:00 weekdays=sat-sun,mon-fry".index("fry") + 1
    assert f"Line 2, column {col}: weekdays: 'mon-fry': unknown weekday 'fry'" in \
        error.inner_text()
    text.fill("begintime=08:00 endtime=19:00 weekdays=mon-fri\nbegintime=18:00 endtime=09:00")
    error.get_by_text("is after endtime").wait_for()
    assert "Line 2, column 11" in error.inner_text()  # at begintime's value
    text.fill("begintime=08:00 endtime=19:00 weekdays=mon-fri")
    page.wait_for_function("() => !document.querySelector('#periods-error').textContent")
    page.locator("[data-testid=draft-transitions] li strong").first.wait_for()
    # months cannot be drawn on the grid: the grid says why
    text.fill("begintime=08:00 endtime=19:00 months=jan-mar")
    page.wait_for_timeout(700)
    page.locator("[data-testid=mode-grid]").check()
    reason = page.locator("[data-testid=grid-reason]")
    assert reason.is_visible() and "month" in reason.inner_text()
    # cron pair: the same minute is refused, a good pair shows 10 transitions
    page.locator("[data-testid=mode-cron]").check()
    page.get_by_label("Start (cron)").fill("0 7 * * 1-5")
    page.get_by_label("Stop (cron)").fill("0 7 * * 1-5")
    page.locator("[data-testid=cron-error]").get_by_text("same minute").wait_for()
    page.get_by_label("Stop (cron)").fill("30 18 * * 1-5")
    items = page.locator("[data-testid=draft-transitions] li strong")
    page.wait_for_function("() => document.querySelectorAll("
                           "'#transitions li strong').length === 10")
    assert items.count() == 10
    assert "running" in items.nth(0).inner_text() or "stopped" in items.nth(0).inner_text()
    page.locator("[data-testid=save]").click()
    page.locator("[data-testid=saved]").wait_for()
    shown = web.cli("schedules", "show", "typed-periods", "--json")
    assert shown["mode"] == "cron" and shown["stop_cron"] == "30 18 * * 1-5"


def test_a_refused_save_shows_the_error_and_writes_nothing(web: Web) -> None:
    page = web.page("operator")
    page.goto("/schedules/new")
    page.get_by_label("Name", exact=True).fill("office-hours-eu")  # taken by the demo
    page.locator("[data-testid=save]").click()
    assert "already exists" in page.locator("[data-testid=save-error]").inner_text()
    assert page.get_by_label("Name", exact=True).input_value() == "office-hours-eu"  # kept
    assert len([v for v in ScheduleService(web.ctx).list() if v.name == "office-hours-eu"]
               ) == 1


def test_selector_builder_previews_live_like_the_api(web: Web) -> None:
    page = web.page("operator")
    page.goto("/schedules/new")
    page.get_by_label("Name", exact=True).fill("ml-dev-by-selector")
    builder = page.locator("[data-testid=selector-builder]")
    builder.locator("[data-testid=sel-add]").first.click()
    builder.locator("[data-testid=sel-field]").last.select_option("tag")
    builder.locator("[data-testid=sel-key]").last.fill("team")
    builder.locator("[data-testid=sel-value]").last.fill("ml")
    # a nested OR group: name matches dev or staging
    builder.locator("[data-testid=sel-add-group]").first.click()
    builder.locator("[data-testid=sel-value]").last.fill(".*-dev-.*")
    builder.locator(".sel-group .sel-group [data-testid=sel-add]").click()
    builder.locator("[data-testid=sel-value]").last.fill(".*-staging-(")  # a bad regex
    bad = builder.locator(".sel-cond.bad")
    bad.wait_for()
    assert "at position 11" in bad.inner_text()
    assert "missing )" in page.locator("[data-testid=sel-error]").inner_text()
    builder.locator("[data-testid=sel-value]").last.fill(".*-staging-.*")
    count = page.locator("[data-testid=sel-count]")
    count.wait_for()
    selector = json.loads(page.locator("#f-selector").input_value())
    assert selector == {"all": [{"tag": {"key": "team", "value": "ml"}},
                                {"any": [{"name": ".*-dev-.*"}, {"name": ".*-staging-.*"}]}]}
    api = web.api("POST", "/schedules/preview", {"selector": selector})
    assert api["count"] > 0
    assert count.inner_text().startswith(f"{api['count']} instance")
    shown = page.locator("[data-testid=sel-matches] tbody tr td:first-child"
                         ).all_inner_texts()
    assert shown == sorted(i["name"] for i in api["instances"])[:50]
    page.locator("[data-testid=save]").click()
    page.locator("[data-testid=saved]").wait_for()
    _, matched = ScheduleService(web.ctx).matches("ml-dev-by-selector")
    assert sorted(m.instance.name for m in matched) == sorted(
        i["name"] for i in api["instances"])


# --------------------------------------------------------------------------- timelines


def test_instance_timeline_with_override_and_conflicts(web: Web) -> None:
    board = ScheduleBoard(web.ctx)
    conflict = board.conflicts()[0]
    _, a = ScheduleService(web.ctx).matches(conflict.a_id)
    _, b = ScheduleService(web.ctx).matches(conflict.b_id)
    shared = sorted({m.instance.name for m in a} & {m.instance.name for m in b})[0]
    inst = InventoryService(web.ctx).get(shared)
    page = web.page("operator")
    page.goto(f"/instances/{inst.id}")
    page.locator("[data-testid=timeline-link]").click()
    assert page.locator("[data-testid=timeline] .tl-row").count() >= 7
    assert page.locator("[data-testid=tl-now]").count() == 1  # now, on today's row
    assert conflict.winner in page.locator("[data-testid=instance-conflicts]").inner_text()
    # keep awake for 3 hours from the timeline: the timeline shows the override
    page.get_by_label("Keep awake").check()
    page.get_by_label("Until").fill("3h")
    page.get_by_role("button", name="Set override").click()
    page.locator("[data-testid=override]").wait_for()
    titles = page.locator("[data-testid=timeline] .tl-bar").evaluate_all(
        "bars => bars.map(b => b.title)")
    assert any("running (override by operator-2" in t for t in titles)
    assert "/timeline" in page.url


# --------------------------------------------------------------------------- recommendations


def test_apply_a_recommendation_through_the_editor(web: Web) -> None:
    page = web.page("operator")
    page.goto("/recommendations")
    card = page.locator("[data-testid=rec-card]", has=page.locator("[data-testid=windows]")
                        ).first
    name = card.get_attribute("data-instance")
    card.locator("[data-testid=apply]").click()
    assert name in page.locator("[data-testid=from-rec]").inner_text()
    assert page.get_by_label("Name", exact=True).input_value().startswith("recommended-")
    page.get_by_label("Name", exact=True).fill(f"rec-{name}"[:60])
    page.locator("[data-testid=save]").click()
    page.locator("[data-testid=saved]").wait_for()
    inst = InventoryService(web.ctx).get(name)
    gov = ScheduleService(web.ctx).governing_one(inst)
    assert gov is not None
    assert any(m.schedule.name == f"rec-{name}"[:60] and m.via == "instance"
               for m in gov.matches)
    shown = web.cli("schedules", "assignments", f"rec-{name}"[:60], "--json")
    assert [a["target"] for a in shown] == [f"instance:{inst.id}"]


def test_activity_dialog_and_dismiss_with_a_reason(web: Web) -> None:
    page = web.page("operator")
    page.goto("/recommendations")
    opener = page.locator("[data-activity]").first
    opener.click()
    dialog = page.locator("[data-testid=activity-dialog]")
    dialog.locator("[data-testid=rec-heatmap]").wait_for()
    assert dialog.locator("td.sleep").count() > 0  # the sleep hours, outlined
    dialog.locator(".chart-canvas canvas").wait_for()
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert page.evaluate("() => document.activeElement.dataset.activity") is not None
    card = page.locator("[data-testid=rec-card]").nth(1)
    name = card.get_attribute("data-instance")
    card.locator("[data-testid=dismiss]").click()
    d = page.locator("[data-testid=dismiss-dialog]")
    d.get_by_label("Why does it not fit? (kept in the audit trail)").fill(
        "month-end batch runs at night")
    d.locator("[data-testid=dismiss-confirm]").click()
    page.locator("[data-testid=dismissed]").wait_for()
    assert page.locator(f"[data-testid=rec-card][data-instance='{name}']").count() == 0
    entries = AuditService(web.ctx).list(limit=20)
    assert any(e.action == "dismiss" and e.reason == "month-end batch runs at night"
               for e in entries)


def test_recommendations_page_by_page(web: Web) -> None:
    page = web.page("viewer")
    page.goto("/recommendations?limit=5")
    seen = page.locator("[data-testid=rec-card], [data-testid=rec-none]").count()
    assert seen == 5
    page.locator("[data-testid=next-page]").click()
    assert "cursor=" in page.url
    assert page.locator("[data-testid=rec-card], [data-testid=rec-none]").count() >= 1
    # the overview links here
    page.goto("/")
    page.get_by_role("link", name="All recommendations").click()
    assert page.url.endswith("/recommendations")


# --------------------------------------------------------------------------- savings


def _usd(text: str) -> float:
    return float(text.replace("$", "").replace(",", ""))


def test_savings_figures_equal_the_cli(web: Web) -> None:
    page = web.page("viewer")
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=10), today - timedelta(days=1)
    page.goto(f"/savings?range=custom&from={first}&to={last}")
    start = page.locator("[data-testid=window-from]").get_attribute("data-iso")
    end = page.locator("[data-testid=window-to]").get_attribute("data-iso")
    assert start.startswith(str(first)) and end.startswith(str(today))
    cli = web.cli("savings", "--from", start, "--to", end, "--json")
    assert cli["realized_total_usd"] > 0
    assert _usd(page.locator("[data-testid=window-realized]").inner_text()) == \
        cli["realized_total_usd"]
    assert _usd(page.locator("[data-testid=projected]").inner_text()) == \
        cli["projected_monthly_total_usd"]
    by_instance = page.locator("[data-testid=by-instance] tbody tr").all_inner_texts()
    top = cli["realized"][0]
    assert by_instance[0].split("\t")[0] == top["name"]
    assert f"${top['saved_usd']:,.2f}" in by_instance[0]
    by_account = web.cli("savings", "--from", start, "--to", end, "--group-by", "account",
                         "--json")
    rows = page.locator("[data-testid=by-account] tbody tr").all_inner_texts()
    assert len(rows) == len(by_account["realized"])
    for row, want in zip(rows, by_account["realized"], strict=True):
        assert row.startswith(want["name"]) and f"${want['saved_usd']:,.2f}" in row
    # the month card: the CLI over the same month-to-date window
    month_to = page.locator("[data-testid=month-realized]").get_attribute("data-to")
    month = web.cli("savings", "--from", today.replace(day=1).isoformat() + "T00:00:00+00:00",
                    "--to", month_to, "--json")
    assert _usd(page.locator("[data-testid=month-realized]").inner_text()) == \
        month["realized_total_usd"]
    # CSV of what is shown: the days add up to the total
    with page.expect_download() as got:
        page.locator("[data-testid=csv]").click()
    path = got.value.path()
    lines = Path(path).read_text().splitlines()
    assert lines[0].startswith("table,key,name,day")
    daily = [ln.split(",") for ln in lines[1:] if ln.startswith("daily,")]
    assert len(daily) == 10
    assert round(sum(float(r[5]) for r in daily), 2) == pytest.approx(
        cli["realized_total_usd"], abs=0.01 * len(daily))
    # presets
    page.get_by_label("7 days").check()
    page.get_by_role("button", name="Show").click()
    assert "range=7d" in page.url
    assert page.locator("[data-testid=daily] tbody tr").count() == 7  # today included
    assert page.locator("[data-testid=window-from]").get_attribute("data-iso") == (
        datetime.combine(today - timedelta(days=6), datetime.min.time(), tzinfo=UTC
                         ).isoformat())


# --------------------------------------------------------------------------- roles


def forged_post(page: Any, path: str, data: dict[str, str], token: str | None) -> int:
    return int(page.evaluate(
        """async ([path, data, token]) => {
            const headers = {'Content-Type': 'application/x-www-form-urlencoded'};
            if (token) headers['X-CSRF-Token'] = token;
            const r = await fetch(path, {method: 'POST', body: new URLSearchParams(data),
                                         headers, credentials: 'same-origin'});
            return r.status;
        }""", [path, data, token]))


def test_viewers_see_no_actions_and_forged_posts_are_refused(web: Web) -> None:
    page = web.page("viewer")
    some = ScheduleService(web.ctx).list()[0]
    page.goto("/schedules")
    assert page.locator("[data-testid=new-schedule]").count() == 0
    page.goto(f"/schedules/{some.id}")
    assert page.locator("[data-testid=edit]").count() == 0
    assert page.get_by_role("button", name="Delete").count() == 0
    assert page.get_by_role("button", name="Assign").count() == 0
    page.goto("/recommendations")
    assert page.locator("[data-testid=apply]").count() == 0
    assert page.locator("[data-testid=dismiss]").count() == 0
    assert page.goto("/schedules/new").status == 403
    token = page.evaluate("() => document.body.dataset.csrf")
    for path in ("/schedules/save", f"/schedules/{some.id}/delete",
                 f"/schedules/{some.id}/assign",
                 "/recommendations/00000000-0000-0000-0000-000000000001/dismiss"):
        assert forged_post(page, path, {"name": "x", "tag": "env=dev", "reason": "r"},
                           token) == 403, path
    # an operator's post without the session's token is refused too
    op = web.page("operator")
    op.goto("/schedules")
    assert forged_post(op, f"/schedules/{some.id}/delete", {}, None) == 403
    assert forged_post(op, f"/schedules/{some.id}/delete", {}, "0" * 64) == 403
    assert ScheduleService(web.ctx).get(some.id).name == some.name  # still there
