"""Sleep recommendations for the whole inventory, and their dismissal.

The analysis itself is pure (:mod:`snoozeql.domain.analysis`). This service feeds
it: it reads the whole fleet's lookback from the store as one block of arrays (one
query, no Python object per stored hour), has ``BlockAnalysis`` classify every hour
of every instance in array operations, analyses each instance in its own time zone
with its hourly cost and node count (the same results as ``analyse``), and keeps the
recommendations it showed (``store/recommendations.py``) so one can be dismissed by id.

Reading a fleet's lookback and analysing it costs seconds for thousands of instances,
so the result is kept in the process (``Context.memo``) and reused while its inputs
are the same: the same hour (the analysis uses only finished hours), the same
analysis settings, and the same store data versions of instances and metrics
(``store/versions.py``, bumped by every write to them). Dismissals are read fresh on
every listing.

Aurora cluster members are left out: the cluster is what gets stopped and started,
so the recommendation is the cluster's.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import json
import uuid
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field, replace
from datetime import timedelta
from operator import itemgetter
from typing import Any
from uuid import UUID

from snoozeql.domain.analysis import (
    AnalysisEntry,
    BlockAnalysis,
    NoRecommendation,
    NoRecommendationReason,
    Recommendation,
    RecommendationKind,
    format_weekdays,
)
from snoozeql.domain.errors import ActionRefused, NotFoundError, ValidationError
from snoozeql.domain.metrics import floor_hour
from snoozeql.domain.protection import PROTECT_TAG, PROTECTED, is_protected
from snoozeql.domain.types import Instance, InstanceKind
from snoozeql.services import audit
from snoozeql.services.context import Context
from snoozeql.services.metrics import analysis_settings, timezone_of
from snoozeql.store import instances as instance_store
from snoozeql.store import metrics as metric_store
from snoozeql.store import recommendations as store
from snoozeql.store import versions
from snoozeql.store.instances import InstanceFilter
from snoozeql.store.metrics import epoch_hour

__all__ = ["AppliedRecommendation", "RecommendationService", "recommendation_id"]

_MEMO = "recommendations"

_NAMESPACE = uuid.UUID("5d7f3c2e-8a8b-4f5e-9c1d-2b6a7e0f4c11")

STOP_ADVICE = (
    "always idle: idle in every hour of the lookback; stop it (or delete it if nobody"
    " needs it any more)"
)


def _advice(r: Recommendation) -> str:
    """The advice line: what to do, then the margin used and the other notes."""
    head = STOP_ADVICE if r.kind is RecommendationKind.STOP else (
        "sleep in the windows below every week"
    )
    return "; ".join((head, *r.notes))


def recommendation_id(instance_id: UUID, rec: Recommendation) -> UUID:
    """Same instance and same advice, same id."""
    spans = ";".join(f"{sp.start}+{sp.minutes}" for sp in rec.spans)
    return uuid.uuid5(_NAMESPACE, f"{instance_id}|{rec.kind.value}|{rec.timezone}|{spans}")


def entry_body(instance: Instance, result: Recommendation | NoRecommendation,
               rec_id: UUID | None) -> dict[str, Any]:
    """An entry's JSON but its dismissal: built once per analysis, and stored."""
    i = instance
    out: dict[str, Any] = {
        "id": str(rec_id) if rec_id else None,
        "instance_id": str(i.id),
        "instance_name": i.name,
        "provider": i.provider.value,
        "engine": i.engine,
        "region": i.region,
    }
    r = result
    if isinstance(r, NoRecommendation):
        out.update(status="none", kind=None, code=r.code.value, reason=r.reason,
                   hours_observed=r.hours_observed, notes=list(r.notes),
                   pattern_changed_on=(None if r.pattern_changed_on is None
                                       else r.pattern_changed_on.isoformat()))
        return out
    cents = r.monthly_savings_cents
    out.update(
        status="open",
        kind=r.kind.value,
        advice=_advice(r),
        timezone=r.timezone,
        windows=[{"weekdays": format_weekdays(w.weekdays), "begin": w.begin, "end": w.end}
                 for w in r.windows],
        # an always-idle database has no sleep spans
        spans=([] if r.kind is RecommendationKind.STOP else [sp.describe() for sp in r.spans]),
        schedule={"timezone": r.timezone, "periods": r.to_schedule_periods()},
        confidence=r.confidence,
        sleep_hours_per_week=round(r.sleep_hours_per_week, 2),
        monthly_savings_cents=None if cents is None else int(cents),
        monthly_savings=None if cents is None else float(cents) / 100,
        hours_observed=r.hours_observed,
        weeks_observed=r.weeks_observed,
        margin_minutes={"before": r.margins[0], "after": r.margins[1]},
        coverage=round(r.coverage, 3),
        background_connections=r.background_connections,
        pattern_changed_on=(None if r.pattern_changed_on is None
                            else r.pattern_changed_on.isoformat()),
        notes=list(r.notes),
    )
    return out


