"""`snoozeql demo`: a simulated fleet in a store of its own (issue 15, demo).

The end-to-end test runs the real command as a subprocess on a free port, with the
user's data directory holding a real store, and checks through the HTTP API that every
kind of data the dashboard shows is there, that a stop acts on the simulation, and that
the user's store is left byte for byte as it was. The other tests cover the pieces in
process: the simulated provider's rules, the seed's consistency with the reconciler,
and the refusals that keep demo data out of a real store.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from snoozeql.cli.demo import demo_settings
from snoozeql.config import Settings
from snoozeql.domain.errors import ActionRefused, ValidationError
from snoozeql.domain.types import InstanceKind, InstanceStatus, ProviderKind
from snoozeql.providers.demo import simulation as sim
from snoozeql.providers.demo.config import normalize_config
from snoozeql.providers.demo.pricing import simulated_usd
from snoozeql.services.accounts import AccountService
from snoozeql.services.context import Context, build_context
from snoozeql.services.demo import DemoService
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.inventory import InventoryService
from snoozeql.services.lifecycle import LifecycleService
from snoozeql.services.recommendations import RecommendationService
from snoozeql.services.reconciler import Reconciler
from snoozeql.services.savings import SavingsService
from snoozeql.store import metrics as metric_store
from tests.support.inventory import add_discovered
from tests.support.moto_server import free_port

SNOOZEQL = str(Path(sys.executable).parent / "snoozeql")


def _digest(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (but the demo's own folder) with its SHA-256."""
    out = {}
    for p in sorted(directory.rglob("*")):
        if p.is_file() and "demo" not in p.relative_to(directory).parts:
            out[str(p.relative_to(directory))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class _Api:
    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key

    def __call__(self, path: str, method: str = "GET") -> Any:
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"X-API-Key": self.key})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)


