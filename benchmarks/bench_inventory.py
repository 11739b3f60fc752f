"""Inventory benchmark: discovery writes and listing latency (issue 3).

1. Syncs 10,000 instances of synthetic provider output into SQLite and PostgreSQL
   three times (first sync, unchanged re-sync, re-sync with 10% changed) with the
   write path discovery uses (``store.instances.sync_account``), and with a
   one-upsert-per-row loop (the naive approach) in the same run, and reports
   instances per second.
2. Stores 100,000 instances and reports p50/p99 of
   ``GET /api/v1/instances?limit=100&engine=postgres`` over real HTTP (uvicorn).

Run: ``.venv/bin/python -m benchmarks.bench_inventory`` (PostgreSQL from
``SNOOZEQL_TEST_PG_URL``, default the local server). Prints a Markdown table.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from benchmarks.serving import serve_in_thread
from snoozeql.config import Settings
from snoozeql.domain.types import (
    Account,
    DiscoveredInstance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.store import accounts, db
from snoozeql.store import instances as inst

PG_ADMIN = os.environ.get(
    "SNOOZEQL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ENGINES = ("postgres", "mysql", "mariadb", "aurora-postgresql", "aurora-mysql")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")


def synthetic(n: int, offset: int = 0) -> list[DiscoveredInstance]:
    out = []
    for i in range(offset, offset + n):
        region = REGIONS[i % len(REGIONS)]
        out.append(
            DiscoveredInstance(
                provider=ProviderKind.AWS,
                provider_id=f"arn:aws:rds:{region}:123456789012:db:bench-{i:07d}",
                name=f"bench-{i:07d}",
                kind=InstanceKind.INSTANCE,
                engine=ENGINES[i % 5],
                engine_version="15.4",
                instance_class="db.t3.medium",
                region=region,
                status=InstanceStatus.RUNNING if i % 4 else InstanceStatus.STOPPED,
                raw_status="available" if i % 4 else "stopped",
                tags={
                    "env": ("dev", "staging", "prod")[i % 3],
                    "team": f"team-{i % 40}",
                    "cost-center": f"cc-{i % 7}",
                },
                endpoint_host=f"bench-{i:07d}.abc.{region}.rds.amazonaws.com",
                endpoint_port=5432,
            )
        )
    return out


def pg_database(name: str | None = None) -> tuple[str, str]:
    """A new database (or ``name``, created unless it exists): its URL and name."""
    admin = sa.engine.make_url(PG_ADMIN)
    name = name or f"snoozeql_bench_{uuid.uuid4().hex[:8]}"
    e = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with e.connect() as c:
        exists = c.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                           {"n": name}).first()
        if not exists:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    e.dispose()
    return admin.set(database=name).render_as_string(hide_password=False), name


def drop_pg(name: str) -> None:
    e = sa.create_engine(sa.engine.make_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
    with e.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    e.dispose()


def fresh_engine(url: str) -> tuple[sa.Engine, uuid.UUID]:
    engine = db.create_engine(url)
    db.upgrade(engine)
    account_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM instances")
        conn.exec_driver_sql("DELETE FROM accounts")
        accounts.insert(
            conn,
            Account(
                id=account_id,
                name=f"b{account_id.hex[:6]}",
                provider=ProviderKind.AWS,
                config={"regions": []},
            ),
            datetime.now(UTC),
        )
    return engine, account_id


def _upsert_one_naive(conn: sa.Connection, d: DiscoveredInstance, account_id: uuid.UUID,
                      seen: datetime) -> None:
    """The per-row approach the sync replaced: one compiled upsert per instance."""
    row = {
        "id": uuid.uuid4(), "account_id": account_id, "provider": d.provider.value,
        "provider_id": d.provider_id, "kind": d.kind.value, "name": d.name,
        "engine": d.engine, "engine_version": d.engine_version,
        "instance_class": d.instance_class, "region": d.region, "status": d.status.value,
        "raw_status": d.raw_status, "tags": dict(d.tags), "endpoint_host": d.endpoint_host,
        "endpoint_port": d.endpoint_port, "multi_az": d.multi_az, "node_count": d.node_count,
        "cluster_provider_id": d.cluster_provider_id, "hourly_cost_cents": None,
        "extra": dict(d.extra), "first_seen_at": seen, "last_seen_at": seen,
        "missing_since": None,
    }
    ins = inst._insert_for(conn).values(**row)
    conn.execute(ins.on_conflict_do_update(
        index_elements=[inst.instances.c.provider, inst.instances.c.provider_id],
        set_={c: getattr(ins.excluded, c) for c in inst._SYNCED},
    ))


def time_sync(
    engine: sa.Engine, account_id: uuid.UUID, items: list[DiscoveredInstance], naive: bool
) -> float:
    """One sync's store writes, as DiscoveryService.sync does them; instances/s."""
    seen = datetime.now(UTC)
    started = time.perf_counter()
    with engine.begin() as conn:
        if naive:
            for d in items:
                _upsert_one_naive(conn, d, account_id, seen)
            conn.execute(
                inst.instances.update()
                .where(inst.instances.c.account_id == account_id,
                       inst.instances.c.last_seen_at < seen,
                       inst.instances.c.missing_since.is_(None))
                .values(missing_since=seen)
            )
        else:
            inst.sync_account(conn, account_id, items, seen, {})
        accounts.update(conn, account_id, seen, last_sync_at=seen)
    return len(items) / (time.perf_counter() - started)


