"""Sleep recommendations for the whole inventory, and their dismissal.

The analysis itself is the pure :func:`snoozeql.domain.analysis.analyse`. This service
feeds it: it reads the whole fleet's lookback from the store as columns (one query, no
datetime per row: the fast path measured in benchmarks/bench_analysis.py), analyses
every instance in its own time zone with its hourly cost and node count, and keeps the
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

import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cached_property
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from snoozeql.domain.analysis import (
    NoRecommendation,
    NoRecommendationReason,
    Recommendation,
    RecommendationKind,
    analyse,
)
from snoozeql.domain.errors import ActionRefused, NotFoundError, ValidationError
from snoozeql.domain.metrics import HourlySeries, floor_hour
from snoozeql.domain.protection import PROTECT_TAG, PROTECTED, is_protected
from snoozeql.domain.types import Instance, InstanceKind
from snoozeql.services.context import Context
from snoozeql.services.metrics import analysis_settings, timezone_of
from snoozeql.store import instances as instance_store
from snoozeql.store import metrics as metric_store
from snoozeql.store import recommendations as store
from snoozeql.store import versions
from snoozeql.store.instances import InstanceFilter

__all__ = ["RecommendationService", "recommendation_id"]

_MEMO = "recommendations"

_NAMESPACE = uuid.UUID("5d7f3c2e-8a8b-4f5e-9c1d-2b6a7e0f4c11")

STOP_ADVICE = (
    "idle for the whole lookback: stop it (or delete it if nobody needs it any more)"
)


def recommendation_id(instance_id: UUID, rec: Recommendation) -> UUID:
    """Same instance and same advice, same id."""
    spans = ";".join(f"{sp.start}+{sp.minutes}" for sp in rec.spans)
    return uuid.uuid5(_NAMESPACE, f"{instance_id}|{rec.kind.value}|{rec.timezone}|{spans}")


@dataclass(frozen=True)
class Entry:
    instance: Instance
    result: Recommendation | NoRecommendation
    rec_id: UUID | None
    dismissed: bool = False

    def to_json(self) -> dict[str, Any]:
        out = dict(self._json)
        if isinstance(self.result, Recommendation):
            out["status"] = "dismissed" if self.dismissed else "open"
        return out

    @cached_property
    def _json(self) -> dict[str, Any]:
        """Everything but the dismissal, built once per analysis (it is the costly
        part of a listing served from the memo)."""
        i = self.instance
        out: dict[str, Any] = {
            "id": str(self.rec_id) if self.rec_id else None,
            "instance_id": str(i.id),
            "instance_name": i.name,
            "provider": i.provider.value,
            "engine": i.engine,
            "region": i.region,
        }
        r = self.result
        if isinstance(r, NoRecommendation):
            out.update(status="none", kind=None, code=r.code.value, reason=r.reason,
                       hours_observed=r.hours_observed)
            return out
        body = r.as_dict()
        cents = r.monthly_savings_cents
        out.update(
            status="open",
            kind=r.kind.value,
            advice=STOP_ADVICE if r.kind is RecommendationKind.STOP else (
                "sleep in the windows below every week"
            ),
            timezone=r.timezone,
            windows=body["windows"],
            spans=body["spans"],
            schedule={"timezone": r.timezone, "periods": body["running_periods"]},
            confidence=r.confidence,
            sleep_hours_per_week=body["sleep_hours_per_week"],
            monthly_savings_cents=None if cents is None else int(cents),
            monthly_savings=None if cents is None else float(cents) / 100,
            hours_observed=r.hours_observed,
            weeks_observed=r.weeks_observed,
        )
        return out


class RecommendationService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _instances(self) -> list[Instance]:
        with self.ctx.engine.connect() as conn:
            found = list(instance_store.iter_all(conn, InstanceFilter(missing=False)))
        # Members of a cluster are slept through their cluster.
        return [
            i for i in found
            if not (i.kind is InstanceKind.INSTANCE and i.cluster_provider_id)
        ]

    def current(self) -> list[Entry]:
        """Every instance's analysis, recomputed only when its inputs changed."""
        # Versions are read before the data: a write landing during the computation
        # leaves the memo keyed to the older versions, so the next call recomputes.
        with self.ctx.engine.connect() as conn:
            inputs = self._inputs(conn)
        memo = self.ctx.memo.get(_MEMO)
        if memo is None or memo[0] != inputs:
            with self.ctx.memo_lock:  # one computation at a time; the others reuse it
                memo = self.ctx.memo.get(_MEMO)
                if memo is None or memo[0] != inputs:
                    memo = (inputs, self.compute())
                    self.ctx.memo[_MEMO] = memo
        entries: list[Entry] = memo[1]
        with self.ctx.engine.connect() as conn:
            dismissed = store.dismissed_ids(conn)
        return [replace(e, dismissed=True) if e.rec_id in dismissed else e for e in entries]

    def _inputs(self, conn: sa.Connection) -> tuple[Any, ...]:
        """What the analysis depends on besides the data itself."""
        s = self.ctx.settings
        return (
            floor_hour(self.ctx.now()), analysis_settings(self.ctx), s.analysis_timezone,
            tuple(sorted(versions.read(conn).items())),
        )

    def compute(self) -> list[Entry]:
        """Analyse every instance now and remember the recommendations shown."""
        settings = analysis_settings(self.ctx)
        now = self.ctx.now()
        hours = settings.lookback_hours
        start = floor_hour(now) - timedelta(hours=hours)
        instances = self._instances()
        with self.ctx.engine.connect() as conn:
            columns = metric_store.fleet_series(conn, start, hours)
        entries: list[Entry] = []
        for i in instances:
            cols = columns.get(i.id) or HourlySeries.empty(start, hours)
            try:
                result = analyse(
                    cols, settings, now, timezone_of(self.ctx, i), i.hourly_cost_cents,
                    max(1, i.node_count),
                )
            except ValidationError as exc:  # e.g. a bad timezone tag on the instance
                result = NoRecommendation(
                    NoRecommendationReason.NOT_ENOUGH_DATA, f"cannot analyse: {exc.message}", 0
                )
            rec_id = recommendation_id(i.id, result) if isinstance(result, Recommendation) \
                else None
            entries.append(Entry(i, result, rec_id))
        rows: list[dict[str, Any]] = [
            {"id": e.rec_id, "instance_id": e.instance.id, "kind": e.result.kind.value,
             "body": e.to_json()}
            for e in entries if e.rec_id is not None and isinstance(e.result, Recommendation)
        ]
        with self.ctx.engine.begin() as conn:
            store.replace_current(conn, rows, now)
        return entries

    def list(self, include_dismissed: bool = False) -> list[dict[str, Any]]:
        """Recommendations (largest savings first), then instances without one."""
        entries = [e for e in self.current() if include_dismissed or not e.dismissed]
        with_rec = [e for e in entries if isinstance(e.result, Recommendation)]
        without = [e for e in entries if not isinstance(e.result, Recommendation)]

        def savings(e: Entry) -> float:
            r = e.result
            assert isinstance(r, Recommendation)
            cents = r.monthly_savings_cents
            return float(cents) if cents is not None else -1.0

        with_rec.sort(key=lambda e: (-savings(e), e.instance.name))
        without.sort(key=lambda e: e.instance.name)
        return [e.to_json() for e in with_rec + without]

    def dismiss(self, rec_id: str | UUID, actor: str) -> dict[str, Any]:
        try:
            key = UUID(str(rec_id))
        except ValueError:
            raise ValidationError(f"{rec_id!r} is not a recommendation id") from None
        with self.ctx.engine.begin() as conn:
            row = store.get(conn, key)
            if row is None:
                raise NotFoundError(
                    f"no recommendation {key}; list the recommendations to see current ids"
                )
            store.dismiss(conn, key, self.ctx.now(), actor)
        body = dict(row.body)
        body["status"] = "dismissed"
        return body



    def apply(
        self, rec_id: str | UUID, actor: str, name: str | None = None
    ) -> dict[str, Any]:
        """Turn a recommendation into a schedule assigned to its instance, in one step.

        Sleep windows become the schedule's running periods in the instance's zone; a
        "stop it" recommendation becomes a schedule that keeps the instance stopped.
        Nothing is written if the name is taken or the instance is gone.
        """
        from snoozeql.domain.validation import suggest_dns_label
        from snoozeql.services.schedules import ScheduleService

        try:
            key = UUID(str(rec_id))
        except ValueError:
            raise ValidationError(f"{rec_id!r} is not a recommendation id") from None
        with self.ctx.engine.connect() as conn:
            row = store.get(conn, key)
        if row is None:
            raise NotFoundError(
                f"no recommendation {key}; list the recommendations to see current ids"
            )
        body = dict(row.body)
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
        if body.get("kind") == RecommendationKind.STOP.value:
            definition["periods"] = []
            definition["override_status"] = "stopped"
        else:
            definition["periods"] = schedule.get("periods") or []
        view, _ = ScheduleService(self.ctx).create_and_assign(
            definition, instances=[body["instance_id"]]
        )
        return {
            "recommendation_id": str(key),
            "instance_id": body["instance_id"],
            "instance_name": body["instance_name"],
            "schedule_id": str(view.id),
            "schedule_name": view.name,
            "schedule": definition,
        }
