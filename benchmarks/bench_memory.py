"""Memory of ``snoozeql serve`` with 100,000 instances (issue 19, item 1).

Starts a real ``snoozeql serve`` process (jobs on) on a store with 20 AWS accounts of
5,000 databases each (100,000), answered by a small RDS endpoint in this process that
speaks the query API (DescribeDBInstances pages of 100, DescribeDBClusters). The serve
process loads them itself, through its ``sync-accounts`` job (the store's sync path),
and syncs again every ``--sync-interval`` seconds; the reconciler runs every 10 s over
two schedules governing 10,000 instances each (one wanting the state they are in, one
a dry run wanting them stopped: a transition of 10,000 dry-run rows once, then steady
state). Metrics collection is off (the endpoint does not speak CloudWatch).

Samples ``VmRSS`` and ``VmHWM`` from ``/proc/PID/status`` every 0.5 s and reports:
the first sync's end, the peak (``VmHWM``), and the idle RSS (median of the samples in
the last 30 s, after several syncs and reconciles). The reference in the same run is
the same store served with ``--no-jobs``.

Run: ``.venv/bin/python -m benchmarks.bench_memory [--store sqlite|postgres]
[--seconds 240]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.moto_server import free_port

from benchmarks.bench_inventory import drop_pg, pg_database
from snoozeql.config import Settings
from snoozeql.services.accounts import AccountService
from snoozeql.services.context import build_context
from snoozeql.services.schedules import ScheduleService

ACCOUNTS = 20
PER_ACCOUNT = 5_000
SNOOZEQL = str(Path(sys.executable).with_name("snoozeql"))
_ENGINES = ("postgres", "mysql", "mariadb")


def _instance_xml(account: int, i: int) -> str:
    n = account * PER_ACCOUNT + i
    name = f"acct{account:02d}-db-{i:05d}"
    arn = f"arn:aws:rds:us-east-1:1000000000{account:02d}:db:{name}"
    return (
        f"<DBInstance><DBInstanceIdentifier>{name}</DBInstanceIdentifier>"
        f"<DBInstanceArn>{arn}</DBInstanceArn><DBInstanceClass>db.t3.medium"
        f"</DBInstanceClass><Engine>{_ENGINES[n % 3]}</Engine><EngineVersion>15.4"
        f"</EngineVersion><DBInstanceStatus>available</DBInstanceStatus>"
        f"<Endpoint><Address>{name}.x.us-east-1.rds.amazonaws.com</Address><Port>5432"
        f"</Port></Endpoint><MultiAZ>false</MultiAZ><AvailabilityZone>us-east-1a"
        f"</AvailabilityZone><AllocatedStorage>20</AllocatedStorage><TagList>"
        f"<Tag><Key>env</Key><Value>{('dev', 'staging', 'prod')[n % 3]}</Value></Tag>"
        f"<Tag><Key>team</Key><Value>team-{n % 40}</Value></Tag>"
        f"<Tag><Key>cost-center</Key><Value>cc-{n % 7}</Value></Tag></TagList></DBInstance>"
    )


class FakeRds:
    """DescribeDBInstances / DescribeDBClusters for ``ACCOUNTS`` accounts, one per
    URL path (``/acct-K``)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                form = urllib.parse.parse_qs(body.decode())
                action = form.get("Action", [""])[0]
                account = int(self.path.strip("/").split("-")[-1] or 0)
                if action == "DescribeDBInstances":
                    start = int(form.get("Marker", ["0"])[0])
                    size = int(form.get("MaxRecords", ["100"])[0])
                    end = min(start + size, PER_ACCOUNT)
                    marker = f"<Marker>{end}</Marker>" if end < PER_ACCOUNT else ""
                    items = "".join(_instance_xml(account, i) for i in range(start, end))
                    xml = (f"<DescribeDBInstancesResult>{marker}<DBInstances>{items}"
                           f"</DBInstances></DescribeDBInstancesResult>")
                elif action == "DescribeDBClusters":
                    xml = "<DescribeDBClustersResult><DBClusters/></DescribeDBClustersResult>"
                else:
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = (f'<{action}Response xmlns="http://rds.amazonaws.com/doc/2014-10-31/">'
                          f"{xml}<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
                          f"</{action}Response>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def status_kb(pid: int) -> tuple[int, int]:
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def count_instances(url: str) -> int:
    import sqlalchemy as sa

    from snoozeql.store import db

    engine = db.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM instances")).scalar_one())
    finally:
        engine.dispose()


def serve(url: str, data: Path, env: dict[str, str], seconds: float, jobs: bool,
          log: Path) -> dict[str, Any]:
    port = free_port()
    cmd = [SNOOZEQL, "serve", "--port", str(port)] + ([] if jobs else ["--no-jobs"])
    proc = subprocess.Popen(cmd, env=env | {"SNOOZEQL_DATABASE_URL": url,
                                            "SNOOZEQL_DATA_DIR": str(data)},
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    samples: list[tuple[float, int, int]] = []
    synced_at = None
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {log.read_text()[-2000:]}")
            rss, hwm = status_kb(proc.pid)
            samples.append((time.monotonic() - t0, rss, hwm))
            if jobs and synced_at is None and len(samples) % 10 == 0 and \
                    count_instances(url) >= ACCOUNTS * PER_ACCOUNT:
                synced_at = time.monotonic() - t0
            time.sleep(0.5)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
        except OSError:
            pass
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    last = [rss for t, rss, _ in samples if t >= seconds - 30]
    return {"idle_mb": statistics.median(last) / 1024, "peak_mb": samples[-1][2] / 1024,
            "synced_at": synced_at, "samples": samples}


def memo_size(url: str) -> str:
    """RSS and traced allocations kept by the recommendations memo (issue 21 changes it;
    measured here only): one ``RecommendationService.current()`` on the loaded store."""
    import gc
    import tracemalloc

    from snoozeql.services.recommendations import RecommendationService

    settings = Settings(data_dir=Path(tempfile.mkdtemp()), database_url=url,
                        aws_price_list=False, _env_file=None)  # type: ignore[call-arg]
    ctx = build_context(settings, migrate=False)
    gc.collect()
    rss0, _ = status_kb(os.getpid())
    tracemalloc.start()
    entries = RecommendationService(ctx).current()
    gc.collect()
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1, _ = status_kb(os.getpid())
    ctx.engine.dispose()
    return (f"recommendations memo: {len(entries):,} entries, {kept / 2**20:.0f} MB kept "
            f"(peak {peak / 2**20:.0f} MB while computing), RSS +{(rss1 - rss0) / 1024:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=240)
    parser.add_argument("--sync-interval", type=int, default=60)
    parser.add_argument("--memo", action="store_true",
                        help="also measure the recommendations memo on the loaded store")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="snoozeql-mem-"))
    fake = FakeRds()
    pg_name = None
    if args.store == "postgres":
        url, pg_name = pg_database()
    else:
        url = f"sqlite:///{tmp / 'store.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOOZEQL_", "AWS_"))}
    env |= {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
            "SNOOZEQL_AWS_PRICE_LIST": "false", "SNOOZEQL_METRICS_ENABLED": "false",
            "SNOOZEQL_RECONCILE_INTERVAL_SECONDS": "10",
            "SNOOZEQL_SYNC_INTERVAL_SECONDS": str(args.sync_interval),
            "SNOOZEQL_STOP_WARNING_MINUTES": "0", "SNOOZEQL_JOB_POLL_SECONDS": "1",
            "SNOOZEQL_ALLOWED_ENDPOINTS": '["127.0.0.1"]',  # the fake RDS endpoint
            "SNOOZEQL_LOG_LEVEL": "WARNING"}
    os.environ["SNOOZEQL_ALLOWED_ENDPOINTS"] = env["SNOOZEQL_ALLOWED_ENDPOINTS"]
    try:
        settings = Settings(data_dir=tmp / "setup", database_url=url, aws_price_list=False,
                            _env_file=None)  # type: ignore[call-arg]
        ctx = build_context(settings)
        for k in range(ACCOUNTS):
            AccountService(ctx).add("aws", f"acct-{k:02d}", {
                "regions": "us-east-1", "endpoint_url": f"{fake.url}/acct-{k}"})
        svc = ScheduleService(ctx)
        svc.create({"name": "always", "timezone": "UTC", "override_status": "running",
                    "periods": []})
        svc.create({"name": "dry", "timezone": "UTC", "override_status": "stopped",
                    "periods": [], "dry_run": True})
        for k in (1, 2, 3, 5):
            svc.assign("always", tag=f"team=team-{k}")
        for k in (13, 14, 15, 17):
            svc.assign("dry", tag=f"team=team-{k}")
        ctx.engine.dispose()

        on = serve(url, tmp / "data-jobs", env, args.seconds, True, tmp / "serve-jobs.log")
        off = serve(url, tmp / "data-nojobs", env, 45, False, tmp / "serve-nojobs.log")
        print(f"| {args.store} | jobs on | {on['idle_mb']:.0f} MB | {on['peak_mb']:.0f} MB | "
              f"first sync of 100k done after {on['synced_at'] or float('nan'):.0f} s |")
        print(f"| {args.store} | --no-jobs (reference) | {off['idle_mb']:.0f} MB | "
              f"{off['peak_mb']:.0f} MB | |")
        trace = tmp / "rss.csv"
        trace.write_text("t,rss_kb,hwm_kb\n" + "".join(
            f"{t:.1f},{r},{h}\n" for t, r, h in on["samples"]))
        print(f"trace: {trace}", file=sys.stderr)
        if args.memo:
            print(memo_size(url))
    finally:
        fake.close()
        if pg_name:
            drop_pg(pg_name)
        shutil.rmtree(tmp / "setup", ignore_errors=True)


if __name__ == "__main__":
    main()