@dataclass(frozen=True)
class AppliedRecommendation:
    """The schedule made from a recommendation (``definition``: its dict form) and
    assigned to the recommendation's instance."""

    recommendation_id: UUID
    instance_id: UUID
    instance_name: str
    schedule_id: UUID
    schedule_name: str
    definition: dict[str, Any]


@dataclass
class _Memo:
    """The fleet's analysis kept in the process: valid for one (hour, settings, zone)
    ``base``; ``versions`` are the global data versions it has seen.

    ``keys`` / ``jsons`` / ``rec_keys`` are the listing, kept sorted (largest savings
    first, then the instances without a recommendation, by name) and patched in place
    when a few entries change, so a listing of a big fleet does not sort and rebuild
    thousands of dicts per request."""

    base: tuple[Any, ...]
    versions: dict[str, int]
    entries: dict[UUID, AnalysisEntry]
    keys: list[tuple[int, float, str, str]] = field(default_factory=list)
    jsons: list[dict[str, Any]] = field(default_factory=list)
    rec_keys: list[int | None] = field(default_factory=list)
    sorted_: bool = False

    def sort(self) -> None:
        """Build the listing (once per memo, unless patched)."""
        pairs = sorted(((_sort_key(e), e) for e in self.entries.values()), key=itemgetter(0))
        self.keys = [k for k, _ in pairs]
        self.jsons = [e.listed() for _, e in pairs]
        self.rec_keys = [e.rec_id.int if e.rec_id else None for _, e in pairs]
        self.sorted_ = True

    def patched(self, base: tuple[Any, ...], seen: dict[str, int],
                fresh: list[AnalysisEntry]) -> _Memo:
        """A copy with ``fresh`` entries replacing their instances' old ones."""
        entries = dict(self.entries)
        out = _Memo(base, seen, entries)
        if self.sorted_:
            out.keys, out.jsons, out.rec_keys = list(self.keys), list(self.jsons), \
                list(self.rec_keys)
            out.sorted_ = True
        for e in fresh:
            old = entries.get(e.instance_id)
            entries[e.instance_id] = e
            if not out.sorted_:
                continue
            if old is not None:
                i = bisect_left(out.keys, _sort_key(old))
                del out.keys[i], out.jsons[i], out.rec_keys[i]
            k = _sort_key(e)
            i = bisect_left(out.keys, k)
            out.keys.insert(i, k)
            out.jsons.insert(i, e.listed())
            out.rec_keys.insert(i, e.rec_id.int if e.rec_id else None)
        return out


@dataclass(frozen=True)
class RecommendationPage:
    """One page of the listing (``GET /recommendations``): recommendations, largest
    savings first; instances without one only when asked for, after them.
    ``without_recommendation`` counts the instances without one (lacking data, busy,
    protected ...) and ``dismissed`` the dismissed recommendations, over the whole
    listing."""

    items: builtins.list[dict[str, Any]]
    next_cursor: str | None
    without_recommendation: int
    dismissed: int


