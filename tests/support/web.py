"""The dashboard under test: a real ``snoozeql serve`` and Debian's Chromium.

Helpers (not fixtures: each browser test module builds its own, scope="module", so
one serve and one browser serve all the tests of a module):

:class:`WebServer`
    ``snoozeql serve --no-jobs`` in a child process on a free loopback port, on a
    SQLite store in a temporary data dir. :meth:`WebServer.ctx` is an in-process
    :class:`Context` on the same store, for seeding and for checking what a page did.

:func:`launch_chromium`
    Playwright driving ``/usr/bin/chromium`` (``executable_path``), headless, with no
    background networking. Playwright never downloads a browser.

:func:`sign_in`
    A fresh browser context signed in through the login form with an API key.

:func:`axe_violations`
    Runs the vendored axe-core on the page; returns the serious and critical
    violations.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from snoozeql.config import Settings
from snoozeql.services.context import Context, build_context
from tests.support.moto_server import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, free_port

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "src" / "snoozeql" / "web" / "static" / "vendor" / "axe.min.js"
SNOOZEQL = str(Path(sys.executable).with_name("snoozeql"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--no-first-run",
    "--disable-sync", "--disable-default-apps", "--disable-extensions",
]


def aws_child_env(config_dir: Path) -> dict[str, str]:
    """Fake AWS keys and private config files (nothing from the real user's setup)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config").write_text("")
    (config_dir / "credentials").write_text("")
    return {
        "AWS_CONFIG_FILE": str(config_dir / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "credentials"),
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    }


class WebServer:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AWS_", "SNOOZEQL_"))}
        self.env.update({
            "SNOOZEQL_DATA_DIR": str(data_dir), "SNOOZEQL_JOBS_ENABLED": "false",
            "SNOOZEQL_AWS_PRICE_LIST": "false", "SNOOZEQL_LOG_LEVEL": "WARNING",
            "SNOOZEQL_ALLOWED_ENDPOINTS": '["127.0.0.1"]',
            "SNOOZEQL_AWS_MAX_ATTEMPTS": "1",
        })
        self.env.update(env or {})
        self._ctx: Context | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "serve.log"

    def settings(self) -> Settings:
        return Settings(data_dir=self.data_dir, jobs_enabled=False, aws_price_list=False,
                        aws_max_attempts=1)

    def ctx(self) -> Context:
        if self._ctx is None:
            self._ctx = build_context(self.settings())
        return self._ctx

    def start(self) -> WebServer:
        self.ctx()  # migrates the store first, so seeding can happen before or after
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [SNOOZEQL, "serve", "--no-jobs", "--port", str(self.port)],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("serve did not come up within 60 s") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._log.close()
            self._proc = None
        if self._ctx is not None:
            self._ctx.engine.dispose()
            self._ctx = None


def launch_chromium() -> tuple[Any, Any]:
    """(playwright, browser); stop both with ``browser.close(); playwright.stop()``."""
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium")
    if exe is None:
        raise RuntimeError("Debian's chromium is missing: apt-get install -y chromium "
                           "(./test installs it)")
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
    except Exception:
        pw.stop()
        raise
    return pw, browser


def sign_in(browser: Any, base_url: str, api_key: str) -> Any:
    """A new page in a fresh context (own cookies), signed in through the form."""
    context = browser.new_context(base_url=base_url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("API key").fill(api_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def axe_violations(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]
