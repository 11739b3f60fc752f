"""Inventory write path against the bulk ceiling (issue 19, item 6).

For ``--instances`` (default 100,000) synthetic instances of one account, on a migrated
store (every index and trigger of ``instances`` in place), in alternating order per
round, each into an emptied ``instances`` table:

- **ceiling**: the same rows, already encoded, written by the driver's bulk path and
  nothing else: PostgreSQL ``COPY instances (...) FROM STDIN`` of the text lines the
  sync would send; SQLite ``executemany`` of a plain ``INSERT`` with the tuples the
  sync would bind. Nothing is read, compared or hashed;
- **first sync**: ``store.instances.sync_account`` as discovery runs it (with the
  account's ``last_sync_at`` update in the same transaction), from the
  ``DiscoveredInstance`` objects a provider returns;
- **re-sync, 1% changed**: the same sync again with every 100th instance's status
  flipped (it writes only those);
- **per-row loop**: a plain driver loop of one ``INSERT .. ON CONFLICT DO UPDATE`` per
  row (psycopg / sqlite3, no SQLAlchemy), on the first ``--loop-rows`` rows.

Both sides run with the same durability: PostgreSQL transactions with
``synchronous_commit = off`` (what the sync sets for itself), SQLite as the store
opens it. Prints rows per second (median of ``--rounds``) and the ratios to the
ceiling. Targets: first sync at least 0.85 of the ceiling; a re-sync with 1% changed
at least 3x the ceiling's rows per second.

Run: ``.venv/bin/python -m benchmarks.bench_sync_ceiling [--store sqlite|postgres|both]
[--instances 100000] [--rounds 3]`` (PostgreSQL from ``SNOOZEQL_TEST_PG_URL``; its own
database, dropped after).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from benchmarks.bench_inventory import changed, drop_pg, fresh_engine, pg_database, synthetic
from snoozeql.domain.types import DiscoveredInstance
from snoozeql.store import accounts, db
from snoozeql.store import instances as inst

COLUMNS = inst._LINE_COLUMNS  # the columns a sync writes, in its COPY order


def copy_lines(items: list[DiscoveredInstance], account_id: uuid.UUID, seen: datetime
               ) -> list[str]:
    at = seen.isoformat()
    out = []
    for d in items:
        body = inst._encode(d, None)
        out.append(f"{uuid.uuid4()}\t{account_id}\t{body}\t{inst._digest(body)}\t{at}\t{at}\n")
    return out


def sqlite_tuples(engine: sa.Engine, items: list[DiscoveredInstance], account_id: uuid.UUID,
                  seen: datetime) -> list[tuple[Any, ...]]:
    """The tuples the sync binds (values as SQLAlchemy's column types bind them)."""
    stamp = inst.instances.c.last_seen_at.type.bind_processor(engine.dialect)
    naive = stamp(seen) if stamp else seen
    dumps, sort = orjson.dumps, orjson.OPT_SORT_KEYS
    return [
        (uuid.uuid4().hex, account_id.hex, d.provider.value, d.provider_id, d.kind.value,
         d.name, d.engine, d.engine_version, d.instance_class, d.region, d.status.value,
         d.raw_status, dumps(d.tags, option=sort).decode(), d.endpoint_host,
         d.endpoint_port, d.multi_az, d.node_count, d.cluster_provider_id, None,
         dumps(d.extra, option=sort).decode(), inst._digest(inst._encode(d, None)), naive,
         naive)
        for d in items
    ]


class Stores:
    """A fresh, empty ``instances`` table for every timed write, so no write pays for
    the previous one's leftovers (SQLite: a copy of one migrated template file, as
    deleting rows leaves FTS5 delete markers and free pages behind; PostgreSQL:
    ``TRUNCATE``, new files for the table and its indexes, then a ``CHECKPOINT`` so no
    checkpoint of the previous write lands in the next)."""

    def __init__(self, url: str, tmp: Path | None) -> None:
        engine, self.account_id = fresh_engine(url)
        self.url, self.tmp, self.n = url, tmp, 0
        if tmp is not None:
            engine.dispose()
            self.template = Path(sa.engine.make_url(url).database or "")
            self.engine: sa.Engine | None = None
        else:
            self.engine = engine

    def fresh(self) -> sa.Engine:
        if self.tmp is None:
            assert self.engine is not None
            with self.engine.connect() as conn:
                conn.exec_driver_sql("TRUNCATE instances CASCADE")
                conn.commit()
                conn.exec_driver_sql("CHECKPOINT")
                conn.commit()
            return self.engine
        self.n += 1
        path = self.tmp / f"copy-{self.n}.db"
        shutil.copyfile(self.template, path)
        return db.create_engine(f"sqlite:///{path}")

    def done(self, engine: sa.Engine) -> None:
        if self.tmp is not None:
            engine.dispose()
            Path(engine.url.database or "").unlink(missing_ok=True)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def ceiling(engine: sa.Engine, payload: Any) -> float:
    """Seconds for the bulk write alone."""
    with engine.connect() as conn:
        raw: Any = conn.connection.driver_connection
        started = time.perf_counter()
        if engine.dialect.name == "postgresql":
            with raw.cursor() as cur:
                cur.execute("SET LOCAL synchronous_commit = off")
                with cur.copy(f"COPY instances ({', '.join(COLUMNS)}) FROM STDIN") as cp:
                    for i in range(0, len(payload), 2_000):
                        cp.write("".join(payload[i : i + 2_000]))
        else:
            marks = ", ".join("?" for _ in COLUMNS)
            raw.executemany(
                f"INSERT INTO instances ({', '.join(COLUMNS)}) VALUES ({marks})", payload)
        raw.commit()
        return time.perf_counter() - started


def sync(engine: sa.Engine, account_id: uuid.UUID, items: list[DiscoveredInstance]) -> float:
    seen = datetime.now(UTC)
    started = time.perf_counter()
    with engine.begin() as conn:
        inst.sync_account(conn, account_id, items, seen, {})
        accounts.update(conn, account_id, seen, last_sync_at=seen)
    return time.perf_counter() - started


def per_row(engine: sa.Engine, payload: Any, rows: int) -> float:
    """Seconds for ``rows`` single-row upserts through the bare driver."""
    cols = ", ".join(COLUMNS)
    update = ", ".join(f"{c} = excluded.{c}" for c in inst._SYNCED if c != "missing_since")
    with engine.connect() as conn:
        raw: Any = conn.connection.driver_connection
        started = time.perf_counter()
        if engine.dialect.name == "postgresql":
            marks = ", ".join("%s" for _ in COLUMNS)
            sql = (f"INSERT INTO instances ({cols}) VALUES ({marks}) "
                   f"ON CONFLICT (provider, provider_id) DO UPDATE SET {update}")
            with raw.cursor() as cur:
                cur.execute("SET LOCAL synchronous_commit = off")
                for line in payload[:rows]:
                    values = [None if v == "\\N" else v for v in line[:-1].split("\t")]
                    cur.execute(sql, values)
        else:
            marks = ", ".join("?" for _ in COLUMNS)
            sql = (f"INSERT INTO instances ({cols}) VALUES ({marks}) "
                   f"ON CONFLICT (provider, provider_id) DO UPDATE SET {update}")
            for values in payload[:rows]:
                raw.execute(sql, values)
        raw.commit()
        return time.perf_counter() - started


def bench(url: str, label: str, n: int, rounds: int, loop_rows: int,
          tmp: Path | None) -> list[str]:
    stores = Stores(url, tmp)
    account_id = stores.account_id
    items = synthetic(n)
    hundredth = changed(items, 100)
    seen = datetime.now(UTC)
    probe = stores.fresh()
    payload = (copy_lines(items, account_id, seen) if probe.dialect.name == "postgresql"
               else sqlite_tuples(probe, items, account_id, seen))
    stores.done(probe)
    times: dict[str, list[float]] = {"ceiling": [], "first": [], "resync": [], "loop": []}

    def first(engine: sa.Engine) -> float:
        took = sync(engine, account_id, items)
        times["resync"].append(sync(engine, account_id, hundredth))
        return took

    steps: list[tuple[str, Callable[[sa.Engine], float]]] = [
        ("ceiling", lambda e: ceiling(e, payload)),
        ("first", first),
        ("loop", lambda e: per_row(e, payload, loop_rows)),
    ]
    for r in range(rounds):
        for name, step in steps if r % 2 == 0 else reversed(steps):
            engine = stores.fresh()
            times[name].append(step(engine))
            stores.done(engine)
    stores.close()
    rate = {k: (loop_rows if k == "loop" else n) / statistics.median(v)
            for k, v in times.items()}
    ceil = rate["ceiling"]
    return [
        f"| {label} | ceiling (bulk write only) | {rate['ceiling']:,.0f} | 1.00 |",
        f"| {label} | first sync (`sync_account`) | {rate['first']:,.0f} | "
        f"{rate['first'] / ceil:.2f} |",
        f"| {label} | re-sync, 1% changed | {rate['resync']:,.0f} | "
        f"{rate['resync'] / ceil:.2f} |",
        f"| {label} | per-row loop, bare driver ({loop_rows:,} rows) | {rate['loop']:,.0f} | "
        f"{rate['loop'] / ceil:.2f} |",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--instances", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--loop-rows", type=int, default=0,
                    help="rows for the per-row loop (default: --instances)")
    args = ap.parse_args()
    args.loop_rows = args.loop_rows or args.instances
    load_before = os.getloadavg()
    lines: list[str] = []
    if args.store in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            lines += bench(url, "SQLite", args.instances, args.rounds, args.loop_rows,
                           Path(tmp))
    if args.store in ("postgres", "both"):
        url, name = pg_database()
        try:
            lines += bench(url, "PostgreSQL 15", args.instances, args.rounds,
                           args.loop_rows, None)
        finally:
            drop_pg(name)
    load_after = os.getloadavg()
    print(f"\n{args.instances:,} instances, median of {args.rounds} rounds; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after ({os.cpu_count()} CPUs)\n")
    print("| store | write | rows/s | vs ceiling |")
    print("| --- | --- | ---: | ---: |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
