"""Seeding the demo store: a simulated fleet with two weeks of history.

``snoozeql demo`` builds its own store and calls :meth:`DemoService.seed`, which goes
through the ordinary services wherever they exist, so what the demo shows is what
SnoozeQL does with a real fleet:

1. two accounts of the simulated clouds (``demo-aws``, ``demo-gcp``; see
   :mod:`snoozeql.providers.demo`) are added and synced by the discovery service (the
   simulated provider reports the databases, the price resolver prices them);
2. a few schedules are created and assigned by selector and tag; each governed
   instance is put in the state its schedule wants now (so the reconciler has nothing
   to catch up on when ``serve`` starts), and a keep-awake override is set on one;
3. the last 14 days are written in batches: hourly metrics of every instance while it
   was running (its activity pattern: office hours, a nightly job, idle, always busy),
   the reconciler's stops and starts at each schedule transition with the matching
   stop intervals (realized savings), and some hand-made actions (stops, a restart,
   refusals);
4. an admin and a viewer API key are created to sign in with.

Refuses to run unless the context is a demo one (``settings.demo``): the demo never
writes into a user's store.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.metrics import HourlyAggregate, floor_hour
from snoozeql.domain.schedules import DesiredState, preview
from snoozeql.domain.types import (
    ActionResult,
    Instance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.providers.demo import simulation as sim
from snoozeql.providers.demo.config import MAX_INSTANCES
from snoozeql.services.accounts import AccountService
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.schedules import Governing, OverrideService, ScheduleService
from snoozeql.store import actions as action_store
from snoozeql.store import instances as instance_store
from snoozeql.store import metrics as metric_store
from snoozeql.store import schedules as schedule_store
from snoozeql.store.instances import InstanceFilter
from snoozeql.store.schedules import StopInterval

__all__ = ["DEMO_SCHEDULES", "DemoSeed", "DemoService"]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

HISTORY_DAYS = 14
ACTOR = "demo"
RECONCILER = "reconciler"
_EU = ["eu-west-1", "europe-west1"]
_US = ["us-east-1", "us-central1"]

#: The schedules of the demo and what they are assigned to (selectors and tags).
DEMO_SCHEDULES: list[dict[str, Any]] = [
    {
        "definition": {
            "name": "office-hours-eu", "timezone": "Europe/Berlin",
            "description": "dev and qa databases in Europe run on weekdays 07:00-20:00",
            "periods": [{"begintime": "07:00", "endtime": "20:00", "weekdays": "mon-fri"}],
        },
        "selectors": [{"all": [{"tag": {"key": "env", "value": "dev|qa"}},
                               {"region": _EU}]}],
    },
    {
        "definition": {
            "name": "office-hours-us", "timezone": "America/New_York",
            "description": "dev and qa databases in the US run on weekdays 07:00-20:00",
            "periods": [{"begintime": "07:00", "endtime": "20:00", "weekdays": "mon-fri"}],
        },
        "selectors": [{"all": [{"tag": {"key": "env", "value": "dev|qa"}},
                               {"region": _US}]}],
    },
    {
        "definition": {
            "name": "staging-nights-weekends", "timezone": "UTC",
            "description": "AWS staging sleeps at night and at weekends",
            "periods": [{"begintime": "06:00", "endtime": "22:00", "weekdays": "mon-fri"}],
        },
        "selectors": [{"all": [{"tag": {"key": "env", "value": "staging"}},
                               {"provider": "demo-aws"}]}],
    },
    {
        "definition": {
            "name": "ml-weekends-trial", "timezone": "Europe/Brussels", "dry_run": True,
            "description": "trial: would stop the ML team's databases at weekends",
            "periods": [{"begintime": "00:00", "endtime": "24:00", "weekdays": "mon-fri"}],
        },
        "tags": ["team=ml"],
    },
]

_USERS = ("alice", "bob", "chen", "dana", "ops-bot")


@dataclass
class DemoSeed:
    """What seeding wrote, for the command's summary."""

    accounts: list[str] = field(default_factory=list)
    instances: int = 0
    metric_hours: int = 0
    schedules: int = 0
    governed: int = 0
    actions: int = 0
    stop_intervals: int = 0
    admin_key: str = field(default="", repr=False)
    viewer_key: str = field(default="", repr=False)
    seconds: float = 0.0


