"""The simulated clouds of ``snoozeql demo``: a fleet that exists only in this module.

Two provider kinds, ``demo-aws`` and ``demo-gcp``, plug in like the real ones (the
registry builds :class:`DemoAwsProvider` / :class:`DemoGcpProvider`; the metrics
service asks :class:`DemoMetricsCollector`; the price resolver asks
:func:`price_fetcher`), so discovery, lifecycle, metrics collection, the reconciler,
the API and the dashboard run their ordinary code paths against the simulation.

* The fleet is a pure function of the account's config (``seed``, ``instances``,
  ``regions``): the same config always gives the same databases, names, engines,
  classes, tags and activity pattern (:func:`fleet`).
* Lifecycle state is what changes: a stop makes an instance ``stopping`` and, after
  ``transition_seconds`` (account config), ``stopped``; a start ``starting`` then
  ``running``. The state lives in memory and in ``<data_dir>/demo-simulation.json``
  (written atomically), so the ``serve`` process and a CLI command on the same demo
  store see the same fleet. The next sync (``sync-accounts`` job) brings the new status
  into the inventory, exactly as for RDS.
* The simulation mimics the clouds' refusals: an Aurora member cannot be stopped on its
  own (stop the cluster), a read replica cannot be stopped, a stopped database cannot
  be stopped again.
* Activity follows each instance's pattern (office hours, a nightly job, idle, always
  busy) in the instance's time zone, with deterministic noise:
  :func:`history` for the seeded 14-day history, :class:`DemoMetricsCollector`
  for the live samples of running instances.
* Prices are simulated too (a small table near list prices, labelled as such); they
  exist so that costs and savings are populated, not to quote anyone's bill.

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
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from snoozeql.config import Settings
from snoozeql.domain import validation as v
from snoozeql.domain.errors import ActionRefused, ValidationError
from snoozeql.domain.metrics import CONNECTIONS, CPU, READ_IOPS, WRITE_IOPS, Sample
from snoozeql.domain.types import (
    Account,
    ActionOutcome,
    DiscoveredInstance,
    Instance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
    already_message,
)
from snoozeql.providers.base import CollectResult, MetricTarget

__all__ = [
    "DEMO_KINDS",
    "DemoAwsProvider",
    "DemoGcpProvider",
    "DemoMetricsCollector",
    "fleet",
    "history",
    "normalize_config",
    "price_fetcher",
    "simulated_usd",
]

DEMO_KINDS = (ProviderKind.DEMO_AWS, ProviderKind.DEMO_GCP)
STATE_FILE = "demo-simulation.json"
MAX_INSTANCES = 200_000
DEFAULT_TRANSITION_SECONDS = 8.0
SAMPLE_EVERY_MINUTES = 5

_DEFAULT_REGIONS = {
    ProviderKind.DEMO_AWS: ["us-east-1", "eu-west-1"],
    ProviderKind.DEMO_GCP: ["europe-west1", "us-central1"],
}
_ZONES = {
    "us-east-1": "America/New_York", "us-west-2": "America/Los_Angeles",
    "eu-west-1": "Europe/Dublin", "eu-central-1": "Europe/Berlin",
    "europe-west1": "Europe/Brussels", "us-central1": "America/Chicago",
    "asia-southeast1": "Asia/Singapore", "ap-southeast-2": "Australia/Sydney",
}


# --------------------------------------------------------------------------- config


def normalize_config(kind: ProviderKind, raw: dict[str, Any]) -> dict[str, Any]:
    """A demo account's settings: regions, instances, seed, transition_seconds."""
    allowed = {"regions", "instances", "seed", "transition_seconds", "simulated"}
    unknown = set(raw) - allowed
    if unknown:
        raise ValidationError(
            f"unknown setting(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(allowed - {'simulated'}))}"
        )
    regions = v.split_list(raw.get("regions")) or list(_DEFAULT_REGIONS[kind])
    for r in regions:
        if kind is ProviderKind.DEMO_AWS:
            v.aws_region(r)
        elif not r.replace("-", "").isalnum() or not r[:1].isalpha():
            raise ValidationError(f"{r!r} is not a GCP region name like europe-west1")
    try:
        count = int(raw.get("instances", 100))
        seed = int(raw.get("seed", 1))
        transition = float(raw.get("transition_seconds", DEFAULT_TRANSITION_SECONDS))
    except (TypeError, ValueError):
        raise ValidationError("instances and seed must be integers, transition_seconds "
                              "a number") from None
    if not 0 <= count <= MAX_INSTANCES:
        raise ValidationError(f"instances must be between 0 and {MAX_INSTANCES}")
    if not 0 <= transition <= 3600:
        raise ValidationError("transition_seconds must be between 0 and 3600")
    return {"simulated": True, "regions": regions, "instances": count, "seed": seed,
            "transition_seconds": transition}


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

