"""Local PostgreSQL create -> ready (issue 19, item 8).

Run: ``.venv/bin/python -m benchmarks.bench_local_create [--rounds 5] [--also SRC]``

Each round, side by side, in alternating order:

- ``snoozeql db create`` as a user runs it (a new process, CLI start-up included,
  on an existing SQLite store in a fresh data directory), until it exits with the
  server answering with its password;
- the bare sequence: ``initdb`` + ``pg_ctl start -w`` + ``pg_isready``, once as
  initdb does it by default (fsync of the new cluster) and once with ``--no-sync``
  (what SnoozeQL does for a new, empty cluster).

Servers are stopped and removed after each measurement (not timed). Run as root, the
bare sequence runs as ``postgres`` (initdb refuses root), like SnoozeQL does.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1])
SNOOZEQL = [sys.executable, "-m", "snoozeql.cli.main"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def bare(no_sync: bool) -> float:
    tmp = Path(tempfile.mkdtemp(prefix="snoozeql-bare-"))
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
    data, port = tmp / "data", _free_port()
    initdb = [str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
              "-E", "UTF8", "--no-locale", *(["--no-sync"] if no_sync else [])]
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
    start = [str(BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(tmp / "log"),
             "start", "-w"]
    ready = [str(BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True}
    try:
        t = time.perf_counter()
        subprocess.run(_as_postgres(initdb), **quiet)  # type: ignore[call-overload]
        subprocess.run(_as_postgres(start), **quiet)  # type: ignore[call-overload]
        subprocess.run(ready, **quiet)  # type: ignore[call-overload]
        return time.perf_counter() - t
    finally:
        subprocess.run(_as_postgres([str(BIN / "pg_ctl"), "-D", str(data), "-m",
                                     "immediate", "stop"]), capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def snoozeql_create(n: int, src: str | None = None) -> float:
    tmp = Path(tempfile.mkdtemp(prefix="snoozeql-create-"))
    os.chmod(tmp, 0o755)
    env = {**os.environ, "SNOOZEQL_DATA_DIR": str(tmp / "data")}
    if src is not None:  # another checkout's code (--also), e.g. the code before a change
        env["PYTHONPATH"] = src
    env.pop("SNOOZEQL_DATABASE_URL", None)
    name = f"bench{n}"
    # The store exists already (made and migrated by an earlier command), as for a
    # user who has run snoozeql before; not timed.
    subprocess.run([*SNOOZEQL, "db", "list", "--json"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    try:
        t = time.perf_counter()
        subprocess.run([*SNOOZEQL, "db", "create", name, "--engine", "postgres",
                        "--password", "bench-password", "--json"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - t
    finally:
        subprocess.run([*SNOOZEQL, "db", "delete", name, "--yes"], env=env,
                       capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--also", metavar="SRC", help="also time `db create` with PYTHONPATH=SRC "
                    "(another checkout's src/, e.g. the code before a change), interleaved")
    args = ap.parse_args()
    runs: dict[str, list[float]] = {"snoozeql db create": [], "bare (initdb default)": [],
                                    "bare (initdb --no-sync)": []}
    also = f"snoozeql db create ({args.also})"
    if args.also:
        runs[also] = []
    for r in range(args.rounds + 1):
        order = [("snoozeql db create", lambda r=r: snoozeql_create(r)),
                 ("bare (initdb default)", lambda: bare(False)),
                 ("bare (initdb --no-sync)", lambda: bare(True))]
        if args.also:
            order.insert(2, (also, lambda r=r: snoozeql_create(r, args.also)))
        if r % 2:
            order.reverse()
        for label, fn in order:
            dt = fn()
            if r:  # round 0 warms the page cache
                runs[label].append(dt)
    # The CLI runs in new processes with this environment (PYTHONPATH included): say
    # which SnoozeQL they import.
    where = subprocess.run([sys.executable, "-c", "import snoozeql; print(snoozeql.__file__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    print(f"PostgreSQL {BIN.parent.name}: create -> ready, {args.rounds} interleaved rounds "
          f"(seconds); snoozeql from {where}\n")
    print("| sequence | median | min | max |")
    print("| --- | ---: | ---: | ---: |")
    for label, v in runs.items():
        print(f"| {label} | {statistics.median(v):.2f} | {min(v):.2f} | {max(v):.2f} |")
    for label in ("snoozeql db create", *([also] if args.also else [])):
        ours = statistics.median(runs[label])
        for ref in ("bare (initdb default)", "bare (initdb --no-sync)"):
            print(f"\nratio {label} / {ref}: {ours / statistics.median(runs[ref]):.2f}x",
                  end="")
    print()


if __name__ == "__main__":
    main()
