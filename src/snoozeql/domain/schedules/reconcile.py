"""The reconcile plan: what to do with each governed instance now (pure).

A run of the reconciler (``services/reconciler.py``) loads its data, calls these
functions and carries out what they return; everything here is data in, data out.

- :func:`plan` (one instance) and :func:`plan_run` (a run's instances): the desired
  state, the *key* of the current situation and the reason, or nothing when no
  schedule or override decides now ("any"). The key is an override, keyed on when it
  was set; or a transition of the combined schedules (``assignment.decide``), keyed on
  the latest of the start of the current desired-state stretch, the moment the
  schedules began to govern the instance, and the end of an override. An active
  override beats every schedule. Members of a cluster in the inventory are left out
  (the cluster is acted on as a unit).
- :func:`situation`: what a run's plans depend on besides the instances and their
  resolution (each schedule set's decision and stretch now, the overrides): equal
  situations plan alike, so a run may reuse the previous run's plans.
- :func:`real_actions`: given the keys already acted on, the claims a real run makes:
  one per plan not acted on yet, or an ``enforce`` claim (keyed on the run's minute)
  for an ``enforced`` schedule whose instance drifted after its transition.
- :func:`dry_run_actions`: what dry-run plans log ("would stop"), once per transition.
- :func:`verdict`: what a real run would do with one plan now, and why (``schedules
  reconcile --dry-run``), from the claims, the actions in flight and the dry-run log.
- :func:`stop_warnings`: the instances whose schedules stop them within the warning
  lead time.

A protected instance (``snoozeql-protect=true``) is planned like the others, but every
action on it carries its :attr:`Action.refusal`: a dry run reports it refused, and a
real run's lifecycle service refuses it (logged once, through the claim).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from snoozeql.domain.protection import is_protected, protected_refusal
from snoozeql.domain.schedules.assignment import Governing, OverrideRecord, decide
from snoozeql.domain.schedules.conflicts import Ranked, combined_preview
from snoozeql.domain.schedules.evaluator import next_transition, preview
from snoozeql.domain.schedules.model import DesiredState
from snoozeql.domain.types import ActionResult, Instance, InstanceKind, InstanceStatus

__all__ = [
    "LOOKBACK",
    "Action",
    "ClaimState",
    "InFlight",
    "RUNNING_LIKE",
    "Plan",
    "Planned",
    "Verdict",
    "dry_run_actions",
    "matches_state",
    "needs_enforcing",
    "next_stop",
    "plan",
    "plan_run",
    "real_actions",
    "short",
    "situation",
    "stop_warnings",
    "stretch_start",
    "verdict",
]

#: How far back a plan looks for the start of the current desired-state stretch.
LOOKBACK = timedelta(days=8)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RUNNING_LIKE = frozenset({InstanceStatus.RUNNING, InstanceStatus.STARTING})
_STOPPED_LIKE = frozenset({InstanceStatus.STOPPED, InstanceStatus.STOPPING})
_SETTLED = frozenset({InstanceStatus.RUNNING, InstanceStatus.STOPPED})


@dataclass(frozen=True, slots=True)
class Plan:
    """What one instance should be, keyed on the situation that decided it."""

    instance: Instance
    desired: DesiredState
    kind: str  # transition | override
    at: datetime
    reason: str
    dry_run: bool
    schedule_id: UUID | None = None
    schedule_name: str | None = None
    enforced: bool = False

    @property
    def action(self) -> str:
        """The lifecycle action that brings the instance to ``desired``."""
        return "stop" if self.desired is DesiredState.STOPPED else "start"


@dataclass(frozen=True)
class Planned:
    """The plans of one run: ``considered`` instances; a plan for each that something
    decides now, ``idle`` for those nothing decides ("any"), ``failed`` for those whose
    schedules could not be evaluated (with the error)."""

    considered: int
    plans: list[Plan]
    idle: list[Instance]
    failed: list[tuple[Instance, Exception]]


@dataclass(frozen=True)
class Action:
    """A planned action: claim ``(instance, kind, at)``, then bring the instance to
    ``plan.desired``. ``refusal``: why the instance must not be acted on (protected)."""

    plan: Plan
    kind: str  # transition | override | enforce
    at: datetime
    reason: str
    refusal: str | None = None

    @property
    def key(self) -> tuple[UUID, str, datetime]:
        return (self.plan.instance.id, self.kind, self.at)


@dataclass(frozen=True)
class ClaimState:
    """A claim as a preview reads it: done, failed or in flight until ``lease_until``."""

    status: str
    result: str | None
    owner: str
    lease_until: datetime


class InFlight(Protocol):
    """An action logged as an intent and not finished yet (the action log's entry)."""

    @property
    def action(self) -> str: ...

    @property
    def actor(self) -> str: ...

    @property
    def lease_until(self) -> datetime | None: ...


class Verdict(NamedTuple):
    """What a run does with one instance: action (stop | start | none), result (the
    action log's result, or noop | skipped), reason, and the refusal if any."""

    action: str
    result: str
    reason: str
    error: str | None = None


def matches_state(status: InstanceStatus, desired: DesiredState) -> bool:
    """Whether ``status`` is (or is becoming) ``desired``."""
    return status in (_STOPPED_LIKE if desired is DesiredState.STOPPED else RUNNING_LIKE)


def short(text: str, n: int = 255) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def stretch_start(gov: Governing, now: datetime, cache: dict[object, Any]
                  ) -> datetime | None:
    """When the current (combined) desired state began (None: not within LOOKBACK).
    ``cache`` is shared by the instances of one run: one evaluation per schedule set."""
    key = gov.set_key
    if key not in cache:
        if len(gov.ranks) > 1:
            combined = combined_preview(list(gov.ranks), now - LOOKBACK,
                                        now + timedelta(microseconds=1))
            cache[key] = None if len(combined) == 1 else combined[-1].start
        else:
            segments = preview(gov.schedule, now - LOOKBACK, now + timedelta(microseconds=1))
            first = segments[-1].start.astimezone(UTC)
            cache[key] = None if len(segments) == 1 else first
    return cache[key]  # type: ignore[no-any-return]


class _Template(NamedTuple):
    """A plan without its instance: the same for every instance governed by one set of
    schedules since one instant, when no override is involved."""

    desired: DesiredState
    at: datetime
    schedule_id: UUID
    schedule_name: str
    note: str
    why: str
    dry_run: bool
    enforced: bool


def _template(gov: Governing, now: datetime, cache: dict[object, Any]) -> _Template | None:
    """The plan of every instance with ``gov``'s schedule set and start (None: "any").
    The decision depends on the schedules and the instant only: once per schedule set;
    the plan also on when they began to match: once per (set, start)."""
    tkey = ("plan", gov.set_key, gov.latest_since)
    if tkey in cache:
        return cache[tkey]  # type: ignore[no-any-return]
    dkey = ("decide", gov.set_key)
    if dkey not in cache:
        cache[dkey] = decide(gov, now)
    schedule_id, schedule, decision, note = cache[dkey]
    out = None
    if decision.state is not DesiredState.ANY:
        at = max(stretch_start(gov, now, cache) or _EPOCH, gov.latest_since)
        out = _Template(decision.state, at, schedule_id, schedule.name, note, decision.reason,
                        schedule.dry_run, schedule.enforced)
    cache[tkey] = out
    return out


def plan(inst: Instance, gov: Governing | None, ov: OverrideRecord | None, now: datetime,
         *, global_dry_run: bool, cache: dict[object, Any]) -> Plan | None:
    """The plan for one instance now (None: nothing decides its state now). ``cache``
    is shared by the instances of one run (one decision per schedule set)."""
    if ov is not None and ov.until > now:
        return Plan(
            inst, DesiredState(ov.state), "override", ov.created_at,
            short(f"override by {ov.created_by}: {ov.reason}"), global_dry_run,
            gov.schedule_id if gov else None, gov.schedule.name if gov else None,
        )
    if gov is None:
        if ov is not None and ov.state == DesiredState.STOPPED:
            # "sleep until T" on an instance no schedule governs: wake it at T.
            return Plan(inst, DesiredState.RUNNING, "override", ov.until,
                        short(f"override ended ({ov.reason})"), global_dry_run)
        return None
    t = _template(gov, now, cache)
    if t is None:
        return None
    if ov is not None and ov.until > t.at:
        at = ov.until
        reason = short(f"schedule {t.schedule_name}{t.note} (override ended): {t.why}")
    else:
        at = t.at
        rkey = ("reason", t)
        if rkey not in cache:
            cache[rkey] = short(f"schedule {t.schedule_name}{t.note}: {t.why}")
        reason = cache[rkey]
    return Plan(
        inst, t.desired, "transition", at, reason, t.dry_run or global_dry_run,
        t.schedule_id, t.schedule_name, t.enforced,
    )


def situation(sets: Iterable[Governing], overrides: Mapping[UUID, OverrideRecord],
              now: datetime) -> tuple[object, ...]:
    """What the plans of a run depend on besides the instances and their resolution:
    each schedule set's decision and the start of its current stretch at ``now`` (one
    :class:`Governing` per set in ``sets``), and the overrides with whether each is
    active. :func:`plan_run` over the same instances and resolution gives the same
    plans at two instants with equal situations; this costs one evaluation per set."""
    cache: dict[object, Any] = {}
    decided = []
    for gov in sets:
        schedule_id, _, decision, note = cache[("decide", gov.set_key)] = decide(gov, now)
        start = (stretch_start(gov, now, cache) if decision.state is not DesiredState.ANY
                 else None)
        decided.append((gov.set_key, schedule_id, decision.state, decision.reason, note,
                        start))
    active = frozenset((ov, ov.until > now) for ov in overrides.values())
    return tuple(decided), active


def _in_acted_cluster(inst: Instance, clusters: Collection[str]) -> bool:
    return inst.kind == InstanceKind.INSTANCE and inst.cluster_provider_id in clusters


def plan_run(instances: list[Instance], governing: Mapping[UUID, Governing],
             overrides: Mapping[UUID, OverrideRecord], clusters: Collection[str],
             now: datetime, *, global_dry_run: bool) -> Planned:
    """The plans of one run over ``instances``: those a schedule or an override
    reaches, except members of a cluster in ``clusters`` (the inventory's clusters)."""
    plans: list[Plan] = []
    idle: list[Instance] = []
    failed: list[tuple[Instance, Exception]] = []
    cache: dict[object, Any] = {}
    considered = 0
    for inst in instances:
        gov = governing.get(inst.id)
        ov = overrides.get(inst.id)
        if (gov is None and ov is None) or _in_acted_cluster(inst, clusters):
            continue
        considered += 1
        try:
            p = plan(inst, gov, ov, now, cache=cache, global_dry_run=global_dry_run)
        except Exception as exc:  # noqa: BLE001 - one bad instance must not stop the run
            failed.append((inst, exc))
            continue
        if p is not None:
            plans.append(p)
        else:
            idle.append(inst)
    return Planned(considered, plans, idle, failed)


def needs_enforcing(p: Plan, claimed_result: str | None) -> bool:
    """Whether an ``enforced`` plan, whose key was acted on with ``claimed_result``,
    is acted on again: its instance settled in the other state since."""
    return (p.enforced and claimed_result not in (ActionResult.REFUSED, ActionResult.DRY_RUN)
            and p.instance.status in _SETTLED and not matches_state(p.instance.status,
                                                                     p.desired))


def _minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def real_actions(plans: list[Plan], done: Mapping[tuple[UUID, datetime], str | None],
                 now: datetime) -> list[Action]:
    """The claims a real run makes for ``plans`` (dry-run plans are left out), given
    ``done``: (instance, at) -> result of the keys already acted on. Each plan not
    acted on yet is claimed on its key; an enforced one acted on whose instance
    drifted is claimed on ``("enforce", the run's minute)``; the others are left
    alone. The claims of new keys come first."""
    todo: list[Action] = []
    enforce: list[Action] = []
    for p in plans:
        if p.dry_run:
            continue
        key = (p.instance.id, p.at)
        if key not in done:
            todo.append(Action(p, p.kind, p.at, p.reason,
                               protected_refusal(p.instance, p.action)))
        elif p.enforced and needs_enforcing(p, done[key]):
            enforce.append(Action(p, "enforce", _minute(now), f"enforced: {p.reason}",
                                  protected_refusal(p.instance, p.action)))
    return todo + enforce


def dry_run_actions(plans: list[Plan], said: Collection[tuple[UUID, str, str]]
                    ) -> list[Action]:
    """What the dry-run ``plans`` log now: each one whose instance is not as wanted,
    unless ``said`` ((instance, action, transition instant in ISO form) already
    logged) has it. A protected instance's action carries its refusal."""
    out = []
    for p in plans:
        if not p.dry_run or matches_state(p.instance.status, p.desired):
            continue
        if (p.instance.id, p.action, p.at.isoformat()) in said:
            continue
        out.append(Action(p, p.kind, p.at, p.reason,
                          protected_refusal(p.instance, p.action)))
    return out


def verdict(p: Plan, claims: Mapping[tuple[UUID, str, datetime], ClaimState],
            pending: Mapping[UUID | None, InFlight], said: Collection[tuple[UUID, str, str]],
            now: datetime, *, global_dry_run: bool) -> Verdict:
    """What a real run would do with plan ``p`` now, and why (writes nothing). The
    instance must carry ``extra`` (a read replica is never stopped)."""
    inst = p.instance
    action = p.action

    def item(act: str, result: str, why: str, error: str | None = None) -> Verdict:
        return Verdict(act, result, short(why), error)

    entry = pending.get(inst.id)
    if entry is not None:
        lease = entry.lease_until
        if lease is not None and lease >= now:
            return item("none", "skipped",
                        f"{entry.action} by {entry.actor} in flight until {lease:%H:%M:%S}"
                        f" UTC; {p.reason}")
        note = (f"first resolves the pending {entry.action} of a dead holder from the "
                f"real state; then ")
    else:
        note = ""
    protected = protected_refusal(inst, action)
    if p.dry_run:
        if matches_state(inst.status, p.desired):
            return item("none", "noop", f"already {inst.status.value}; {p.reason}")
        if protected is not None:
            return item(action, ActionResult.REFUSED.value, p.reason, protected)
        if (inst.id, action, p.at.isoformat()) in said:
            return item("none", "skipped", f"dry run: already logged for this "
                        f"transition; {p.reason}")
        which = ("SNOOZEQL_RECONCILE_DRY_RUN is set" if global_dry_run
                 else "the schedule is a dry run")
        return item(action, ActionResult.DRY_RUN.value,
                    f"{note}logs 'would {action}' only ({which}): {p.reason}")
    claim = claims.get((inst.id, p.kind, p.at))
    reason = p.reason
    if claim is not None and claim.status == "done":
        if not needs_enforcing(p, claim.result):
            why = (f"transition of {p.at:%Y-%m-%d %H:%M} UTC already acted on "
                   f"({claim.result}); {p.reason}")
            return item("none", "skipped", why)
        reason = f"enforced: {p.reason}"
        claim = claims.get((inst.id, "enforce", _minute(now)))
        if claim is not None and claim.status == "done":
            return item("none", "skipped", f"enforced this minute already; {p.reason}")
    if claim is not None and claim.status == "claimed" and claim.lease_until >= now:
        return item("none", "skipped", f"claimed by {claim.owner} until "
                    f"{claim.lease_until:%H:%M:%S} UTC; {reason}")
    if matches_state(inst.status, p.desired):
        return item("none", "noop", f"already {inst.status.value}; {reason}")
    if protected is not None:
        return item(action, ActionResult.REFUSED.value, reason, protected)
    if action == "stop" and inst.extra.get("read_replica_source"):
        return item(action, ActionResult.REFUSED.value, reason,
                    f"{inst.name} is a read replica of {inst.extra['read_replica_source']};"
                    " a read replica cannot be stopped")
    retry = " (retries a failed attempt)" if claim is not None and claim.status == "failed" \
        else " (takes over a dead holder's claim)" if claim is not None else ""
    return item(action, ActionResult.DRY_RUN.value, f"{note}would {action}{retry}: {reason}")


def next_stop(gov: Governing, ranks: list[Ranked], now: datetime, lead: timedelta
              ) -> datetime | None:
    """When the (combined) desired state next turns to stopped within ``lead``."""
    if len(ranks) == 1:
        t = next_transition(gov.schedule, now, lead, into={"stopped"})
        return t.at if t else None
    combined = combined_preview(ranks, now, now + lead + timedelta(microseconds=1))
    return next((seg.start for seg in combined[1:] if seg.state is DesiredState.STOPPED), None)


def stop_warnings(instances: list[Instance], governing: Mapping[UUID, Governing],
                  overrides: Mapping[UUID, OverrideRecord], clusters: Collection[str],
                  now: datetime, lead: timedelta, *, global_dry_run: bool
                  ) -> list[tuple[Instance, Governing, datetime]]:
    """(instance, governing, stop instant) for each running instance whose schedules
    stop it within ``lead``: not in a dry run, not protected, not a member of an acted
    cluster, and not while an override decides at that time."""
    if global_dry_run:
        return []
    out = []
    next_stops: dict[object, datetime | None] = {}
    for inst in instances:
        gov = governing.get(inst.id)
        if gov is None or gov.schedule.dry_run:
            continue
        if inst.status not in RUNNING_LIKE or is_protected(inst) or _in_acted_cluster(
                inst, clusters):
            continue
        key = gov.set_key
        if key not in next_stops:
            next_stops[key] = next_stop(gov, list(gov.ranks), now, lead)
        stop_at = next_stops[key]
        if stop_at is None:
            continue
        ov = overrides.get(inst.id)
        if ov is not None and ov.until > now and (
            ov.state == DesiredState.STOPPED or ov.until > stop_at
        ):
            continue  # an override decides at that time, not the schedule
        out.append((inst, gov, stop_at))
    return out