# Simulated on-demand USD per hour (single zone), near public list prices in 2024.
_USD: dict[str, float] = {
    "db.t3.micro": 0.018, "db.t3.medium": 0.072, "db.t4g.medium": 0.065,
    "db.m6g.large": 0.152, "db.m6g.xlarge": 0.304, "db.r6g.large": 0.225,
    "db.r6g.2xlarge": 0.90,
    "db-f1-micro": 0.015, "db-g1-small": 0.050, "db-custom-2-7680": 0.137,
    "db-custom-4-15360": 0.274, "db-custom-8-30720": 0.548,
}
_REGION_FACTOR = {"eu-west-1": 1.1, "europe-west1": 1.1}


def simulated_usd(instance_class: str | None, engine: str | None, region: str | None,
                  multi_az: bool) -> Decimal | None:
    """The simulation's hourly price (None for a class it does not know)."""
    base = _USD.get(instance_class or "")
    if base is None:
        return None
    factor = _REGION_FACTOR.get(region or "", 1.0) * (2 if multi_az else 1)
    if (engine or "").startswith("aurora"):
        factor *= 1.15
    return Decimal(str(round(base * factor, 4)))


def price_fetcher(account: Account, key: tuple[str, str, str, str, str]) -> Decimal | None:
    """The price resolver's hook (services/pricing.py) for the demo kinds."""
    _, instance_class, engine, region, deployment = key
    return simulated_usd(instance_class, engine, region, deployment == "multi-az")


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
    regions = list(cfg["regions"]) or list(_DEFAULT_REGIONS[kind])
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
                raw_status=_raw(kind, status), endpoint_host=f"{name}.cluster.{host}",
                node_count=2, extra={"demo": sim, "cluster_members": members},
                **common,
            ))
            for m in members:
                out.append(DiscoveredInstance(
                    provider=kind, provider_id=f"arn:aws:rds:{region}:000000000000:db:{m}",
                    name=m, kind=InstanceKind.INSTANCE, instance_class=klass,
                    status=status, raw_status=_raw(kind, status),
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
            instance_class=klass, status=status, raw_status=_raw(kind, status),
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
                raw_status=_raw(kind, InstanceStatus.RUNNING),
                endpoint_host=f"{rname}.{region}.demo.invalid",
                extra={"demo": sim, "read_replica_source": name}, **common,
            ))
    return tuple(out)


_AWS_RAW = {InstanceStatus.RUNNING: "available", InstanceStatus.STOPPED: "stopped",
            InstanceStatus.STOPPING: "stopping", InstanceStatus.STARTING: "starting"}
_GCP_RAW = {InstanceStatus.RUNNING: "RUNNABLE/ALWAYS", InstanceStatus.STOPPED: "RUNNABLE/NEVER",
            InstanceStatus.STOPPING: "STOPPING/NEVER", InstanceStatus.STARTING: "STARTING/ALWAYS"}


def _raw(kind: ProviderKind, status: InstanceStatus) -> str:
    table = _AWS_RAW if kind is ProviderKind.DEMO_AWS else _GCP_RAW
    return table.get(status, status.value)


# --------------------------------------------------------------------------- activity


_MASK = (1 << 64) - 1


@lru_cache(maxsize=200_000)
def _seed_of(provider_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(provider_id.encode(), digest_size=8).digest(), "big")


def _noise(provider_id: str, instant: datetime) -> float:
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


def _values(sim: dict[str, Any], level: float, jitter: float) -> dict[str, float]:
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
        j = _noise(provider_id, hour)
        low, high = 0.6 + 0.2 * j, 1.3 + 0.4 * j
        for metric, avg in _values(sim, level, j).items():
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


# --------------------------------------------------------------------------- providers