def _encode_cursor(key: tuple[int, float, str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, float, str, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        group, savings, name, ident = raw
        if not (isinstance(group, int) and isinstance(savings, int | float)
                and isinstance(name, str) and isinstance(ident, str)):
            raise ValueError
        return (group, float(savings), name, ident)
    except (ValueError, TypeError):
        raise ValidationError(
            "cursor: not a cursor of this listing (pass next_cursor as it came)") from None


def _sort_key(e: AnalysisEntry) -> tuple[int, float, str, str]:
    name = e.body["instance_name"]
    if e.rec_id is not None:
        return (0, -e.savings, name, str(e.instance_id))
    return (1, 0.0, name, str(e.instance_id))


def _fingerprint(ctx: Context, i: Instance) -> str:
    """What of the instance the analysis and its JSON use: a change re-analyses it."""
    facts = (i.name, i.provider.value, i.engine, i.region, timezone_of(ctx, i),
             str(i.hourly_cost_cents), i.node_count)
    return hashlib.sha256(repr(facts).encode()).hexdigest()[:32]


def _rec_key(rec_id: str | UUID) -> UUID:
    try:
        return UUID(str(rec_id))
    except ValueError:
        raise ValidationError(f"{rec_id!r} is not a recommendation id") from None


def _no_recommendation(key: UUID) -> NotFoundError:
    return NotFoundError(f"no recommendation {key}: it may have been replaced by a newer "
                         "analysis; list the recommendations again to see current ids")


class RecommendationService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._pruned: int | None = None

    def _instances(self) -> list[Instance]:
        with self.ctx.engine.connect() as conn:
            found = list(instance_store.iter_all(conn, InstanceFilter(missing=False)))
        # Members of a cluster are slept through their cluster.
        return [
            i for i in found
            if not (i.kind is InstanceKind.INSTANCE and i.cluster_provider_id)
        ]

    def _base(self) -> tuple[Any, ...]:
        """What every analysis depends on besides the data: the hour (only finished
        hours are used), the settings and the default zone."""
        s = self.ctx.settings
        return (floor_hour(self.ctx.now()), analysis_settings(self.ctx), s.analysis_timezone)

    def _settings_key(self) -> str:
        """Stored analyses are valid for these settings and this retention cleanup (a
        cleanup may remove hours of the lookback: everything is analysed again)."""
        if self._pruned is None:
            with self.ctx.engine.connect() as conn:
                self._pruned = versions.read(conn).get(versions.PRUNED, 0)
        base = self._base()
        return hashlib.sha256(repr((base[1:], self._pruned)).encode()).hexdigest()[:32]

    def current(self) -> list[AnalysisEntry]:
        """Every instance's analysis; only instances whose metrics (per-instance data
        versions) or facts changed since their last analysis are analysed again."""
        memo = self._memo()
        with self.ctx.engine.connect() as conn:
            dismissed = store.dismissed_ids(conn)
        return [replace(e, dismissed=True) if e.rec_id in dismissed else e
                for e in memo.entries.values()]

    def _memo(self) -> _Memo:
        # Versions are read before the data: a write landing during the computation
        # leaves the memo keyed to the older versions, so the next call recomputes.
        base = self._base()
        with self.ctx.engine.connect() as conn:
            seen = versions.read(conn)
        memo: _Memo | None = self.ctx.memo.get(_MEMO)
        if memo is None or memo.base != base or memo.versions != seen:
            with self.ctx.memo_lock:  # one computation at a time; the others reuse it
                memo = self.ctx.memo.get(_MEMO)
                if memo is None or memo.base != base or memo.versions != seen:
                    memo = self._refresh(memo, base, seen)
                    self.ctx.memo[_MEMO] = memo
        return memo

    def _refresh(self, memo: _Memo | None, base: tuple[Any, ...],
                 seen: dict[str, int]) -> _Memo:
        metrics_version = seen.get(versions.METRICS, 0)
        self._pruned = seen.get(versions.PRUNED, 0)
        same_frame = (
            memo is not None and memo.base == base
            and memo.versions.get(versions.PRUNED, 0) == seen.get(versions.PRUNED, 0)
        )
        if same_frame and memo is not None \
                and memo.versions.get(versions.INSTANCES, 0) == seen.get(versions.INSTANCES, 0):
            # Only metrics changed: re-analyse the instances written since.
            with self.ctx.engine.connect() as conn:
                changed = versions.changed_since(conn, memo.versions.get(versions.METRICS, 0))
            stale = [memo.entries[i] for i in changed if i in memo.entries]
            ids = {e.instance_id for e in stale}
            instances = self._instances_by_id(ids) if ids else []
            fresh = self.compute(instances, metrics_version, everything=False,
                                 inventory=seen.get(versions.INSTANCES, 0))
            return memo.patched(base, seen, fresh)
        hour, key = epoch_hour(base[0]), self._settings_key()
        inventory = seen.get(versions.INSTANCES, 0)
        if not same_frame:
            # A new process (or a new hour / new settings): the stored analyses, when
            # the inventory has not changed since they were checked against it, are
            # trusted as they are; only instances whose metrics changed since are
            # analysed again. This is what makes a new process' first listing cheap.
            with self.ctx.engine.connect() as conn:
                rows = store.analyses(conn, hour, key)
                trusted = bool(rows) and all(r.instances_version == inventory for r in rows)
                changed = (versions.changed_since(conn, min(r.entry.data_version for r in rows))
                           if trusted else {})
            stored = {r.entry.instance_id: r.entry for r in rows}
            if trusted:
                outdated = {i for i, v in changed.items()
                            if i in stored and v > stored[i].data_version}
                fresh = self.compute(self._instances_by_id(outdated), metrics_version,
                                     everything=False, inventory=inventory) if outdated else []
                entries = dict(stored)
                entries.update({e.instance_id: e for e in fresh})
                return _Memo(base, seen, entries)
            known = stored
        else:
            assert memo is not None
            known = memo.entries
        # Otherwise: every instance of the inventory, reusing what is still valid.
        instances = self._instances()
        with self.ctx.engine.connect() as conn:
            data = versions.instance_versions(conn)
        entries = {}
        todo: list[Instance] = []
        for i in instances:
            e = known.get(i.id)
            if (e is not None and data.get(i.id, 0) <= e.data_version
                    and e.fingerprint == _fingerprint(self.ctx, i)):
                entries[i.id] = e
            else:
                todo.append(i)
        if todo:
            for e in self.compute(todo, metrics_version,
                                  everything=len(todo) > len(instances) // 2):
                entries[e.instance_id] = e
        gone = [i for i in known if i not in entries]
        with self.ctx.engine.begin() as conn:
            if gone:
                store.forget_analyses(conn, gone)
            store.confirm_analyses(conn, hour, key, inventory)
        return _Memo(base, seen, entries)

    def stale_ids(self) -> list[UUID]:
        """Instances without a stored analysis valid now: none for this hour and these
        settings, or one older than the instance's metrics or facts. A queue analyses
        them in batches (:meth:`analyse_batch`); any process's listing then reuses the
        stored analyses instead of computing them."""
        hour, key = epoch_hour(self._base()[0]), self._settings_key()
        instances = self._instances()
        with self.ctx.engine.connect() as conn:
            stored = {r.entry.instance_id: r.entry for r in store.analyses(conn, hour, key)}
            data = versions.instance_versions(conn)
        out = []
        for i in instances:
            row = stored.get(i.id)
            if (row is None or data.get(i.id, 0) > row.data_version
                    or row.fingerprint != _fingerprint(self.ctx, i)):
                out.append(i.id)
        return out

    def analyse_batch(self, ids: list[UUID]) -> int:
        """Analyse these instances now and store the analyses (one batch of a queued
        analysis); returns how many were analysed (gone or cluster members are not)."""
        with self.ctx.engine.connect() as conn:  # the version before the data is read
            metrics_version = versions.read(conn).get(versions.METRICS, 0)
        instances = [i for i in self._instances_by_id(set(ids))
                     if not (i.kind is InstanceKind.INSTANCE and i.cluster_provider_id)]
        return len(self.compute(instances, metrics_version, everything=False))

    def _instances_by_id(self, ids: set[UUID]) -> list[Instance]:
        with self.ctx.engine.connect() as conn:
            found = [instance_store.get(conn, i) for i in ids]
        return [i for i in found if i is not None and i.missing_since is None]

    def compute(self, instances: list[Instance] | None = None, data_version: int | None = None,
                everything: bool = True, inventory: int = -1) -> list[AnalysisEntry]:
        """Analyse ``instances`` (default: all) now, store the analyses and the
        recommendations shown. ``data_version``: the metrics version read before;
        ``inventory``: the inventory version the caller checked these instances against
        (-1: none; a full pass confirms them, ``store.confirm_analyses``)."""
        settings = analysis_settings(self.ctx)
        now = self.ctx.now()
        hours = settings.lookback_hours
        start = floor_hour(now) - timedelta(hours=hours)
        if instances is None:
            instances = self._instances()
        if data_version is None:
            with self.ctx.engine.connect() as conn:
                data_version = versions.read(conn).get(versions.METRICS, 0)
        if not instances:
            return []
        with self.ctx.engine.connect() as conn:
            block = metric_store.fleet_series(
                conn, start, hours, None if everything else [i.id for i in instances]
            )
        fleet = BlockAnalysis(block, settings, now)
        row_of = {key: r for r, key in enumerate(block.keys)}
        entries: list[AnalysisEntry] = []
        for i in instances:
            try:
                result = fleet.analyse(
                    row_of.get(i.id), timezone_of(self.ctx, i), i.hourly_cost_cents,
                    max(1, i.node_count),
                )
            except ValidationError as exc:  # e.g. a bad timezone tag on the instance
                result = NoRecommendation(
                    NoRecommendationReason.NOT_ENOUGH_DATA, f"cannot analyse: {exc.message}", 0
                )
            rec_id = recommendation_id(i.id, result) if isinstance(result, Recommendation) \
                else None
            entries.append(AnalysisEntry(i.id, entry_body(i, result, rec_id), rec_id, data_version,
                                 _fingerprint(self.ctx, i)))
        hour, key = epoch_hour(floor_hour(now)), self._settings_key()
        with self.ctx.engine.begin() as conn:
            store.replace_current(conn, entries, now, [e.instance_id for e in entries])
            store.save_analyses(conn, entries, analysed_hour=hour, settings_key=key,
                                instances_version=inventory)
        return entries

    def list(self, include_dismissed: bool = False) -> list[dict[str, Any]]:
        """Recommendations (largest savings first), then instances without one.

        The dicts are shared with the memo: read them, do not change them."""
        return self._listed(self._memo(), include_dismissed)

    def page(self, *, limit: int = 100, cursor: str | None = None,
             include_dismissed: bool = False,
             include_without: bool = False) -> RecommendationPage:
        """A page of :meth:`list`, recommendations only unless ``include_without``:
        what the API serves, so its body follows the page, not the fleet."""
        if not 1 <= limit <= 1000:
            raise ValidationError("limit: must be between 1 and 1000")
        after = _decode_cursor(cursor) if cursor is not None else None
        memo = self._memo()
        with self.ctx.engine.connect() as conn:
            gone = {d.int for d in store.dismissed_ids(conn)}
        with self.ctx.memo_lock:
            if not memo.sorted_:
                memo.sort()
            keys, jsons, rec_keys = memo.keys, memo.jsons, memo.rec_keys
        first_without = bisect_left(keys, (1,))  # type: ignore[arg-type]
        end = len(keys) if include_without else first_without
        i = 0 if after is None else bisect_right(keys, after)
        items: builtins.list[dict[str, Any]] = []
        while i < end and len(items) < limit:
            body, key = jsons[i], rec_keys[i]
            if key is not None and key in gone:
                if include_dismissed:
                    items.append(dict(body, status="dismissed"))
            else:
                items.append(body)
            i += 1
        more = i < end and bool(items)
        dismissed = sum(1 for k in rec_keys[:first_without] if k in gone) if gone else 0
        return RecommendationPage(
            items=items, next_cursor=_encode_cursor(keys[i - 1]) if more else None,
            without_recommendation=len(keys) - first_without, dismissed=dismissed)

    def cached(self) -> builtins.list[dict[str, Any]] | None:
        """What :meth:`list` gives, from this process's last analysis as it stands,
        without analysing anything; None when this process has not analysed yet.

        For pages that must stay fast at any fleet size (the dashboard's overview): the
        ``analyse-activity`` job keeps the analysis current where jobs run."""
        memo: _Memo | None = self.ctx.memo.get(_MEMO)
        return None if memo is None else self._listed(memo, False)

    def _listed(self, memo: _Memo, include_dismissed: bool) -> builtins.list[dict[str, Any]]:
        with self.ctx.engine.connect() as conn:
            dismissed = store.dismissed_ids(conn)
        if not memo.sorted_:
            with self.ctx.memo_lock:
                if not memo.sorted_:
                    memo.sort()
        if not dismissed:
            return list(memo.jsons)
        gone = {d.int for d in dismissed}
        out: list[dict[str, Any]] = []
        for body, key in zip(memo.jsons, memo.rec_keys, strict=True):
            if key is not None and key in gone:
                if include_dismissed:
                    out.append(dict(body, status="dismissed"))
            else:
                out.append(body)
        return out

    def stored(self, rec_id: str | UUID) -> tuple[UUID, dict[str, Any]]:
        """A recommendation as listed (its id and JSON body, as stored by the analysis
        that made it). An unknown id, or one a newer analysis replaced, is an error."""
        key = _rec_key(rec_id)
        with self.ctx.engine.connect() as conn:
            body = store.get(conn, key)
        if body is None:
            raise _no_recommendation(key)
        return key, body

    def dismiss(self, rec_id: str | UUID, actor: str, reason: str | None = None
                ) -> dict[str, Any]:
        """Dismiss a recommendation; a ``reason`` (the dashboard asks for one) goes to
        the audit trail with the dismissal, in the same transaction."""
        if reason is not None:
            reason = reason.strip()[:255] or None
        key = _rec_key(rec_id)
        with self.ctx.engine.begin() as conn:
            body = store.get(conn, key)
            if body is None:
                raise _no_recommendation(key)
            store.dismiss(conn, key, self.ctx.now(), actor)
            if reason is not None:
                audit.record(conn, at=self.ctx.now(), actor=actor, action="dismiss",
                             kind="recommendation", object_id=key,
                             name=str(body.get("instance_name")), reason=reason)
        body["status"] = "dismissed"
        return body

    def apply(
        self, rec_id: str | UUID, actor: str, name: str | None = None
    ) -> AppliedRecommendation:
        """Turn a recommendation into a schedule assigned to its instance, in one step.

        Sleep windows become the schedule's running periods in the instance's zone; a
        "stop it" recommendation becomes a schedule that keeps the instance stopped.
        Nothing is written if the name is taken or the instance is gone.
        """
        from snoozeql.domain.validation import suggest_dns_label
        from snoozeql.services.schedules import ScheduleService

        key, body = self.stored(rec_id)
        with self.ctx.engine.connect() as conn:
            target = instance_store.get(conn, UUID(str(body["instance_id"])))
        if target is not None and is_protected(target):
            raise ActionRefused(
                f"{PROTECTED}: {target.name} is tagged {PROTECT_TAG}=true, so no schedule "
                "is applied to it; nothing was created"
            )
        schedule = body.get("schedule") or {}
        definition: dict[str, Any] = {
            "name": name or suggest_dns_label(f"recommended-{body['instance_name']}"),
            "timezone": schedule.get("timezone") or body.get("timezone") or "UTC",
            "description": f"applied from recommendation {key} by {actor}",
        }
        if body.get("kind") in (RecommendationKind.STOP.value, "stop"):  # "stop": before 21
            definition["periods"] = []
            definition["override_status"] = "stopped"
        else:
            definition["periods"] = schedule.get("periods") or []
        view, _ = ScheduleService(self.ctx).create_and_assign(
            definition, instances=[body["instance_id"]]
        )
        return AppliedRecommendation(key, UUID(str(body["instance_id"])),
                                     body["instance_name"], view.id, view.name, definition)
