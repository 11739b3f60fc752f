"""Dashboard part 2 benchmark: the schedule, recommendation and savings pages on a big
fleet (issue 16).

Loads ``--instances`` (default 10,000) synthetic instances into a fresh PostgreSQL
database with the schedules of ``bench_dashboard`` (by account, tag, selector, own tag
and directly), starts the real ``snoozeql serve --no-jobs``, signs in like a browser
and times, per page, the first request (cold: nothing kept in the process yet) and
then p50/p95 over ``--rounds`` interleaved rounds:

* ``GET /schedules`` (matched counts, next transitions, conflicts of every schedule),
* ``GET /schedules/{id}`` of the tag-assigned schedule (timeline, a page of matches),
* ``GET /schedules/conflicts``,
* ``POST /schedules/selector-preview`` (the editor's live preview of a selector),
* ``GET /recommendations`` (a page of cards),
* ``GET /savings`` (30 days; cards, daily series, attribution),
* and, for scale, ``GET /instances?limit=50`` (the part-1 page).

Run: ``.venv/bin/python -m benchmarks.bench_schedule_pages [--instances 10000]
[--rounds 20]``. Prints a Markdown table; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.bench_dashboard import free_port, load, pct, serve, sign_in
from benchmarks.bench_inventory import drop_pg, pg_database

_CSRF = re.compile(r'data-csrf="([0-9a-f]+)"')
SELECTOR = {"all": [{"tag": {"key": "env", "value": "dev|staging"}},
                    {"any": [{"engine": "mysql"}, {"name": "dash-00[0-4].*"}]}]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args(argv)
    url, name = pg_database()
    proc = None
    try:
        key = load(url, args.instances)
        port = free_port()
        with tempfile.TemporaryDirectory() as tmp:
            proc = serve(url, Path(tmp), port)
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=300) as api, \
                    httpx.Client(base_url=base, timeout=300, follow_redirects=True) as web:
                schedules = {s["name"]: s["id"] for s in api.get("/api/v1/schedules").json()}
                missing = sign_in(web, key)
                if missing:
                    raise SystemExit(missing)
                token = _CSRF.search(web.get("/").text).group(1)  # type: ignore[union-attr]

                def get(path: str) -> float:
                    t = time.perf_counter()
                    r = web.get(path)
                    if r.status_code != 200:
                        raise SystemExit(f"GET {path}: {r.status_code} {r.text[:300]}")
                    return (time.perf_counter() - t) * 1000

                def preview() -> float:
                    t = time.perf_counter()
                    r = web.post("/schedules/selector-preview", json={"selector": SELECTOR},
                                 headers={"X-CSRF-Token": token})
                    if r.status_code != 200 or not r.json().get("ok"):
                        raise SystemExit(f"selector preview: {r.status_code} {r.text[:300]}")
                    return (time.perf_counter() - t) * 1000

                cases = [
                    ("GET /schedules", lambda: get("/schedules")),
                    ("GET /schedules/{id}", lambda: get(f"/schedules/{schedules['dev-nights']}")),
                    ("GET /schedules/conflicts", lambda: get("/schedules/conflicts")),
                    ("POST /schedules/selector-preview", preview),
                    ("GET /recommendations", lambda: get("/recommendations")),
                    ("GET /savings", lambda: get("/savings")),
                    ("GET /instances?limit=50", lambda: get("/instances?limit=50")),
                ]
                load_before = os.getloadavg()
                first = {label: fn() for label, fn in cases}
                times: dict[str, list[float]] = {label: [] for label, _ in cases}
                for _ in range(args.rounds):
                    for label, fn in cases:
                        times[label].append(fn())
                load_after = os.getloadavg()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        drop_pg(name)
    print(f"\n{args.instances:,} instances, {args.rounds} rounds; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    print("| request | first (ms) | p50 (ms) | p95 (ms) |")
    print("| --- | ---: | ---: | ---: |")
    for label, _ in cases:
        v = times[label]
        print(f"| {label} | {first[label]:.0f} | {pct(v, 50):.0f} | {pct(v, 95):.0f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