class _DemoProvider:
    """Discovery and lifecycle against the simulation (one class per simulated cloud)."""

    kind: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sim = simulation(settings)

    @property
    def _kind(self) -> ProviderKind:
        return ProviderKind(self.kind)

    def discover(self, account: Account) -> list[DiscoveredInstance]:
        now = time.time()
        state = self.sim.statuses()
        out = fleet(self._kind, account.config)
        for d in out:
            entry = state.get(d.provider_id)
            if entry is not None:
                d.status = InstanceStatus(
                    entry["final"] if now >= float(entry.get("until", 0)) else entry["during"]
                )
                d.raw_status = _raw(self._kind, d.status)
        return out

    def preset(self, statuses: dict[str, InstanceStatus]) -> None:
        """Set statuses without a transition (used when the demo store is seeded)."""
        self.sim.preset(statuses)

    def _seconds(self, account: Account | None) -> float:
        cfg = account.config if account else {}
        return float(cfg.get("transition_seconds", DEFAULT_TRANSITION_SECONDS))

    def _ids(self, instance: Instance) -> list[str]:
        members = instance.extra.get("cluster_members") or []
        if instance.kind is InstanceKind.CLUSTER and members:
            prefix = instance.provider_id.rsplit(":cluster:", 1)[0]
            return [instance.provider_id, *(f"{prefix}:db:{m}" for m in members)]
        return [instance.provider_id]

    def _refuse_part(self, instance: Instance, verb: str) -> None:
        if instance.kind is InstanceKind.INSTANCE and instance.cluster_provider_id:
            cluster = instance.extra.get("cluster_identifier") or instance.cluster_provider_id
            raise ActionRefused(
                f"demo: {instance.name} is a member of Aurora cluster {cluster}; "
                f"{verb} the cluster instead"
            )
        source = instance.extra.get("read_replica_source")
        if source and verb in ("stop", "start"):
            why = "a read replica cannot be stopped" if verb == "stop" else (
                "it runs as long as its source does")
            raise ActionRefused(f"demo: {instance.name} is a read replica of {source}; {why}")

    def _move(self, account: Account | None, instance: Instance, verb: str,
              frm: InstanceStatus, during: InstanceStatus, final: InstanceStatus,
              ending: str) -> ActionOutcome:
        """Start a simulated stop or start (``verb``) from ``frm`` through ``during`` to
        ``final``; an instance already there (or on its way) is answered as such."""
        self._refuse_part(instance, verb)
        seconds = self._seconds(account)
        already = self.sim.transition(
            self._ids(instance), instance.status, allowed={frm}, during=during, final=final,
            seconds=seconds, name=instance.name, verb=verb,
        )
        if already is not None:
            return ActionOutcome(already, _raw(self._kind, already),
                                 already_message(verb, already), already=True)
        return ActionOutcome(during, _raw(self._kind, during),
                             f"{during.value} (simulated: {ending} in about {seconds:g} s)")

    def stop(self, account: Account | None, instance: Instance) -> ActionOutcome:
        return self._move(account, instance, "stop", InstanceStatus.RUNNING,
                          InstanceStatus.STOPPING, InstanceStatus.STOPPED, "stopped")

    def start(self, account: Account | None, instance: Instance) -> ActionOutcome:
        return self._move(account, instance, "start", InstanceStatus.STOPPED,
                          InstanceStatus.STARTING, InstanceStatus.RUNNING, "running")

    def status(self, account: Account | None, instance: Instance) -> ActionOutcome:
        """The simulated state now (what a takeover reads to resolve an intent)."""
        current = self.sim.current(instance.provider_id, instance.status)
        return ActionOutcome(current, _raw(self._kind, current),
                             f"demo: {instance.name} is {current.value}")

    def restart(self, account: Account | None, instance: Instance) -> ActionOutcome:
        self._refuse_part(instance, "restart")
        seconds = self._seconds(account)
        self.sim.transition(
            self._ids(instance), instance.status, allowed={InstanceStatus.RUNNING},
            during=InstanceStatus.STARTING, final=InstanceStatus.RUNNING, seconds=seconds,
            name=instance.name, verb="restart",
        )
        return ActionOutcome(InstanceStatus.STARTING, "rebooting",
                             f"rebooting (simulated: running in about {seconds:g} s)")


class DemoAwsProvider(_DemoProvider):
    """The simulated AWS account (RDS instances, Aurora clusters)."""

    kind = ProviderKind.DEMO_AWS.value


class DemoGcpProvider(_DemoProvider):
    """The simulated GCP account (Cloud SQL instances)."""

    kind = ProviderKind.DEMO_GCP.value


# --------------------------------------------------------------------------- metrics


class DemoMetricsCollector:
    """Live samples of running simulated instances, every five minutes of the window."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self, account: Account, targets: Sequence[MetricTarget], start: datetime,
                end: datetime) -> CollectResult:
        result = CollectResult(api_calls=0)
        sims = {d.provider_id: d.extra.get("demo", {})
                for d in fleet(account.provider, account.config)}
        first = start.replace(second=0, microsecond=0)
        first += timedelta(minutes=-first.minute % SAMPLE_EVERY_MINUTES)
        for t in targets:
            sim = sims.get(t.provider_id)
            if sim is None:
                continue
            key: Hashable = t.key
            ts = first
            while ts < end:
                local = ts.astimezone(ZoneInfo(sim.get("zone", "UTC")))
                vals = _values(sim, busy_level(sim, local), _noise(t.provider_id, ts))
                for metric, value in vals.items():
                    result.add(key, Sample(metric, ts, value))
                ts += timedelta(minutes=SAMPLE_EVERY_MINUTES)
        return result
