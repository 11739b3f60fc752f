"""Screenshots of the dashboard for docs/dashboard.md, taken from `snoozeql demo`.

Starts ``snoozeql demo`` in a temporary data directory on a free port, signs in with
the admin key it prints, and saves one PNG per page into ``docs/img/`` as
``dashboard-<page>.png``. The browser is Debian's ``chromium`` driven by Playwright for
Python (never a downloaded browser). A page that answers 404 is skipped with a message.

Run from the repository root: ``.venv/bin/python scripts/screenshots.py``
(options: ``--instances N``, ``--out DIR``, ``--width``/``--height`` (the viewport,
1280x800 by default), ``--max-height`` (long pages are cut there)).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
# (file name part, path); "{instance}" is replaced by a demo instance's id.
PAGES = [
    ("overview", "/"),
    ("instances", "/instances"),
    ("instance", "/instances/{instance}"),
    ("accounts", "/accounts"),
    ("local", "/local"),
    ("activity", "/activity"),
    ("audit", "/audit"),
    ("keys", "/keys"),
    ("stacks", "/stacks"),
    ("stack", "/stacks/shop"),
    ("stack-instance", "/stacks/shop/instances/db?tab=env_vars"),
    ("stack-export", "/stacks/shop/export"),
    ("templates", "/templates"),
]
# A stack for the stacks pages, made through the API: a native PostgreSQL and Redis
# (applied, so their state shows) and an nginx that apply refuses without Docker.
STACK_CALLS = [
    ("POST", "/stacks", {"name": "shop", "description": "the web shop: app, database, cache"}),
    ("POST", "/stacks/shop/instances", {"name": "db", "template": "postgres", "overrides": {
        "ports": {"mode": "replace", "entries": ["127.0.0.1:{db_port}:5432"]},
        "env_vars": {"entries": [{"key": "TZ", "value": "UTC"},
                                 {"key": "POSTGRES_DB", "value": "shop"}]}}}),
    ("POST", "/stacks/shop/instances", {"name": "cache", "template": "redis", "overrides": {
        "ports": {"mode": "replace", "entries": ["127.0.0.1:{cache_port}:6379"]}}}),
    ("POST", "/stacks/shop/instances", {"name": "web", "template": "nginx", "overrides": {
        "domains": {"entries": ["shop.localhost"]},
        "labels": {"entries": {"team": "web"}}}}),
    ("POST", "/stacks", {"name": "scratch", "description": "an old experiment"}),
    ("DELETE", "/stacks/scratch", None),
    ("POST", "/stacks/shop/apply", None),
]
# Dashboard part 2 (schedules, recommendations, savings): (file name part, path, a
# selector to click before the shot, or None). "{schedule}" is a demo schedule's id.
PART2_PAGES: list[tuple[str, str, str | None]] = [
    ("schedules", "/schedules", None),
    ("schedule", "/schedules/{schedule}", None),
    ("schedule-edit", "/schedules/{schedule}/edit", None),
    ("conflicts", "/schedules/conflicts", None),
    ("timeline", "/instances/{instance}/timeline", None),
    ("recommendations", "/recommendations", None),
    ("recommendation-activity", "/recommendations",
     ".rec-card:has([data-testid=windows]) [data-activity]"),
    ("savings", "/savings", None),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_demo(data_dir: Path, port: int, instances: int) -> tuple[subprocess.Popen[str], str]:
    """The running demo and its admin key (read from its output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOOZEQL_")}
    env["SNOOZEQL_DATA_DIR"] = str(data_dir)
    exe = shutil.which("snoozeql", path=str(Path(sys.executable).parent)) or "snoozeql"
    proc = subprocess.Popen(
        [exe, "demo", "--instances", str(instances), "--port", str(port)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()],
                     daemon=True).start()
    deadline = time.monotonic() + 300
    while True:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("snoozeql demo did not start") from None
            continue
        if line.startswith("[demo]"):
            print(line.rstrip(), flush=True)
        m = re.search(r"admin API key.*: (sqk_\S+)", line)
        if m:
            key = m.group(1)
            break
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                if json.load(r).get("demo"):
                    return proc, key
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the demo server did not come up")
        time.sleep(0.3)


def api(base: str, key: str, method: str, path: str, body: object = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}/api/v1{path}", data=data, method=method,
                                 headers={"X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        text = r.read()
    return json.loads(text) if text else None


def seed_stack(base: str, key: str) -> bool:
    """The demo stack (see STACK_CALLS); False (and a message) if the API refused."""
    ports = {"db_port": str(free_port()), "cache_port": str(free_port())}
    try:
        for method, path, body in STACK_CALLS:
            text = json.dumps(body)
            for k, v in ports.items():
                text = text.replace("{" + k + "}", v)
            api(base, key, method, path, json.loads(text))
    except urllib.error.HTTPError as exc:
        print(f"the demo stack could not be made: {exc.code} {exc.read()[:300]!r}", flush=True)
        return False
    return True


def an_instance(base: str, key: str) -> str | None:
    """A scheduled dev database for the detail page (its office-hours pattern shows in
    the heatmap, and its schedule with the next transitions), else any running one."""
    for query in ("tag=env%3Ddev&kind=instance&provider=demo-aws",
                  "status=running&kind=instance&provider=demo-aws"):
        req = urllib.request.Request(f"{base}/api/v1/instances?limit=1&{query}",
                                     headers={"X-API-Key": key})
        with urllib.request.urlopen(req, timeout=30) as r:
            items = json.load(r)["items"]
        if items:
            return str(items[0]["id"])
    return None


def a_schedule(base: str, key: str) -> str | None:
    """The demo's European office-hours schedule (else the first one)."""
    req = urllib.request.Request(f"{base}/api/v1/schedules", headers={"X-API-Key": key})
    with urllib.request.urlopen(req, timeout=30) as r:
        found = json.load(r)
    best = [s for s in found if s["name"] == "office-hours-eu"] or found
    return str(best[0]["id"]) if best else None


def shoot(base: str, key: str, out: Path, width: int, height: int,
          max_height: int = 2000) -> int:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Debian's chromium is needed: apt-get install chromium")
    out.mkdir(parents=True, exist_ok=True)
    saved = 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(180_000)  # the first pages wait for the analysis jobs
        login = page.goto(f"{base}/login")
        if login is None or login.status == 404:
            print("skipped every page: the dashboard has no /login (404)", flush=True)
            browser.close()
            return 0
        page.fill("input[name=api_key]", key)
        submit = page.locator("form button[type=submit], form input[type=submit]")
        with page.expect_navigation():
            if submit.count():
                submit.first.click()
            else:
                page.press("input[name=api_key]", "Enter")
        if urlparse(page.url).path.rstrip("/") == "/login":
            browser.close()
            raise SystemExit("sign-in with the demo's admin key failed (still on /login)")
        instance = an_instance(base, key)
        seed_stack(base, key)
        schedule = a_schedule(base, key)
        pages: list[tuple[str, str, str | None]] = [(n, p, None) for n, p in PAGES]
        for name, path, click in pages + PART2_PAGES:
            if "{instance}" in path:
                if instance is None:
                    print(f"skipped {name}: no running demo instance", flush=True)
                    continue
                path = path.replace("{instance}", instance)
            if "{schedule}" in path:
                if schedule is None:
                    print(f"skipped {name}: no demo schedule", flush=True)
                    continue
                path = path.replace("{schedule}", schedule)
            response = page.goto(f"{base}{path}")
            status = response.status if response else 0
            if status == 404:
                print(f"skipped {name}: {path} answered 404", flush=True)
                continue
            if status >= 400:
                print(f"skipped {name}: {path} answered {status}", flush=True)
                continue
            page.wait_for_load_state("networkidle")
            target = out / f"dashboard-{name}.png"
            if click is not None:  # a dialog: the viewport with the dialog open
                page.locator(click).first.click()
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(500)  # the chart draws after the body arrives
                page.screenshot(path=str(target))
                print(f"saved {target}", flush=True)
                saved += 1
                continue
            tall = int(page.evaluate("document.documentElement.scrollHeight"))
            page.screenshot(path=str(target), full_page=True,
                            clip={"x": 0, "y": 0, "width": width,
                                  "height": min(max(tall, height), max_height)})
            print(f"saved {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}",
                  flush=True)
            saved += 1
        browser.close()
    return saved


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="dashboard screenshots from the demo")
    ap.add_argument("--instances", type=int, default=500)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=800)
    ap.add_argument("--max-height", type=int, default=2000,
                    help="long pages are cut at this height (pixels)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="snoozeql-shots-", dir="/tmp") as tmp:
        os.chmod(tmp, 0o755)  # native database servers run as unprivileged users
        port = free_port()
        proc, key = start_demo(Path(tmp), port, args.instances)
        base = f"http://127.0.0.1:{port}"
        try:
            saved = shoot(base, key, args.out, args.width, args.height, args.max_height)
        finally:
            try:  # the demo stack's database processes
                api(base, key, "POST", "/stacks/shop/down")
            except OSError:
                pass
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(f"{saved} screenshot(s) in {args.out}", flush=True)


if __name__ == "__main__":
    main()
