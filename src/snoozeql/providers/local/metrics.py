"""Local metrics: connections from the engine itself, CPU from the server's processes.

Why it looks the way it does:

* Connections are what the engine says, asked with the instance's password, minus the
  collector's own connection: each engine's module (``engines/``) knows how to ask
  (PostgreSQL's ``pg_stat_activity``, MySQL's ``Threads_connected``, Redis'
  ``connected_clients``, MongoDB's ``serverStatus``).
* CPU is read from ``/proc``: user + system ticks of the server process *and all its
  children* (a PostgreSQL backend is a child process), as a share of the machine's
  capacity (all CPUs = 100 %, as CloudWatch reports an instance). A rate needs two
  readings: the collector keeps the last reading per process (pid + kernel start time,
  so a reused pid starts afresh), so each cycle gives the mean over the whole interval;
  the first reading of a process is taken over ``first_sample_seconds``.
* IO operations are not sampled locally: ``/proc/<pid>/io`` counts system calls, not
  device operations, and would make an idle server look busy. The analysis does not
  need IOPS (an hour is observed with connections or CPU).
* One sample per metric per cycle, at the cycle's minute: the store's minute masks
  make a repeated cycle in the same minute a no-op.
"""

from __future__ import annotations

import os
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from snoozeql.domain.metrics import CONNECTIONS, CPU, Sample
from snoozeql.providers.base import CollectResult
from snoozeql.providers.local import engines

__all__ = ["LocalMetricsCollector", "LocalTarget", "connections", "process_tree_ticks"]

PROC = Path("/proc")


@dataclass(frozen=True)
class LocalTarget:
    """A running local database: where to ask, with which password, and its pid."""

    key: Hashable
    name: str
    engine: str
    port: int
    password: str | None = field(default=None, repr=False)
    pid: int | None = None
    host: str = "127.0.0.1"
    user: str | None = None


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, utime + stime ticks, start time) of a process, or None if it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19])
    except (IndexError, ValueError):
        return None


def process_tree_ticks(pid: int) -> tuple[int, int] | None:
    """(CPU ticks of ``pid`` and all its descendants, ``pid``'s start time)."""
    root = _stat(pid)
    if root is None:
        return None
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        got = _stat(int(entry.name))
        if got is None:
            continue
        children.setdefault(got[0], []).append(int(entry.name))
        ticks[int(entry.name)] = got[1]
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += ticks.get(p, root[1] if p == pid else 0)
        todo.extend(children.get(p, ()))
    return total, root[2]


def connections(target: LocalTarget, timeout: float = 3.0) -> float:
    """Client connections the engine reports, not counting the one asking."""
    engine = engines.get(target.engine)
    user = target.user or engine.info.default_user
    return engine.connections(target.host, target.port, user, target.password or "", timeout)


class LocalMetricsCollector:
    """Measures running local databases; keeps CPU readings between cycles."""

    def __init__(self, first_sample_seconds: float = 0.5) -> None:
        self.first_sample_seconds = first_sample_seconds
        self._last: dict[tuple[int, int], tuple[int, float]] = {}
        self._tick = os.sysconf("SC_CLK_TCK")
        self._cpus = os.cpu_count() or 1

    def _cpu_percent(self, targets: Sequence[LocalTarget]) -> dict[Hashable, float]:
        readings: dict[Hashable, tuple[tuple[int, int], int, float]] = {}
        fresh = False
        for t in targets:
            if t.pid is None:
                continue
            got = process_tree_ticks(t.pid)
            if got is not None:
                key = (t.pid, got[1])
                readings[t.key] = (key, got[0], time.monotonic())
                fresh = fresh or key not in self._last
        if fresh and self.first_sample_seconds > 0:
            for key, ticks, at in list(readings.values()):
                if key not in self._last:
                    self._last[key] = (ticks, at)
            time.sleep(self.first_sample_seconds)
            for t in targets:
                if t.key in readings and t.pid is not None:
                    got = process_tree_ticks(t.pid)
                    if got is not None:
                        readings[t.key] = ((t.pid, got[1]), got[0], time.monotonic())
        out: dict[Hashable, float] = {}
        live = set()
        for k, (key, ticks, at) in readings.items():
            live.add(key)
            before = self._last.get(key)
            self._last[key] = (ticks, at)
            if before is None or at <= before[1]:
                continue
            seconds = at - before[1]
            share = (ticks - before[0]) / self._tick / seconds / self._cpus * 100.0
            out[k] = min(100.0, max(0.0, share))
        for key in list(self._last):
            if key not in live and all(t.pid != key[0] for t in targets):
                del self._last[key]
        return out

    def collect(self, targets: Sequence[LocalTarget], now: datetime) -> CollectResult:
        """One sample of connections (and CPU where the pid is known) per target."""
        at = now.replace(second=0, microsecond=0)
        result = CollectResult()
        for t in targets:
            try:
                result.add(t.key, Sample(CONNECTIONS, at, connections(t)))
            except Exception as exc:  # noqa: BLE001 - one database must not stop the others
                text = str(exc).replace(t.password, "***") if t.password else str(exc)
                result.errors.append(f"{t.name}: connections: {type(exc).__name__}: {text[:200]}")
        for key, value in self._cpu_percent(targets).items():
            result.add(key, Sample(CPU, at, value))
        return result