def changed(items: list[DiscoveredInstance], every: int) -> list[DiscoveredInstance]:
    """The same instances with every n-th one's status flipped."""
    def flip(d: DiscoveredInstance) -> DiscoveredInstance:
        if d.status is InstanceStatus.RUNNING:
            return dataclasses.replace(d, status=InstanceStatus.STOPPED, raw_status="stopped")
        return dataclasses.replace(d, status=InstanceStatus.RUNNING, raw_status="available")
    return [flip(d) if i % every == 0 else d for i, d in enumerate(items)]


def bench_sync(url: str, label: str, n: int = 10_000, rounds: int = 3) -> list[str]:
    """Median of ``rounds`` fresh stores: first sync (all new), a re-sync where
    nothing changed, and a re-sync where 10% of the instances changed."""
    items = synthetic(n)
    tenth = changed(items, 10)
    lines = []
    for naive in (False, True):
        rates: list[tuple[float, float, float]] = []
        for _ in range(1 if naive else rounds):
            engine, account_id = fresh_engine(url)
            rates.append((
                time_sync(engine, account_id, items, naive),
                time_sync(engine, account_id, items, naive),
                time_sync(engine, account_id, tenth, naive),
            ))
            engine.dispose()
        first, same, some = (statistics.median(r[k] for r in rates) for k in range(3))
        how = "per-row loop (naive)" if naive else "sync_account"
        lines.append(f"| {label} | {how} | {first:,.0f} | {same:,.0f} | {some:,.0f} |")
    return lines


def bench_list(url: str, label: str, n: int = 100_000, requests: int = 300) -> str:
    engine, account_id = fresh_engine(url)
    seen = datetime.now(UTC) - timedelta(minutes=1)
    for start in range(0, n, 10_000):
        with engine.begin() as conn:
            inst.upsert_discovered(conn, synthetic(10_000, start), account_id, seen, {})
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE instances")
    settings = Settings(database_url=url, jobs_enabled=False, _env_file=None)  # type: ignore[call-arg]
    ctx = Context(settings=settings, engine=engine, providers=ProviderRegistry(settings))
    _, key = ApiKeyService(ctx).create(f"bench-{uuid.uuid4().hex[:6]}", "viewer")
    server, thread, port = serve_in_thread(ctx)
    latencies = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}) as c:
        cursor = None
        for i in range(requests + 20):
            params = {"limit": "100", "engine": "postgres"}
            if cursor and i % 10:
                params["cursor"] = cursor  # walk pages too, not only the first one
            t = time.perf_counter()
            r = c.get("/api/v1/instances", params=params)
            dt = time.perf_counter() - t
            r.raise_for_status()
            cursor = r.json()["next_cursor"]
            if i >= 20:  # warm-up
                latencies.append(dt * 1000)
    server.should_exit = True
    thread.join(10)
    engine.dispose()
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return f"| {label} | {n:,} | {requests} | {p50:.1f} | {p99:.1f} |"


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="snoozeql-bench-"))
    pg_url, pg_name = pg_database()
    try:
        sqlite_url = f"sqlite:///{tmp / 'bench.db'}"
        print("Discovery write rate, 10,000 instances (instances/s):\n")
        print("| store | method | first sync (all new) | re-sync, unchanged "
              "| re-sync, 10% changed |")
        print("| --- | --- | ---: | ---: | ---: |")
        for line in bench_sync(sqlite_url, "SQLite") + bench_sync(pg_url, "PostgreSQL 15"):
            print(line)
        sys.stdout.flush()
        print("\n`GET /api/v1/instances?limit=100&engine=postgres` over HTTP (ms):\n")
        print("| store | stored instances | requests | p50 | p99 |")
        print("| --- | ---: | ---: | ---: | ---: |")
        print(bench_list(f"sqlite:///{tmp / 'list.db'}", "SQLite"))
        print(bench_list(pg_url, "PostgreSQL 15"))
    finally:
        drop_pg(pg_name)


if __name__ == "__main__":
    main()
