"""The simulated fleet: its databases, their activity, and their lifecycle state.

* The fleet is a pure function of the account's config (``seed``, ``instances``,
  ``regions``): the same config always gives the same databases, names, engines,
  classes, tags and activity pattern (:func:`fleet`).
* Lifecycle state is what changes: a stop makes an instance ``stopping`` and, after
  ``transition_seconds`` (account config), ``stopped``; a start ``starting`` then
  ``running``. The state lives in memory and in ``<data_dir>/demo-simulation.json``
  (written atomically), so the ``serve`` process and a CLI command on the same demo
  store see the same fleet (:func:`simulation`).
* Activity follows each instance's pattern (office hours, a nightly job, idle, always
  busy) in the instance's time zone, with deterministic noise: :func:`history` for the
  seeded 14-day history, :func:`metric_values` for the live samples.

Nothing here opens a socket: endpoints are under the reserved ``.invalid`` domain.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from snoozeql.config import Settings
from snoozeql.domain.errors import ActionRefused
from snoozeql.domain.metrics import CONNECTIONS, CPU, READ_IOPS, WRITE_IOPS
from snoozeql.domain.types import (
    DiscoveredInstance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
    already_message,
)
from snoozeql.providers.demo.config import DEFAULT_REGIONS

__all__ = [
    "busy_level",
    "fleet",
    "history",
    "metric_values",
    "noise",
    "raw_status",
    "simulation",
]

STATE_FILE = "demo-simulation.json"

_ZONES = {
    "us-east-1": "America/New_York", "us-west-2": "America/Los_Angeles",
    "eu-west-1": "Europe/Dublin", "eu-central-1": "Europe/Berlin",
    "europe-west1": "Europe/Brussels", "us-central1": "America/Chicago",
    "asia-southeast1": "Asia/Singapore", "ap-southeast-2": "Australia/Sydney",
}


# --------------------------------------------------------------------------- the fleet

_AWS_TEAMS = ("payments", "checkout", "identity", "billing", "catalog", "search",
              "orders", "platform", "mobile", "support")
_GCP_TEAMS = ("analytics", "ml", "data", "marketing", "content", "recsys")
_APPS = ("api", "ledger", "users", "events", "sessions", "inventory", "reports", "auth",
         "feeds", "invoices", "profiles", "jobs")
_ENVS = (("dev", 34), ("staging", 20), ("qa", 10), ("prod", 26), ("sandbox", 10))
_OWNERS = ("alice", "bob", "chen", "dana", "eli", "fatima", "gus", "hana", "ivan", "jo")
# env -> (pattern, weight)
_PATTERNS: dict[str, tuple[tuple[str, int], ...]] = {
    "prod": (("always", 90), ("office", 10)),
    "dev": (("office", 55), ("idle", 25), ("nightly", 20)),
    "staging": (("office", 40), ("nightly", 35), ("idle", 25)),
    "qa": (("office", 70), ("idle", 30)),
    "sandbox": (("idle", 70), ("office", 30)),
}
_AWS_ENGINES = (("postgres", "16.3", 5432, 45), ("mysql", "8.0.36", 3306, 30),
                ("mariadb", "10.11.8", 3306, 10), ("aurora-postgresql", "15.5", 5432, 10),
                ("aurora-mysql", "8.0.mysql_aurora.3.05.2", 3306, 5))
_GCP_ENGINES = (("postgres", "15", 5432, 65), ("mysql", "8.0", 3306, 35))
_AWS_CLASSES = (("db.t3.micro", 10), ("db.t3.medium", 25), ("db.t4g.medium", 15),
                ("db.m6g.large", 20), ("db.m6g.xlarge", 10), ("db.r6g.large", 12),
                ("db.r6g.2xlarge", 8))
_GCP_TIERS = (("db-f1-micro", 10), ("db-g1-small", 20), ("db-custom-2-7680", 35),
              ("db-custom-4-15360", 25), ("db-custom-8-30720", 10))

def _pick(rng: random.Random, weighted: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    return rng.choices(weighted, weights=[w[-1] for w in weighted])[0]


def _config_key(config: dict[str, Any]) -> str:
    return json.dumps({k: config.get(k) for k in ("regions", "instances", "seed")},
                      sort_keys=True)


def fleet(kind: ProviderKind | str, config: dict[str, Any]) -> list[DiscoveredInstance]:
    """The account's simulated databases, as first generated (status before any action).

    A fresh list of fresh objects each call (callers may change them).
    """
    kind = ProviderKind(kind)
    return [replace(d, tags=dict(d.tags), extra=dict(d.extra))
            for d in _fleet(kind, _config_key(config))]


@lru_cache(maxsize=16)
def _fleet(kind: ProviderKind, key: str) -> tuple[DiscoveredInstance, ...]:
    cfg = json.loads(key)
    aws = kind is ProviderKind.DEMO_AWS
    rng = random.Random(f"{kind.value}:{cfg['seed']}")
    regions = list(cfg["regions"]) or list(DEFAULT_REGIONS[kind])
    teams = _AWS_TEAMS if aws else _GCP_TEAMS
    out: list[DiscoveredInstance] = []
    used: dict[str, int] = {}
    total = int(cfg["instances"])
    while len(out) < total:
        team, app = rng.choice(teams), rng.choice(_APPS)
        env = _pick(rng, _ENVS)[0]
        region = regions[0] if len(regions) == 1 else rng.choices(
            regions, weights=[3 if i == 0 else 2 for i in range(len(regions))])[0]
        base = f"{team}-{app}-{env}"
        used[base] = used.get(base, 0) + 1
        name = f"{base}-{used[base]:02d}"
        engine, version, port, _ = _pick(rng, _AWS_ENGINES if aws else _GCP_ENGINES)
        klass = _pick(rng, _AWS_CLASSES if aws else _GCP_TIERS)[0]
        pattern = _pick(rng, _PATTERNS[env])[0]
        tags = {"env": env, "team": team, "app": app, "owner": f"{rng.choice(_OWNERS)}"}
        if rng.random() < 0.7:
            tags["timezone"] = _ZONES.get(region, "UTC")
        if rng.random() < 0.5:
            tags["cost-center"] = f"cc-{rng.randint(100, 140)}"
        if env == "prod" and rng.random() < 0.3:
            tags["snoozeql-protect"] = "true"
        zone = ZoneInfo(tags.get("timezone", "UTC"))
        sim = {"pattern": pattern, "scale": round(rng.uniform(0.5, 1.5), 2),
               "begin": rng.choice((7, 8, 8, 9)), "end": rng.choice((17, 18, 18, 19)),
               "job": rng.choice((0, 1, 2, 3)), "zone": zone.key}
        multi_az = env == "prod" and rng.random() < 0.5
        status = InstanceStatus.STOPPED if rng.random() < 0.04 and env != "prod" else (
            InstanceStatus.RUNNING)
        host = f"{name}.{region}.{'rds' if aws else 'sql'}.demo.invalid"
        common: dict[str, Any] = dict(
            engine=engine, engine_version=version, region=region, tags=tags,
            endpoint_port=port,
        )
        if aws and engine.startswith("aurora"):
            if len(out) + 3 > total:
                continue
            cluster_id = f"arn:aws:rds:{region}:000000000000:cluster:{name}"
            members = [f"{name}-instance-{n}" for n in (1, 2)]
            out.append(DiscoveredInstance(
                provider=kind, provider_id=cluster_id, name=name,
                kind=InstanceKind.CLUSTER, instance_class=klass, status=status,
                raw_status=raw_status(kind, status), endpoint_host=f"{name}.cluster.{host}",
                node_count=2, extra={"demo": sim, "cluster_members": members},
                **common,
            ))
            for m in members:
                out.append(DiscoveredInstance(
                    provider=kind, provider_id=f"arn:aws:rds:{region}:000000000000:db:{m}",
                    name=m, kind=InstanceKind.INSTANCE, instance_class=klass,
                    status=status, raw_status=raw_status(kind, status),
                    endpoint_host=f"{m}.{host}", cluster_provider_id=cluster_id,
                    extra={"demo": sim, "cluster_identifier": name}, **common,
                ))
            continue
        extra: dict[str, Any] = {"demo": sim}
        if aws:
            provider_id = f"arn:aws:rds:{region}:000000000000:db:{name}"
        else:
            project = f"acme-{env if env in ('prod', 'staging') else 'dev'}"
            provider_id = f"{project}:{name}"
            extra["project"] = project
        out.append(DiscoveredInstance(
            provider=kind, provider_id=provider_id, name=name, kind=InstanceKind.INSTANCE,
            instance_class=klass, status=status, raw_status=raw_status(kind, status),
            endpoint_host=host, multi_az=multi_az, extra=extra, **common,
        ))
        # Now and then a read replica of a production database (cannot be stopped).
        if env == "prod" and engine == "mysql" and rng.random() < 0.3 and len(out) < total:
            rname = f"{name}-replica"
            rid = (f"arn:aws:rds:{region}:000000000000:db:{rname}" if aws
                   else f"{extra['project']}:{rname}")
            out.append(DiscoveredInstance(
                provider=kind, provider_id=rid, name=rname, kind=InstanceKind.INSTANCE,
                instance_class=klass, status=InstanceStatus.RUNNING,
                raw_status=raw_status(kind, InstanceStatus.RUNNING),
                endpoint_host=f"{rname}.{region}.demo.invalid",
                extra={"demo": sim, "read_replica_source": name}, **common,
            ))
    return tuple(out)


_AWS_RAW = {InstanceStatus.RUNNING: "available", InstanceStatus.STOPPED: "stopped",
            InstanceStatus.STOPPING: "stopping", InstanceStatus.STARTING: "starting"}
_GCP_RAW = {InstanceStatus.RUNNING: "RUNNABLE/ALWAYS", InstanceStatus.STOPPED: "RUNNABLE/NEVER",
            InstanceStatus.STOPPING: "STOPPING/NEVER", InstanceStatus.STARTING: "STARTING/ALWAYS"}


def raw_status(kind: ProviderKind, status: InstanceStatus) -> str:
    table = _AWS_RAW if kind is ProviderKind.DEMO_AWS else _GCP_RAW
    return table.get(status, status.value)


# --------------------------------------------------------------------------- activity


_MASK = (1 << 64) - 1


@lru_cache(maxsize=200_000)
def _seed_of(provider_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(provider_id.encode(), digest_size=8).digest(), "big")


def noise(provider_id: str, instant: datetime) -> float:
    """A deterministic number in [0, 1) for an instance and an instant (splitmix64)."""
    x = (_seed_of(provider_id) ^ int(instant.timestamp())) + 0x9E3779B97F4A7C15 & _MASK
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK
    return (x ^ (x >> 31)) / 2**64


def busy_level(sim: dict[str, Any], local: datetime) -> float:
    """How busy the instance is at a local time: 0 is idle (no connections), up to 1."""
    pattern = sim.get("pattern", "always")
    h = local.hour
    if pattern == "idle":
        return 0.0
    if pattern == "office":
        if local.weekday() >= 5 or not int(sim.get("begin", 8)) <= h < int(sim.get("end", 18)):
            return 0.0
        return 0.55 + 0.35 * math.sin(math.pi * (h - 7) / 12)
    if pattern == "nightly":
        start = 1 + int(sim.get("job", 0))
        return 0.8 if start <= h < start + 2 else 0.0
    # always: a diurnal curve that never reaches idle
    return 0.35 + 0.3 * (1 + math.sin(math.pi * (h - 9) / 12)) / 2


def metric_values(sim: dict[str, Any], level: float, jitter: float) -> dict[str, float]:
    scale = float(sim.get("scale", 1.0))
    if level <= 0:
        return {CPU: 1.0 + 3.0 * jitter, CONNECTIONS: 0.0, READ_IOPS: 4.0 * jitter,
                WRITE_IOPS: 2.0 + 4.0 * jitter}
    lv = level * (0.85 + 0.3 * jitter)
    return {
        CPU: min(98.0, 12.0 + 60.0 * lv * scale),
        CONNECTIONS: float(round(2 + 45 * lv * scale)),
        READ_IOPS: 60.0 + 900.0 * lv * scale,
        WRITE_IOPS: 25.0 + 380.0 * lv * scale,
    }


def history(provider_id: str, sim: dict[str, Any], start: datetime, running: Sequence[bool]
            ) -> Iterator[tuple[datetime, str, float, float, float]]:
    """(hour, metric, avg, min, max) of each hour from ``start`` in which it ran.

    ``running[h]`` says whether the instance ran in hour ``h``; stopped hours have no
    data, as with a real collector.
    """
    zone = ZoneInfo(sim.get("zone", "UTC"))
    for h, ran in enumerate(running):
        if not ran:
            continue
        hour = start + timedelta(hours=h)
        level = busy_level(sim, hour.astimezone(zone))
        j = noise(provider_id, hour)
        low, high = 0.6 + 0.2 * j, 1.3 + 0.4 * j
        for metric, avg in metric_values(sim, level, j).items():
            if metric == CONNECTIONS:
                if level <= 0:
                    yield hour, metric, 0.0, 0.0, 0.0
                else:
                    yield hour, metric, avg, float(math.floor(avg * low)), float(
                        math.ceil(avg * high))
            elif metric == CPU:
                yield hour, metric, avg, avg * low, min(avg * high, 100.0)
            else:
                yield hour, metric, avg, avg * low, avg * high


# --------------------------------------------------------------------------- state


class _Simulation:
    """Lifecycle state shared by the providers and the collector of one data dir."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self._mtime: float | None = None
        self._state: dict[str, dict[str, Any]] = {}

    def _load(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._state, self._mtime = {}, None
            return
        if mtime != self._mtime:
            try:
                self._state = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self._state = {}
            self._mtime = mtime

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(self._state))
        os.replace(tmp, self.path)
        self._mtime = self.path.stat().st_mtime

    def statuses(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            self._load()
            return dict(self._state)

    def _status(self, provider_id: str, initial: InstanceStatus, now: float
                ) -> InstanceStatus:
        entry = self._state.get(provider_id)
        if entry is None:
            return initial
        if now >= float(entry.get("until", 0)):
            return InstanceStatus(entry["final"])
        return InstanceStatus(entry["during"])

    def transition(self, ids: Sequence[str], initial: InstanceStatus, *, allowed: set,
                   during: InstanceStatus, final: InstanceStatus, seconds: float,
                   name: str, verb: str) -> InstanceStatus | None:
        """Begin the transition; returns the current state instead when a start or
        stop is already done or under way (nothing changes then)."""
        now = time.time()
        with self.lock:
            self._load()
            current = self._status(ids[0], initial, now)
            if verb in ("start", "stop") and already_message(verb, current) is not None:
                return current
            if current not in allowed:
                raise ActionRefused(
                    f"demo: {name} is {current.value}; it can only {verb} when "
                    f"{' or '.join(sorted(s.value for s in allowed))}"
                )
            for pid in ids:
                self._state[pid] = {"during": during.value, "final": final.value,
                                    "until": now + seconds}
            self._save()
            return None

    def current(self, provider_id: str, initial: InstanceStatus) -> InstanceStatus:
        with self.lock:
            self._load()
            return self._status(provider_id, initial, time.time())

    def preset(self, statuses: dict[str, InstanceStatus]) -> None:
        with self.lock:
            self._load()
            for pid, st in statuses.items():
                self._state[pid] = {"during": st.value, "final": st.value, "until": 0}
            self._save()


_SIMULATIONS: dict[Path, _Simulation] = {}
_SIM_LOCK = threading.Lock()


def simulation(settings: Settings) -> _Simulation:
    path = (settings.data_dir / STATE_FILE).resolve()
    with _SIM_LOCK:
        if path not in _SIMULATIONS:
            _SIMULATIONS[path] = _Simulation(path)
        return _SIMULATIONS[path]