def _wait_for_line(lines: queue.Queue[str], pattern: str, proc: subprocess.Popen[str],
                   seen: list[str], timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            assert proc.poll() is None, "snoozeql demo exited:\n" + "".join(seen)
            assert time.monotonic() < deadline, "no demo output:\n" + "".join(seen)
            continue
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m


@pytest.mark.slow
def test_demo_command_serves_a_populated_simulated_fleet_and_leaves_user_store_alone(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOOZEQL_")}
    env.update(SNOOZEQL_DATA_DIR=str(data), SNOOZEQL_AWS_PRICE_LIST="false")
    # The user's own store, with something in it.
    subprocess.run([SNOOZEQL, "apikeys", "create", "mine", "--role", "admin"], env=env,
                   check=True, capture_output=True)
    user_db = data / "snoozeql.db"
    assert user_db.exists()
    before = _digest(data)
    # Even a database URL pointing at the user's store must not lead the demo there.
    env["SNOOZEQL_DATABASE_URL"] = f"sqlite:///{user_db}"

    port = free_port()
    proc = subprocess.Popen(
        [SNOOZEQL, "demo", "--instances", "150", "--port", str(port)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()],
                     daemon=True).start()
    seen: list[str] = []
    try:
        key = _wait_for_line(lines, r"admin API key.*: (sqk_\S+)", proc, seen, 240).group(1)
        output = "".join(seen)
        assert str(data / "demo" / "demo.db") in output
        assert f"http://127.0.0.1:{port}/" in output
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                    health = json.load(r)
                break
            except OSError:
                assert proc.poll() is None, "".join(seen)
                assert time.monotonic() < deadline, "demo serve did not come up"
                time.sleep(0.3)
        assert health["status"] == "ok" and health["demo"] is True
        api = _Api(base, key)

        accounts = api("/api/v1/accounts")
        assert sorted(a["provider"] for a in accounts) == ["demo-aws", "demo-gcp"]
        assert all(a["status"] == "connected" and a["config"]["simulated"] for a in accounts)

        page = api("/api/v1/instances?limit=500")
        items = page["items"]
        assert len(items) == 150
        assert {i["provider"] for i in items} == {"demo-aws", "demo-gcp"}
        assert {i["status"] for i in items} >= {"running", "stopped"}
        assert len({i["region"] for i in items}) >= 4
        assert all(i["hourly_cost_cents"] for i in items)
        assert any(i["kind"] == "cluster" for i in items)

        busy = next(i for i in items if i["tags"]["env"] == "prod" and i["kind"] == "instance")
        series = api(f"/api/v1/instances/{busy['id']}/metrics?start=14d")["series"]
        assert {s["metric"] for s in series} == {"cpu", "connections", "read_iops", "write_iops"}
        cpu = next(s for s in series if s["metric"] == "cpu")["points"]
        assert len(cpu) >= 13 * 24

        recs = api("/api/v1/recommendations")["items"]
        assert recs and all(r["status"] == "open" and r["kind"] for r in recs)

        schedules = api("/api/v1/schedules")
        assert len(schedules) >= 3
        assigned = [api(f"/api/v1/schedules/{s['id']}/assignments") for s in schedules]
        assert all(assigned)

        actions = api("/api/v1/actions?limit=200")
        assert any(a["actor"] == "reconciler" and a["action"] == "stop"
                   and a["result"] == "ok" for a in actions)

        savings = api("/api/v1/savings")
        assert savings["realized_total_usd"] > 0
        assert savings["projected_monthly_total_usd"] > 0

        # A stop through the API acts on the simulation: stopping, then stopped.
        target = next(
            i for i in items
            if i["status"] == "running" and i["kind"] == "instance"
            and not i["cluster_provider_id"] and not i["name"].endswith("-replica")
            and i["tags"].get("snoozeql-protect") != "true"
        )
        stopped = api(f"/api/v1/instances/{target['id']}/stop", method="POST")
        assert stopped["result"] == "ok"
        assert stopped["instance"]["status"] == "stopping"
        deadline = time.monotonic() + 90
        while api(f"/api/v1/instances/{target['id']}")["status"] != "stopped":
            assert time.monotonic() < deadline, "the simulated stop never finished"
            time.sleep(1)
        # ... and a member of an Aurora cluster is refused, as AWS would.
        member = next(i for i in items if i["cluster_provider_id"]
                      and i["tags"].get("snoozeql-protect") != "true")
        with pytest.raises(urllib.error.HTTPError) as refused:
            api(f"/api/v1/instances/{member['id']}/stop", method="POST")
        assert refused.value.code == 409
        assert "stop the cluster instead" in refused.value.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    assert _digest(data) == before, "the demo touched the user's data directory"
    assert {p.name for p in data.iterdir()} == {*(n.split("/")[0] for n in before), "demo"}


def test_demo_refuses_the_users_data_directory(snoozeql_cli, tmp_path: Path) -> None:  # noqa: ANN001
    data = tmp_path / "data"
    snoozeql_cli.seed_store = False  # nothing may be written there: not even a store
    r = snoozeql_cli("demo", "--dir", str(data))
    assert r.exit_code == 2
    assert "your SnoozeQL data directory" in " ".join(r.output.split())
    assert not (data / "snoozeql.db").exists() and not (data / "demo.db").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "snoozeql.db").write_bytes(b"")
    r = snoozeql_cli("demo", "--dir", str(other))
    assert r.exit_code == 2 and "SnoozeQL store (snoozeql.db)" in " ".join(r.output.split())
    assert not (other / "demo.db").exists()


def test_demo_accounts_cannot_be_added_to_a_real_store(snoozeql_cli) -> None:  # noqa: ANN001
    r = snoozeql_cli("accounts", "add", "demo-aws", "fake", "--regions", "us-east-1")
    assert r.exit_code == 2
    assert "simulated cloud of `snoozeql demo`" in r.output
    assert snoozeql_cli("accounts", "list", "--json").output.strip() in ("[]", "")


def test_demo_settings_never_point_at_the_users_store(tmp_path: Path) -> None:
    user = Settings(data_dir=tmp_path / "data", database_url="postgresql://u@db/prod",
                    webhook_urls=["http://hooks.example/x"], secret_key="k" * 44)
    s = demo_settings(user, tmp_path / "data" / "demo")
    assert s.demo is True
    assert s.effective_database_url == f"sqlite:///{tmp_path / 'data' / 'demo' / 'demo.db'}"
    assert s.webhook_urls == [] and s.secret_key is None
    assert user.demo is False and user.database_url == "postgresql://u@db/prod"


# --------------------------------------------------------------------------- in process


@pytest.fixture
def demo_ctx(tmp_path: Path) -> Iterator[Context]:
    settings = demo_settings(Settings(data_dir=tmp_path / "data"), tmp_path / "data" / "demo")
    ctx = build_context(settings)
    yield ctx
    ctx.engine.dispose()


def test_seed_needs_a_demo_context(ctx: Context) -> None:
    with pytest.raises(ValidationError):
        DemoService(ctx)


def test_seed_is_consistent_with_the_reconciler_and_feeds_every_view(
    demo_ctx: Context,
) -> None:
    report = DemoService(demo_ctx).seed(80)
    assert report.instances == 80 and report.governed > 0
    assert report.metric_hours > 0 and report.actions > 0 and report.stop_intervals > 0
    assert report.admin_key.startswith("sqk_") and report.viewer_key.startswith("sqk_")
    # Every governed instance is already where its schedule wants it: the first
    # reconciler run has no stop or start to catch up on.
    run = Reconciler(demo_ctx).run()
    assert run.considered > 0
    assert not [i for i in run.items if i.action in ("stop", "start") and i.result == "ok"]
    recs = RecommendationService(demo_ctx).list()
    assert any(r["status"] == "open" for r in recs)
    assert SavingsService(demo_ctx).report(start=demo_ctx.now() - timedelta(days=14)
                                           ).realized_total_cents > 0


def test_simulated_provider_refuses_like_the_clouds_and_transitions(demo_ctx: Context) -> None:
    DemoService(demo_ctx).seed(60)
    everything = InventoryService(demo_ctx).list_all(
        InventoryService(demo_ctx).build_filter())
    lifecycle = LifecycleService(demo_ctx)
    cluster = next(i for i in everything if i.kind is InstanceKind.CLUSTER
                   and i.tags.get("snoozeql-protect") != "true")
    member = next(i for i in everything if i.cluster_provider_id == cluster.provider_id)
    with pytest.raises(ActionRefused, match="stop the cluster instead"):
        lifecycle.act(member.id, "stop", actor="test")
    # Whatever the schedules want at this hour: act on the cluster one way, then back.
    account = next(a for a in AccountService(demo_ctx).list()
                   if a.provider is ProviderKind.DEMO_AWS)
    wait = float(account.config["transition_seconds"]) + 0.5
    steps = [("stop", InstanceStatus.STOPPING, InstanceStatus.STOPPED),
             ("start", InstanceStatus.STARTING, InstanceStatus.RUNNING)]
    if cluster.status is InstanceStatus.STOPPED:
        steps.reverse()
    for action, during, final in steps:
        done = lifecycle.act(cluster.id, action, actor="test")
        assert done.instance.status is during
        # Again while in transition: done already (in progress), as the clouds answer.
        again = lifecycle.act(cluster.id, action, actor="test")
        assert again.already and again.message == f"already {during.value} (in progress)"
        time.sleep(wait)
        # The next sync brings the simulation's new state into the inventory; the
        # members follow their cluster.
        DiscoveryService(demo_ctx).sync(account.id)
        assert InventoryService(demo_ctx).get(cluster.id).status is final
        assert InventoryService(demo_ctx).get(member.id).status is final


def test_fleet_is_deterministic_and_priced() -> None:
    cfg = normalize_config(ProviderKind.DEMO_GCP, {"instances": 40, "seed": 7})
    a, b = sim.fleet(ProviderKind.DEMO_GCP, cfg), sim.fleet(ProviderKind.DEMO_GCP, cfg)
    assert [d.name for d in a] == [d.name for d in b] and len(a) == 40
    assert len({d.provider_id for d in a}) == 40
    assert all(simulated_usd(d.instance_class, d.engine, d.region, d.multi_az) for d in a)
    with pytest.raises(ValidationError):
        normalize_config(ProviderKind.DEMO_AWS, {"regions": "mars-1"})
    with pytest.raises(ValidationError):
        normalize_config(ProviderKind.DEMO_AWS, {"password": "x"})


def test_load_hours_round_trips_on_both_stores(store_url: str, tmp_path: Path) -> None:
    """The batch loader writes rows that read back exactly (SQLite's fast path too)."""
    import uuid
    from datetime import UTC, datetime

    from snoozeql.domain.metrics import HourlyAggregate
    from snoozeql.domain.types import DiscoveredInstance
    from snoozeql.store import db, versions

    engine = db.create_engine(store_url)
    hour = datetime(2026, 11, 20, 13, tzinfo=UTC)
    with engine.begin() as conn:
        d = DiscoveredInstance(
            provider=ProviderKind.AWS, provider_id=f"load-{uuid.uuid4()}", name="load",
            kind=InstanceKind.INSTANCE, engine="postgres", engine_version=None,
            instance_class=None, region=None, status=InstanceStatus.RUNNING, raw_status=None,
        )
        iid = add_discovered(conn, d, None, hour)
        rows = [(iid, HourlyAggregate("cpu", hour + timedelta(hours=h), 10.5 + h, 1.0, 30.0,
                                      60)) for h in range(3)]
        before = versions.read(conn).get(versions.METRICS, 0)
        assert metric_store.load_hours(conn, rows) == 3
        assert versions.read(conn)[versions.METRICS] > before
    with engine.begin() as conn:
        metric_store.load_hours(conn, [(iid, HourlyAggregate("cpu", hour, 99.0, 99.0, 99.0,
                                                              1))])
    with engine.connect() as conn:
        got = metric_store.series(conn, iid, hour, hour + timedelta(hours=3))
        buckets = metric_store.read_buckets(conn, {iid: {("cpu", hour)}})
    assert got == [a for _, a in rows]  # the second load left the stored hour alone
    assert buckets[(iid, "cpu", hour)].minutes == metric_store.FULL_HOUR
    engine.dispose()


def test_reconciler_acts_on_the_simulation_at_the_next_transition(demo_ctx: Context) -> None:
    """Schedules keep working while the demo runs: at the next transition the ordinary
    reconciler stops or starts the simulated databases, without a failure."""
    from snoozeql.domain.schedules import desired_state
    from snoozeql.services.schedules import ScheduleService

    DemoService(demo_ctx).seed(60)
    now = demo_ctx.now()
    governing = [g for g in ScheduleService(demo_ctx).governing().values()
                 if not g.schedule.dry_run]
    assert governing
    later = next(
        now + timedelta(hours=h) for h in range(1, 24 * 8)
        if any(desired_state(g.schedule, now + timedelta(hours=h)).state
               != desired_state(g.schedule, now).state for g in governing)
    )
    demo_ctx.clock = lambda: later
    run = Reconciler(demo_ctx).run()
    # (the ML team's schedule is a dry run: it only records what it would do)
    acted = [i for i in run.items if i.action in ("stop", "start") and i.result != "dry_run"]
    bad = [i for i in acted if i.result != "ok"]
    assert acted and not bad, bad
    for item in acted:
        status = InventoryService(demo_ctx).get(item.instance_id).status
        assert status is (InstanceStatus.STOPPING if item.action == "stop"
                          else InstanceStatus.STARTING)


def test_every_dashboard_page_renders_over_the_demo_fleet(demo_ctx: Context) -> None:
    """The demo's accounts carry numbers and booleans in their config (instances, seed,
    simulated): every page, the accounts page included, must render them."""
    import re

    from fastapi.testclient import TestClient

    from snoozeql.api.app import create_app

    report = DemoService(demo_ctx).seed(12)
    with TestClient(create_app(demo_ctx), base_url="http://127.0.0.1") as c:
        page = c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        c.post("/login", data={"api_key": report.admin_key, "csrf_token": token.group(1)})
        one = c.get("/api/v1/instances?limit=1&kind=instance",
                    headers={"X-API-Key": report.admin_key}).json()["items"][0]["id"]
        for path in ("/", "/instances", f"/instances/{one}", "/accounts", "/local",
                     "/activity", "/audit", "/keys"):
            r = c.get(path)
            assert r.status_code == 200, (path, r.status_code, r.text[-300:])
            assert "demo" in r.text
        accounts = c.get("/accounts").text
        assert "simulated=true" in accounts and "seed=" in accounts
