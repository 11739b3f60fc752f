"""The reconciler: brings every scheduled instance to its desired state, safely.

One run (the ``reconcile-schedules`` job, every ``reconcile_interval_seconds``):

1. Read the governed instances only (``store/governed.py``: the assignments, the own
   ``snoozeql-schedule`` tag and the overrides as one SQL condition, selectors pushed
   down as far as they go, a narrow projection streamed in chunks; nothing at all when
   there is no schedule), resolve which schedules govern each
   (``domain/schedules/assignment.py``: ``resolve``) and read the overrides and the
   clusters in the inventory. The resolution is kept in the context's memo under the
   store's data versions (inventory, statuses, schedules and assignments, accounts;
   ``store/versions.py``) and the overridden instances: a run in which none of them
   moved, here or in another process, reads no instance and resolves nothing.
2. Plan (the pure ``domain/schedules/reconcile.py``, which holds every rule below):
   for each instance the *key* of the current situation:

   - an active override: (``override``, the instant it was set);
   - otherwise the schedules' desired state, keyed on (``transition``, the latest of:
     the start of the current desired-state stretch, the moment the matching schedules
     (as they are now) began to match the instance, the end of an override). "any" does
     nothing.

   When several schedules match one instance they are combined, never taken in turns
   (which would flap): a schedule saying "any" abstains, the highest ``priority``
   decides, and on a tie running wins over stopped. Members of a cluster in the
   inventory (the cluster is acted on as a unit) are left out. Protected instances
   (``snoozeql-protect=true``) are planned like the others, but each of their
   transitions is refused ("protected", once, in the action log) by the lifecycle
   service: the schedule never touches them.

3. Act once per key: the key is claimed in ``reconcile_claims`` (unique per instance,
   kind and instant; 200 keys per statement) *before* acting, so two replicas never
   both act, and a finished claim is remembered, so a database a person started by
   hand inside a stop window is left alone until the next transition. A claim is a
   short lease (half the job's, ``services/leases.py``) renewed by the process's
   heartbeat while the action runs (the keys known finished are remembered between
   runs: a finished claim never changes, so the store is asked only about the others);
   one left ``claimed`` by a dead replica is taken over when its lease runs out; a
   ``failed`` one (provider error) is retried on the next run; what was done stays done.
   The action itself is logged as an intent before the provider call (``lifecycle``);
   each run first resolves the intents of dead holders from the instances' real state.
4. ``enforced`` schedules also converge on every run (key: the run's minute), which
   re-stops an RDS database that AWS started again after seven days.
5. Warnings: ``stop_warning_minutes`` before a scheduled stop, each configured webhook
   gets one notification per (instance, stop), claimed the same way.

Dry runs (a schedule's ``dry_run``, or ``SNOOZEQL_RECONCILE_DRY_RUN``) never claim: they
log what they would do once per transition (found in the log, not in the claims), so
the real run after them still acts. ``run(dry_run=True)`` (``schedules reconcile
--dry-run``) writes nothing at all and reports, per instance, what a real run would do
now and why.

Every action or would-be action (dry run) goes to the action log with its reason;
stops and starts done here open and close ``stop_intervals`` for realized savings.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import zip_longest
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

from snoozeql.domain.errors import ActionRefused, SnoozeError
from snoozeql.domain.protection import PROTECT_TAG
from snoozeql.domain.schedules.assignment import (
    SCHEDULE_TAG,
    Governing,
    OverrideRecord,
    ParsedRules,
    resolve,
)
from snoozeql.domain.schedules.reconcile import (
    RUNNING_LIKE,
    Action,
    Plan,
    Planned,
    dry_run_actions,
    matches_state,
    plan_run,
    real_actions,
    short,
    situation,
    stop_warnings,
    verdict,
)
from snoozeql.domain.types import ActionResult, Instance, InstanceKind
from snoozeql.observability import in_context, log_action
from snoozeql.services.context import Context
from snoozeql.services.leases import action_lease, keeper, new_owner
from snoozeql.services.lifecycle import LifecycleService, Resolution
from snoozeql.services.notify import Notifier, StopWarning
from snoozeql.store import accounts as account_store
from snoozeql.store import actions as action_log
from snoozeql.store import governed, versions
from snoozeql.store import instances as instance_store
from snoozeql.store import schedules as store

if TYPE_CHECKING:
    from sqlalchemy import Connection

log = logging.getLogger(__name__)

__all__ = ["ACTOR", "ReconcileItem", "ReconcileReport", "Reconciler"]

ACTOR = "reconciler"
#: Plans claimed (and their claims finished) per statement.
CHUNK = 200
#: Finished enforcement and warning claims older than this are deleted.
PRUNE_AFTER = timedelta(days=30)

#: What the governed instances and their resolution are derived from: the inventory
#: (synced rows, statuses set by actions), the schedules and assignments, the accounts'
#: names (selectors); and the overridden instances (part of the memo's key).
_RESOLUTION_VERSIONS = (versions.INSTANCES, versions.STATUSES, versions.SCHEDULES,
                        versions.ACCOUNTS)
_MEMO = "reconciler.resolution"
_DONE = "reconciler.done"
_SAID = "reconciler.said"
_PLANS = "reconciler.plans"
_RESOLVING = "reconciler.resolving"  # the lock of whoever resolves now


def _for_planning(i: Instance) -> Instance:
    """A governed instance as the memo keeps it for planning: its tags matter no more
    once resolved, but for protection (``snoozeql-protect``): the rest are dropped,
    which for 20,000 governed instances is most of what the resolution holds.

    ``i`` is a narrow row fresh from :func:`governed.scan`, which nothing else holds:
    its tags are swapped in place rather than the row copied (a copy of each of
    20,000 rows, made while the first was still alive, was 4 MB more at the
    reconciler's peak). An instance left with no tag shares one empty mapping, as the
    narrow rows' ``extra`` does: the memo's rows are read, never written."""
    if any(k.lower() == PROTECT_TAG for k in i.tags):
        kept = {k: v for k, v in i.tags.items() if k.lower() == PROTECT_TAG}
    else:
        kept = governed.NO_VALUES
    if not kept or len(kept) != len(i.tags):
        object.__setattr__(i, "tags", kept)  # frozen for its users, not for its maker
    return i


@dataclass(frozen=True)
class _Resolution:
    """The governed instances (narrow rows), the schedules governing each and the
    clusters in the inventory among theirs, as of ``key`` (data versions, overrides)."""

    key: tuple[object, ...]
    instances: list[Instance]
    governing: dict[UUID, Governing]
    clusters: set[str]
    #: One governing value per distinct set of schedules (``Governing.set_key``).
    sets: dict[object, Governing] = field(init=False)

    def __post_init__(self) -> None:
        sets: dict[object, Governing] = {}
        for gov in self.governing.values():
            sets.setdefault(gov.set_key, gov)
        object.__setattr__(self, "sets", sets)


@dataclass(frozen=True)
class ReconcileItem:
    instance_id: UUID
    instance_name: str
    action: str  # stop | start | warn | skip | none
    result: str  # ok | failed | refused | dry_run | noop | skipped | unknown
    reason: str
    error: str | None = None


@dataclass
class ReconcileReport:
    started_at: datetime
    considered: int = 0
    items: list[ReconcileItem] = field(default_factory=list)
    #: A preview (``run(dry_run=True)``): nothing was done or written.
    dry_run: bool = False

    def count(self, action: str, result: str | None = None) -> int:
        return sum(1 for i in self.items
                   if i.action == action and (result is None or i.result == result))


_T = TypeVar("_T")
_R = TypeVar("_R")


def bounded_map(fn: Callable[[_T], _R], items: list[_T], *, key: Callable[[_T], Hashable],
                limit: int, max_threads: int = 64) -> list[_R]:
    """``[fn(x) for x in items]`` on threads, at most ``limit`` calls in flight per
    ``key(x)`` (an account and region: provider APIs throttle per account and region).
    Results come back in the order of ``items``; an exception in a call is raised."""
    if not items:
        return []
    groups: dict[Hashable, threading.BoundedSemaphore] = {}
    for x in items:
        groups.setdefault(key(x), threading.BoundedSemaphore(limit))

    def run(x: _T) -> _R:
        with groups[key(x)]:
            return fn(x)

    # Interleave the groups, so the first threads do not all wait on one account.
    order: dict[Hashable, list[int]] = {}
    for n, x in enumerate(items):
        order.setdefault(key(x), []).append(n)
    queue = [n for batch in zip_longest(*order.values()) for n in batch if n is not None]
    workers = max(1, min(len(items), limit * len(groups), max_threads))
    out: list[_R | None] = [None] * len(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile") as pool:
        bound = in_context(run)  # the task run's id reaches the actions' log lines
        futures = {n: pool.submit(bound, items[n]) for n in queue}
        for n, f in futures.items():
            out[n] = f.result()
    return out  # type: ignore[return-value]


#: Dry-run log entries written per statement.
DRY_RUN_BATCH = 1_000


class Reconciler:
    def __init__(self, ctx: Context, *, owner: str | None = None,
                 notifier: Notifier | None = None,
                 shard: tuple[int, int] | None = None) -> None:
        """``shard=(k, n)``: act only on the governed instances whose id falls in shard
        ``k`` of ``n`` (``id % n == k``), so a queue runs a reconcile as ``n`` tasks;
        the claims in the store keep every transition exactly-once across them."""
        self.ctx = ctx
        if shard is not None and not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
            raise ValueError(f"bad reconcile shard {shard}")
        self.shard = shard
        self._done_memo = f"{_DONE}:{shard}"  # each shard keeps its own keys
        self._said_memo = f"{_SAID}:{shard}"
        self._plan_memo = f"{_PLANS}:{shard}"
        self.owner = owner or new_owner()
        self.notifier = notifier or Notifier(ctx.settings)
        self.lifecycle = LifecycleService(ctx, owner=self.owner, keep_accounts=True)
        self.lease = action_lease(ctx.settings)

    # ------------------------------------------------------------------ run

    def run(self, *, dry_run: bool = False) -> ReconcileReport:
        """One reconcile now; with ``dry_run`` a preview that writes nothing and reports
        every considered instance with what a real run would do and why."""
        now = self.ctx.now()
        report = ReconcileReport(started_at=now, dry_run=dry_run)
        if not dry_run:
            for r in self.lifecycle.resolve_stale():
                self._after_resolution(r, report)
        resolution, overrides, running_open = self._load()
        instances, governing, clusters = (resolution.instances, resolution.governing,
                                          resolution.clusters)
        if self.shard is not None:
            k, n = self.shard
            instances = [i for i in instances if i.id.int % n == k]
            running_open = [i for i in running_open if i.int % n == k]
        if not dry_run and running_open:
            with self.ctx.engine.begin() as conn:
                store.close_intervals(conn, running_open, now)

        planned = self._plan(resolution, instances, overrides, now)
        report.considered = planned.considered
        for inst, exc in planned.failed:  # one bad instance must not stop the run
            log.error("planning %s failed", inst.name, exc_info=exc)
            report.items.append(ReconcileItem(inst.id, inst.name, "skip", "failed",
                                              "could not evaluate", str(exc)))
        plans = planned.plans

        if dry_run:
            self._preview(plans, planned.idle, now, report)
        else:
            self._dry_runs([p for p in plans if p.dry_run], now, report)
            self._enforce([p for p in plans if not p.dry_run], now, report)
        self._warn(instances, governing, overrides, clusters, now, report, preview=dry_run)
        if not dry_run:
            with self.ctx.engine.begin() as conn:  # warnings and enforcements never recur
                store.prune_claims(conn, now - PRUNE_AFTER)
        return report

    def _load(self) -> tuple[_Resolution, dict[UUID, OverrideRecord], list[UUID]]:
        """The governed instances (read in SQL, never the whole fleet), the schedules
        governing them and the clusters their members belong to; the overrides; and the
        instances we stopped that run again. The resolution is kept in the context's
        memo under the data versions and the overridden instances it was made from: a
        run in which none of them moved reads no instance and resolves nothing."""
        with self.ctx.engine.connect() as conn:
            # Versions are read before the rows: a write landing in between leaves the
            # memo keyed to the older versions, so the next run reads again.
            seen = versions.read(conn)
            overrides = store.all_overrides(conn)
            key = (*(seen.get(k, 0) for k in _RESOLUTION_VERSIONS), frozenset(overrides))
            memo: _Resolution | None = self.ctx.memo.get(_MEMO)
            if memo is None or memo.key != key:
                # The queue runs a reconcile's shards at once: one resolves and the
                # others wait and share it (each resolving on its own, four held the
                # same 20,000 governed instances at once after every sync).
                with self.ctx.memo.setdefault(_RESOLVING, threading.Lock()):
                    memo = self.ctx.memo.get(_MEMO)
                    if memo is None or memo.key != key:
                        self._forget_resolution()  # not held twice while reading again
                        memo = _Resolution(key, *self._resolve(conn, overrides))
                        self.ctx.memo[_MEMO] = memo
            running_open = (governed.running_while_open(conn, RUNNING_LIKE)
                            if store.any_open_interval(conn) else [])
        return memo, overrides, running_open

    def _forget_resolution(self) -> None:
        """Drop the resolution and every shard's plans made from it (plans hold its
        instances; they are keyed to it, so no later run could use them)."""
        for k in list(self.ctx.memo):
            if k == _MEMO or k.startswith(_PLANS):
                self.ctx.memo.pop(k, None)

    def _plan(self, resolution: _Resolution, instances: list[Instance],
              overrides: dict[UUID, OverrideRecord], now: datetime) -> Planned:
        """``plan_run`` over ``instances`` (the resolution's, or this shard's of them),
        or the previous run's plans when nothing they depend on moved: the same
        resolution, and the same situation (every schedule set's decision at ``now``,
        the overrides)."""
        global_dry_run = self.ctx.settings.reconcile_dry_run
        key: tuple[object, ...] | None
        try:
            key = (id(resolution), resolution.key, global_dry_run,
                   situation(resolution.sets.values(), overrides, now))
        except Exception:  # noqa: BLE001 - plan_run reports the instances it fails on
            key = None
        last = self.ctx.memo.get(self._plan_memo)
        if key is not None and last is not None and last[0] == key:
            return last[1]  # type: ignore[no-any-return]
        planned = plan_run(instances, resolution.governing, overrides, resolution.clusters,
                           now, global_dry_run=global_dry_run)
        if key is not None:
            self.ctx.memo[self._plan_memo] = (key, planned)
        return planned

    def _resolve(self, conn: Connection, overrides: dict[UUID, OverrideRecord]
                 ) -> tuple[list[Instance], dict[UUID, Governing], set[str]]:
        """Read the governed (and overridden) instances and resolve their schedules."""
        instances: list[Instance] = []
        governing: dict[UUID, Governing] = {}
        records = store.list_schedules(conn)
        assignments = store.list_assignments(conn)
        accounts = ({a.id: a.name for a in account_store.list_all(conn)}
                    if any(a.kind == "selector" for a in assignments) else {})
        condition = governed.where(
            assignments, own_tag=SCHEDULE_TAG if records else None,
            extra_ids=overrides, account_names=accounts, dialect=conn.dialect.name,
        )
        if condition is not None:
            parsed = ParsedRules()
            for part in governed.scan(conn, condition):
                found = resolve(part, records, assignments, accounts,
                                include_protected=True, parsed=parsed)
                governing.update(found)
                instances.extend(_for_planning(i) for i in part
                                 if i.id in found or i.id in overrides)
        clusters = governed.cluster_ids(conn, {
            i.cluster_provider_id for i in instances
            if i.kind == InstanceKind.INSTANCE and i.cluster_provider_id})
        return instances, governing, clusters

    def _enforce(self, plans: list[Plan], now: datetime, report: ReconcileReport) -> None:
        """Claim and carry out each plan not acted on yet (and enforced convergence)."""
        actions = real_actions(plans, self._finished(plans), now)
        for n in range(0, len(actions), CHUNK):
            self._carry_out_chunk(actions[n:n + CHUNK], now, report)

    def _carry_out_chunk(self, actions: list[Action], now: datetime,
                         report: ReconcileReport) -> None:
        """Claim a chunk in one statement, act on what was won (at most
        ``action_concurrency`` provider calls in flight per account and region), then
        record every claim's outcome in one statement."""
        try:
            with self.ctx.engine.begin() as conn:
                won = store.claim_many(
                    conn, [(*a.key, a.plan.schedule_id) for a in actions],
                    owner=self.owner, now=self.ctx.now(), lease=self.lease)
        except Exception:  # noqa: BLE001 - e.g. a deadlock with another replica: next run
            log.warning("claiming %d plans failed; they are retried on the next run",
                        len(actions), exc_info=True)
            return
        mine = [a for a in actions if a.key in won]
        if not mine:
            return
        with self.ctx.engine.connect() as conn:  # actions in flight on any of them
            busy = {e.instance_id for e in action_log.pending(
                conn, instance_ids=[a.plan.instance.id for a in mine])}
        outcomes: list[tuple[UUID, str, datetime, str, str]] = []
        acts: list[Action] = []
        for a in mine:
            p = a.plan
            if p.instance.id not in busy and matches_state(p.instance.status, p.desired):
                # Already as wanted: the transition is remembered as acted on (so a
                # later change by hand is left alone), with no provider call.
                outcomes.append((*a.key, "done", "noop"))
            else:
                acts.append(a)
        leases = keeper(self.ctx)
        keys = [a.key for a in acts]
        with leases.hold(*([leases.claims(keys, self.owner, self.lease)] if acts else [])):
            for a, (status, result, item) in zip(
                    acts, bounded_map(lambda a: self._carry_out(a, now=now), acts,
                                      key=lambda a: (a.plan.instance.account_id,
                                                     a.plan.instance.region),
                                      limit=self.ctx.settings.action_concurrency),
                    strict=True):
                outcomes.append((*a.key, status, result))
                if item is not None:
                    report.items.append(item)
        with self.ctx.engine.begin() as conn:
            store.finish_claims(conn, outcomes, owner=self.owner, now=self.ctx.now())

    def _finished(self, plans: list[Plan]) -> dict[tuple[UUID, datetime], str | None]:
        """(instance, at) -> result of the plans' keys already acted on. A finished
        claim never changes (only a failed or abandoned one is taken over), so the
        results known from earlier runs of this process are kept (for the keys of the
        current plans only): the store is asked only about keys not known done."""
        known: dict[tuple[str, UUID, datetime], str | None] = self.ctx.memo.get(
            self._done_memo, {})
        done: dict[tuple[UUID, datetime], str | None] = {}
        ask: dict[str, set[datetime]] = {}
        for p in plans:
            k = (p.kind, p.instance.id, p.at)
            if k in known:
                done[(p.instance.id, p.at)] = known[k]
            else:
                ask.setdefault(p.kind, set()).add(p.at)
        if ask:
            with self.ctx.engine.connect() as conn:
                for kind in ("transition", "override"):
                    done |= store.done_results(conn, kind, ask.get(kind, set()))
        if ask or len(done) != len(known):  # else the memo holds exactly these keys
            self._remember_done(plans, done)
        return done

    def _remember_done(self, plans: list[Plan],
                       done: dict[tuple[UUID, datetime], str | None]) -> None:
        """Keep the finished keys of ``plans`` for the next run (and no others)."""
        self.ctx.memo[self._done_memo] = {
            (p.kind, p.instance.id, p.at): done[(p.instance.id, p.at)]
            for p in plans if (p.instance.id, p.at) in done}

    def _dry_runs(self, plans: list[Plan], now: datetime, report: ReconcileReport) -> None:
        """Log what dry-run schedules would do, once per transition, claiming nothing;
        ``DRY_RUN_BATCH`` entries per statement (a first transition of 10,000 built them
        all at once: memory the process then kept)."""
        entries: list[dict[str, object]] = []
        logged: list[Instance] = []
        keys: list[tuple[UUID, str, str]] = []
        done_at = self.ctx.now()
        said = self._said(plans)

        def flush() -> None:
            with self.ctx.engine.begin() as conn:  # one statement per batch
                ids = action_log.append_many(conn, entries)
            said.update(keys)
            self._remember_said(said)
            for action_id, e, inst in zip(ids, entries, logged, strict=True):
                log_action(self.ctx.telemetry, action_id=action_id, action=str(e["action"]),
                           result=ActionResult.DRY_RUN.value, instance_id=inst.id,
                           instance_name=inst.name, account_id=inst.account_id,
                           provider=inst.provider.value, actor=ACTOR, reason=str(e["reason"]))
            entries.clear()
            logged.clear()
            keys.clear()

        for a in dry_run_actions(plans, said):
            p, action = a.plan, a.plan.action
            if a.refusal is not None:  # a real run is refused too (lifecycle)
                report.items.append(ReconcileItem(p.instance.id, p.instance.name, action,
                                                  ActionResult.REFUSED.value, p.reason,
                                                  a.refusal))
                continue
            logged.append(p.instance)
            keys.append((p.instance.id, action, p.at.isoformat()))
            entries.append(self._entry(
                p.instance, action, f"{p.reason} (dry run: would {action})",
                ActionResult.DRY_RUN, now, done_at,
                details={"would": action, "schedule": p.schedule_name,
                         "kind": p.kind, "transition_at": p.at.isoformat()}))
            report.items.append(ReconcileItem(p.instance.id, p.instance.name, action,
                                              ActionResult.DRY_RUN.value, p.reason))
            if len(entries) >= DRY_RUN_BATCH:
                flush()
        if entries:
            flush()

    def _said(self, plans: list[Plan]) -> set[tuple[UUID, str, str]]:
        """(instance, action, transition) a dry run already logged, of ``plans``' keys.
        The action log is append-only, so the keys found logged by earlier runs of this
        process are kept (those of the current plans only): the store is asked only
        about the others."""
        if not plans:
            return set()
        known: set[tuple[UUID, str, str]] = self.ctx.memo.get(self._said_memo, set())
        texts: dict[datetime, str] = {}  # one string per transition time, not per plan
        keys = [(p.instance.id, p.action, texts.get(p.at) or texts.setdefault(
            p.at, p.at.isoformat())) for p in plans]
        said = {k for k in keys if k in known}
        ask = [p for p, k in zip(plans, keys, strict=True) if k not in said]
        if ask:
            with self.ctx.engine.connect() as conn:
                said |= action_log.dry_run_keys_since(
                    conn, min(p.at for p in ask), sorted({p.instance.id for p in ask}), ACTOR)
        if ask or len(said) != len(known):
            self._remember_said(said & set(keys))
        return said

    def _remember_said(self, said: set[tuple[UUID, str, str]]) -> None:
        self.ctx.memo[self._said_memo] = said

    # ------------------------------------------------------------------ preview

    def _preview(self, plans: list[Plan], idle: list[Instance], now: datetime,
                 report: ReconcileReport) -> None:
        """What a real run would do now, per instance, without writing anything."""
        for inst in idle:
            report.items.append(ReconcileItem(
                inst.id, inst.name, "none", "noop",
                "no schedule or override decides its state now (any)"))
        real = [p for p in plans if not p.dry_run]
        minute = now.replace(second=0, microsecond=0)
        with self.ctx.engine.connect() as conn:
            claims = store.claims_at(conn, {"transition", "override"},
                                     {p.at for p in real})
            claims |= store.claims_at(conn, {"enforce"}, {minute})
            pending = {e.instance_id: e for e in action_log.pending(conn)}  # a few at most
            # The plans hold a narrow projection: read ``extra`` (is it a read replica?)
            # for those a run would act on.
            extras = governed.extras(conn, [p.instance.id for p in plans
                                            if not matches_state(p.instance.status,
                                                                 p.desired)])
        said = self._said([p for p in plans if p.dry_run])
        for p in plans:
            if p.instance.id in extras:
                p = replace(p, instance=replace(p.instance, extra=extras[p.instance.id]))
            report.items.append(ReconcileItem(
                p.instance.id, p.instance.name,
                *verdict(p, claims, pending, said, now,
                         global_dry_run=self.ctx.settings.reconcile_dry_run)))

    # ------------------------------------------------------------------ takeover

    def _after_resolution(self, r: Resolution, report: ReconcileReport) -> None:
        """A dead replica's intent was completed: keep the savings record true."""
        inst = r.instance
        if inst is None:
            return
        report.items.append(ReconcileItem(
            inst.id, inst.name, r.entry.action,
            ActionResult.OK.value if r.confirmed else ActionResult.UNKNOWN.value,
            short(f"{r.entry.reason} (confirmed after takeover)" if r.confirmed
                   else r.entry.reason), None if r.confirmed else r.message))
        if not r.confirmed or r.entry.actor != ACTOR:
            return
        at = r.entry.finished_at or self.ctx.now()
        with self.ctx.engine.begin() as conn:
            if r.entry.action == "stop":
                sid = r.entry.details.get("schedule_id")
                store.open_interval(
                    conn, inst, schedule_id=UUID(sid) if sid else None,
                    schedule_name=r.entry.details.get("schedule"), stopped_at=r.entry.at)
            elif r.entry.action == "start":
                store.close_intervals(conn, [inst.id], at)

    # ------------------------------------------------------------------ acting

    def _carry_out(self, a: Action, *, now: datetime
                   ) -> tuple[str, str, ReconcileItem | None]:
        """Act on one claimed action: (claim status, claim result, report item)."""
        inst = a.plan.instance
        try:
            return self._act(a, now)
        except Exception as exc:  # noqa: BLE001 - errors on one instance never stop the run
            log.exception("reconciling %s failed", inst.name)
            return "failed", ActionResult.FAILED.value, ReconcileItem(
                inst.id, inst.name, "skip", ActionResult.FAILED.value, a.reason, str(exc))

    def _act(self, a: Action, now: datetime) -> tuple[str, str, ReconcileItem | None]:
        """Carry out one action (a protected instance is refused by the lifecycle
        service, which logs it); (claim status, claim result, report item)."""
        p, kind, at, reason = a.plan, a.kind, a.at, a.reason
        action = p.action
        with self.ctx.engine.connect() as conn:  # the plan holds a narrow projection
            # The full row and whether an intent is pending on it, in one statement;
            # the intents themselves only when there is one (or the row is gone).
            stored, busy = governed.for_action(conn, p.instance.id)
            in_flight = (action_log.pending(conn, instance_ids=[p.instance.id])
                         if busy or stored is None else [])
        inst = stored or p.instance
        if in_flight:
            # An intent of a holder that died since this run began, or one alive (a
            # manual action right now): resolve the first, wait for the second.
            self.lifecycle.resolve_stale([inst.id])
            if self.lifecycle.pending(inst.id):
                e = in_flight[0]
                return "failed", "skipped", ReconcileItem(
                    inst.id, inst.name, "skip", "skipped", reason,
                    f"a {e.action} by {e.actor} is in flight; retried next run")
            with self.ctx.engine.connect() as conn:
                stored = instance_store.get(conn, inst.id)
            inst = stored or inst
        if matches_state(inst.status, p.desired):
            return "done", "noop", None
        if action == "stop" and inst.extra.get("read_replica_source"):
            why = (f"{inst.name} is a read replica of {inst.extra['read_replica_source']}; "
                   "a read replica cannot be stopped")
            self._log(inst, action, reason, ActionResult.REFUSED, now, error=why)
            return "done", ActionResult.REFUSED.value, ReconcileItem(
                inst.id, inst.name, action, ActionResult.REFUSED.value, reason, why)
        details = {"schedule": p.schedule_name,
                   "schedule_id": str(p.schedule_id) if p.schedule_id else None,
                   "claim": {"kind": kind, "at": at.isoformat()}}

        def interval(conn: Connection) -> None:
            """The stop interval (savings), with the outcome: in its transaction."""
            done_at = self.ctx.now()
            if action == "stop":
                store.open_interval(conn, inst, schedule_id=p.schedule_id,
                                    schedule_name=p.schedule_name, stopped_at=done_at)
            else:
                store.close_intervals(conn, [inst.id], done_at)

        try:
            # The instance as just read (not read again: gone from the store, the
            # lifecycle service says so); the account is read once per run.
            self.lifecycle.act(stored or inst.id, action, actor=ACTOR, reason=reason,
                               details=details, on_ok=interval, read_back=False)
        except ActionRefused as exc:  # logged by the lifecycle service; not retried
            return "done", ActionResult.REFUSED.value, ReconcileItem(
                inst.id, inst.name, action, ActionResult.REFUSED.value, reason, exc.message)
        except SnoozeError as exc:  # logged, and on the instance; retried next run
            return "failed", ActionResult.FAILED.value, ReconcileItem(
                inst.id, inst.name, action, ActionResult.FAILED.value, reason, exc.message)
        return "done", ActionResult.OK.value, ReconcileItem(
            inst.id, inst.name, action, ActionResult.OK.value, reason)

    @staticmethod
    def _entry(inst: Instance, action: str, reason: str, result: ActionResult, at: datetime,
               finished_at: datetime, *, error: str | None = None,
               details: dict | None = None) -> dict[str, object]:  # noqa: ANN401
        return {"at": at, "finished_at": finished_at, "actor": ACTOR, "action": action,
                "reason": short(reason), "result": result.value, "instance_id": inst.id,
                "instance_name": inst.name, "provider": inst.provider.value, "error": error,
                "details": details or {}}

    def _log(self, inst: Instance, action: str, reason: str, result: ActionResult,
             at: datetime, *, error: str | None = None, details: dict | None = None) -> None:  # noqa: ANN401
        with self.ctx.engine.begin() as conn:
            action_id = action_log.append(
                conn, at=at, finished_at=self.ctx.now(), actor=ACTOR, action=action,
                reason=short(reason), result=result.value, instance_id=inst.id,
                instance_name=inst.name, provider=inst.provider.value, error=error,
                details=details,
            )
        log_action(self.ctx.telemetry, action_id=action_id, action=action, result=result.value,
                   instance_id=inst.id, instance_name=inst.name, account_id=inst.account_id,
                   provider=inst.provider.value, actor=ACTOR, reason=short(reason),
                   error=error)

    # ------------------------------------------------------------------ warnings

    def _warn(self, instances: list[Instance], governing: dict[UUID, Governing],
              overrides: dict[UUID, OverrideRecord], clusters: set[str], now: datetime,
              report: ReconcileReport, *, preview: bool = False) -> None:
        lead = timedelta(minutes=self.ctx.settings.stop_warning_minutes)
        if lead <= timedelta(0) or not self.notifier.enabled:
            return
        for inst, gov, stop_at in stop_warnings(
                instances, governing, overrides, clusters, now, lead,
                global_dry_run=self.ctx.settings.reconcile_dry_run):
            warning = StopWarning(inst, gov.schedule.name, stop_at, now)
            for kind, url, body in self.notifier.targets(warning):
                at = stop_at.astimezone(UTC)
                reason = (f"schedule {gov.schedule.name} stops it at "
                          f"{stop_at:%Y-%m-%d %H:%M %z}: warning sent")
                if preview:
                    with self.ctx.engine.connect() as conn:
                        sent = store.get_claim(conn, inst.id, kind, at)
                    if sent is None or sent.status == "failed" or (
                            sent.status == "claimed" and sent.lease_until is not None
                            and sent.lease_until < now):
                        report.items.append(ReconcileItem(
                            inst.id, inst.name, "warn", ActionResult.DRY_RUN.value,
                            f"would warn {kind}: {reason.removesuffix(': warning sent')}"))
                    continue
                try:
                    with self.ctx.engine.begin() as conn:
                        won = store.claim(conn, inst.id, kind, at, owner=self.owner, now=now,
                                          lease=self.lease, schedule_id=gov.schedule_id)
                    if not won:
                        continue
                    error = self.notifier.post(url, body)
                except Exception as exc:  # noqa: BLE001
                    log.exception("stop warning for %s failed", inst.name)
                    error = f"internal error ({type(exc).__name__})"
                result = ActionResult.FAILED if error else ActionResult.OK
                with self.ctx.engine.begin() as conn:
                    store.finish_claim(conn, inst.id, kind, at, owner=self.owner,
                                       status="failed" if error else "done",
                                       result=result.value, now=self.ctx.now())
                self._log(inst, "warn", reason, result, now, error=error,
                          details={"webhook": kind, "stop_at": stop_at.isoformat()})
                report.items.append(ReconcileItem(inst.id, inst.name, "warn", result.value,
                                                  reason, error))