@dataclass
class _Timeline:
    """When one instance ran over the history: stretches of (start, end, running)."""

    stretches: list[tuple[datetime, datetime, bool]]

    def running_at(self, t: datetime) -> bool:
        for start, end, running in self.stretches:
            if start <= t < end:
                return running
        return self.stretches[-1][2] if self.stretches else True

    def running_hours(self, start: datetime, hours: int) -> list[bool]:
        """Whether it ran at the middle of each hour from ``start`` (one pass)."""
        out: list[bool] = []
        k, n = 0, len(self.stretches)
        for h in range(hours):
            t = start + timedelta(hours=h, minutes=30)
            while k < n and self.stretches[k][1] <= t:
                k += 1
            if k < n and self.stretches[k][0] <= t:
                out.append(self.stretches[k][2])
            else:
                out.append(self.running_at(t))
        return out


class DemoService:
    def __init__(self, ctx: Context) -> None:
        if not ctx.settings.demo:
            raise ValidationError(
                "the demo seeds only its own store (settings.demo); run `snoozeql demo`"
            )
        self.ctx = ctx

    def seed(self, instances: int = 500, *, seed: int = 1,
             progress: Progress | None = None) -> DemoSeed:
        if not 1 <= instances <= MAX_INSTANCES:
            raise ValidationError(f"--instances must be between 1 and {MAX_INSTANCES}")
        say = progress or (lambda _m: None)
        began = time.monotonic()
        out = DemoSeed()
        now = self.ctx.now()
        history_start = floor_hour(now) - timedelta(days=HISTORY_DAYS)

        # 1. accounts, synced by the ordinary discovery service
        n_aws = max(1, round(instances * 0.6)) if instances > 1 else 1
        n_gcp = instances - n_aws
        accounts = AccountService(self.ctx)
        made = [accounts.add(ProviderKind.DEMO_AWS.value, "demo-aws",
                             {"regions": ["us-east-1", "eu-west-1"], "instances": n_aws,
                              "seed": seed}, actor=ACTOR)]
        if n_gcp:
            made.append(accounts.add(ProviderKind.DEMO_GCP.value, "demo-gcp",
                                     {"regions": ["europe-west1", "us-central1"],
                                      "instances": n_gcp, "seed": seed}, actor=ACTOR))
        out.accounts = [a.name for a in made]
        discovery = DiscoveryService(self.ctx)
        for a in made:
            say(f"discovering the simulated databases of account {a.name}")
            report = discovery.sync(a.id)
            if report.error:
                raise RuntimeError(f"demo sync of {a.name} failed: {report.error}")

        # 2. schedules and the state they want now
        say("creating schedules and assignments")
        schedules = ScheduleService(self.ctx)
        for spec in DEMO_SCHEDULES:
            schedules.create_and_assign(spec["definition"], selectors=spec.get("selectors", ()),
                                        tags=spec.get("tags", ()), actor=ACTOR)
        out.schedules = len(DEMO_SCHEDULES)
        stored = self._instances()
        governing = schedules.governing(stored)
        by_pid = {i.provider_id: i for i in stored}
        timelines, manual_stops = self._timelines(stored, governing, history_start, now)
        wanted: dict[ProviderKind, dict[str, InstanceStatus]] = {}
        for inst in stored:
            tl = timelines.get(inst.id)
            if tl is None:
                continue
            status = InstanceStatus.RUNNING if tl.running_at(now) else InstanceStatus.STOPPED
            wanted.setdefault(inst.provider, {})[inst.provider_id] = status
        for kind, statuses in wanted.items():
            self.ctx.providers.get(kind).preset(statuses)  # type: ignore[attr-defined]
        for a in made:
            discovery.sync(a.id)  # the inventory learns the statuses from the "cloud"
        stored = self._instances()
        out.instances = len(stored)
        out.governed = sum(1 for i in stored if i.id in governing)

        # 3a. metrics history
        hours = HISTORY_DAYS * 24
        say(f"writing {HISTORY_DAYS} days of hourly metrics for {len(stored)} databases")
        t0 = time.monotonic()
        with self.ctx.engine.begin() as conn:
            out.metric_hours = metric_store.load_hours(
                conn, self._metric_rows(stored, timelines, by_pid, history_start, hours, say)
            )
        log.info("demo metrics: %d rows in %.1f s", out.metric_hours, time.monotonic() - t0)

        # 3b. the reconciler's past actions, stop intervals, hand-made actions
        say("writing the action log and savings of the last two weeks")
        actions, intervals = self._history(stored, governing, timelines, manual_stops)
        with self.ctx.engine.begin() as conn:
            out.actions = len(action_store.append_many(conn, actions))
            out.stop_intervals = schedule_store.insert_intervals(conn, intervals)
        self._override(stored, governing, now)

        # 4. keys to sign in with
        _, out.admin_key = ApiKeyService(self.ctx).create("demo-admin", "admin", actor=ACTOR)
        _, out.viewer_key = ApiKeyService(self.ctx).create("demo-viewer", "viewer", actor=ACTOR)
        out.seconds = time.monotonic() - began
        return out

    # ------------------------------------------------------------------ pieces

    def _instances(self) -> list[Instance]:
        with self.ctx.engine.connect() as conn:
            return list(instance_store.iter_all(conn, InstanceFilter(missing=False)))

    def _timelines(
        self, stored: list[Instance], governing: dict[UUID, Governing], start: datetime,
        now: datetime,
    ) -> tuple[dict[UUID, _Timeline], dict[UUID, datetime]]:
        """Per instance, when it ran; and the hand-made stops (instance -> when)."""
        out: dict[UUID, _Timeline] = {}
        manual: dict[UUID, datetime] = {}
        segments: dict[UUID, list[tuple[datetime, datetime, bool]]] = {}
        clusters = {i.provider_id: i for i in stored if i.kind is InstanceKind.CLUSTER}
        for inst in stored:
            if inst.kind is InstanceKind.INSTANCE and inst.cluster_provider_id in clusters:
                continue  # members follow their cluster (below)
            gov = governing.get(inst.id)
            if gov is not None and not gov.schedule.dry_run and not _cannot_stop(inst):
                sid = gov.schedule_id
                if sid not in segments:
                    segments[sid] = [
                        (s.start.astimezone(UTC), s.end.astimezone(UTC),
                         s.state is not DesiredState.STOPPED)
                        for s in preview(gov.schedule, start, now + timedelta(days=1))
                    ]
                out[inst.id] = _Timeline(segments[sid])
            elif inst.status is InstanceStatus.STOPPED:
                rng = random.Random(inst.provider_id)
                stopped = now - timedelta(hours=rng.randint(20, 24 * (HISTORY_DAYS - 1)),
                                          minutes=rng.randint(0, 59))
                manual[inst.id] = stopped
                out[inst.id] = _Timeline([(start, stopped, True),
                                          (stopped, now + timedelta(days=1), False)])
            else:
                out[inst.id] = _Timeline([(start, now + timedelta(days=1), True)])
        for inst in stored:
            cluster = clusters.get(inst.cluster_provider_id or "")
            if inst.kind is InstanceKind.INSTANCE and cluster is not None:
                out[inst.id] = out[cluster.id]
        return out, manual

    def _metric_rows(
        self, stored: list[Instance], timelines: dict[UUID, _Timeline],
        by_pid: dict[str, Instance], start: datetime, hours: int, say: Progress,
    ) -> Iterator[tuple[UUID, HourlyAggregate]]:
        step = max(1, len(stored) // 5)
        for n, inst in enumerate(stored, 1):
            spec = inst.extra.get("demo") or {}
            tl = timelines.get(inst.id)
            running = tl.running_hours(start, hours) if tl is not None else [True] * hours
            iid = inst.id
            for hour, metric, avg, lo, hi in sim.history(inst.provider_id, spec, start, running):
                yield iid, HourlyAggregate(metric, hour, avg, lo, hi, 60)
            if n % step == 0 or n == len(stored):
                say(f"  metrics: {n}/{len(stored)} databases")

    def _history(
        self, stored: list[Instance], governing: dict[UUID, Governing],
        timelines: dict[UUID, _Timeline], manual: dict[UUID, datetime],
    ) -> tuple[list[dict[str, Any]], list[StopInterval]]:
        actions: list[dict[str, Any]] = []
        intervals: list[StopInterval] = []
        clusters = {i.provider_id for i in stored if i.kind is InstanceKind.CLUSTER}
        for inst in stored:
            if inst.kind is InstanceKind.INSTANCE and inst.cluster_provider_id in clusters:
                continue
            gov = governing.get(inst.id)
            rng = random.Random(f"history:{inst.provider_id}")
            if gov is not None:
                actions.extend(self._schedule_actions(inst, gov, rng, intervals))
            if inst.id in manual:
                at = manual[inst.id]
                actions.append(_action(inst, "stop", at, rng.choice(_USERS), "manual",
                                       ActionResult.OK, details={"status": "stopping"}))
        actions.extend(self._refusals(stored))
        return actions, intervals

    def _schedule_actions(
        self, inst: Instance, gov: Governing, rng: random.Random,
        intervals: list[StopInterval],
    ) -> list[dict[str, Any]]:
        now = self.ctx.now()
        out: list[dict[str, Any]] = []
        start = floor_hour(now) - timedelta(days=HISTORY_DAYS)
        segs = preview(gov.schedule, start, now)
        name = gov.schedule.name
        open_stop: datetime | None = None
        for prev, seg in zip(segs, segs[1:], strict=False):
            if prev.state is seg.state or DesiredState.ANY in (prev.state, seg.state):
                continue
            at = seg.start.astimezone(UTC) + timedelta(seconds=rng.randint(5, 55))
            if at >= now:
                continue
            act = "stop" if seg.state is DesiredState.STOPPED else "start"
            reason = f"schedule {name}: {'stop' if act == 'stop' else 'run'} window"
            if gov.schedule.dry_run:
                out.append(_action(inst, act, at, RECONCILER,
                                   f"{reason} (dry run: would {act})", ActionResult.DRY_RUN,
                                   details={"would": act, "schedule": name}))
                continue
            if act == "stop" and _cannot_stop(inst):
                out.append(_action(inst, act, at, RECONCILER, reason, ActionResult.REFUSED,
                                   error=f"demo: {inst.name} is a read replica of "
                                   f"{inst.extra.get('read_replica_source')}; a read replica "
                                   "cannot be stopped"))
                continue
            out.append(_action(inst, act, at, RECONCILER, reason, ActionResult.OK, details={
                "status": "stopping" if act == "stop" else "starting"}))
            if act == "stop":
                open_stop = at
            elif open_stop is not None:
                intervals.append(_interval(inst, gov, open_stop, at))
                open_stop = None
        if open_stop is not None:
            row = _interval(inst, gov, open_stop, None)
            intervals.append(row)
        return out

    def _refusals(self, stored: list[Instance]) -> list[dict[str, Any]]:
        """A few hand-made actions the clouds refused (and one restart)."""
        now = self.ctx.now()
        rng = random.Random("refusals")
        out: list[dict[str, Any]] = []
        members = [i for i in stored if i.cluster_provider_id][:3]
        for m in members:
            out.append(_action(
                m, "stop", now - timedelta(days=rng.randint(1, 12), hours=rng.randint(0, 23)),
                rng.choice(_USERS), "manual", ActionResult.REFUSED,
                error=f"demo: {m.name} is a member of Aurora cluster "
                f"{m.extra.get('cluster_identifier')}; stop the cluster instead",
            ))
        prod = [i for i in stored if i.tags.get("env") == "prod"][:4]
        for p in prod:
            out.append(_action(p, "restart", now - timedelta(days=rng.randint(1, 13)),
                               rng.choice(_USERS), "manual", ActionResult.OK,
                               details={"status": "starting"}))
        return out

    def _override(self, stored: list[Instance], governing: dict[UUID, Governing],
                  now: datetime) -> None:
        """Keep one governed, running database awake for two days."""
        for inst in stored:
            if (inst.id in governing and inst.status is InstanceStatus.RUNNING
                    and not governing[inst.id].schedule.dry_run):
                OverrideService(self.ctx).set(
                    str(inst.id), "running", now + timedelta(days=2), actor="alice",
                    reason="demo: load test this week",
                )
                return


def _cannot_stop(inst: Instance) -> bool:
    return bool(inst.extra.get("read_replica_source"))


def _action(inst: Instance, action: str, at: datetime, actor: str, reason: str,
            result: ActionResult, *, error: str | None = None,
            details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "at": at, "finished_at": at + timedelta(seconds=2), "actor": actor, "action": action,
        "instance_id": inst.id, "instance_name": inst.name, "provider": inst.provider.value,
        "reason": reason, "result": result.value, "error": error, "details": details,
    }


def _interval(inst: Instance, gov: Governing, stopped: datetime, started: datetime | None
              ) -> StopInterval:
    return StopInterval(
        id=uuid.uuid4(), instance_id=inst.id, instance_name=inst.name,
        account_id=inst.account_id, schedule_id=gov.schedule_id,
        schedule_name=gov.schedule.name, stopped_at=stopped, started_at=started,
        hourly_cost_cents=inst.hourly_cost_cents, node_count=inst.node_count,
    )
