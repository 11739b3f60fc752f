"""CLI start-up cost (issue 19, item 7).

Run: ``.venv/bin/python -m benchmarks.bench_cli_startup [--runs 10]``

Hyperfine-style: each command runs 2 times to warm up, then ``--runs`` times; CPU
time (user + system, of the child process, from ``getrusage``) and wall time are
reported as mean and standard deviation. ``python -c pass`` runs in the same loop as
the floor. The store is a fresh, empty SQLite store. Then the 12 most expensive
imports of ``snoozeql --help`` (``python -X importtime``, cumulative).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "python -c pass (floor)": [sys.executable, "-c", "pass"],
    "snoozeql --help": [sys.executable, "-m", "snoozeql.cli.main", "--help"],
    "snoozeql --version": [sys.executable, "-m", "snoozeql.cli.main", "--version"],
    "snoozeql instances list --json (empty store)": [
        sys.executable, "-m", "snoozeql.cli.main", "instances", "list", "--json"],
}


def _once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="snoozeql-cli-bench-"))
    env = {**os.environ, "SNOOZEQL_DATA_DIR": str(data)}
    env.pop("SNOOZEQL_DATABASE_URL", None)
    # The store is made (and migrated) once, as after the first command of a user.
    subprocess.run(COMMANDS["snoozeql instances list --json (empty store)"], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in COMMANDS}
    for r in range(args.runs + 2):
        for label, argv in COMMANDS.items():  # interleaved: load hits all alike
            m = _once(argv, env)
            if r >= 2:
                results[label].append(m)
    print(f"{args.runs} runs after 2 warm-ups, interleaved (seconds, mean ± sd)\n")
    print("| command | CPU | wall |")
    print("| --- | ---: | ---: |")
    for label, ms in results.items():
        cpu = [c for c, _ in ms]
        wall = [w for _, w in ms]
        print(f"| {label} | {statistics.mean(cpu):.3f} ± {statistics.stdev(cpu):.3f} "
              f"| {statistics.mean(wall):.3f} ± {statistics.stdev(wall):.3f} |")
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "snoozeql.cli.main",
                          "--help"], env=env, capture_output=True, text=True, check=True)
    rows = []
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            parts = [p.strip() for p in line[len("import time:"):].split("|")]
            if parts[1].isdigit():
                rows.append((int(parts[1]), parts[2]))
    print("\n`python -X importtime -m snoozeql.cli.main --help`, largest cumulative (us):\n")
    for us, name in sorted(rows, reverse=True)[:12]:
        print(f"    {us:>8}  {name}")


if __name__ == "__main__":
    main()
