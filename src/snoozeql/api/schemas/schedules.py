"""Request and response bodies of the schedules and savings endpoints.

A schedule travels as its document (``schedule_document``), validated by the domain
model so the API and the CLI refuse exactly the same things with the same messages.
The answers are built here (``XOut.of``) from the services' views; the CLI's ``--json``
prints the same models (``model_dump(exclude_unset=True)``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from snoozeql.api.openapi import exactly_one_of
from snoozeql.domain.schedules import Segment, Transition
from snoozeql.domain.schedules.model import schedule_document
from snoozeql.domain.validation import MAX_NAME_CHARS
from snoozeql.services.schedules import (
    Assignment,
    ConflictView,
    Evaluation,
    MatchView,
    ScheduleView,
)

if TYPE_CHECKING:  # the reconciler is imported when a run is asked for
    from snoozeql.services.reconciler import ReconcileReport


class ScheduleOut(BaseModel):
    id: UUID
    name: str
    timezone: str
    description: str | None
    periods: list[dict[str, Any]]
    override_status: str | None
    enforced: bool
    dry_run: bool
    exceptions: list[dict[str, Any]]
    mode: str = Field("periods", description="`periods`, or `cron` for a cron pair")
    start_cron: str | None = Field(None, description="cron pair: when to start (5 fields)")
    stop_cron: str | None = Field(None, description="cron pair: when to stop (5 fields)")
    priority: int = Field(0, description="the highest priority wins when schedules disagree")
    created_at: datetime
    updated_at: datetime
    conflicts: list[ConflictOut] | None = Field(
        None, description="other schedules disagreeing on shared instances (next 7 days)")

    @classmethod
    def of(cls, v: ScheduleView, conflicts: list[ConflictView] | None = None) -> ScheduleOut:
        """The schedule; ``conflicts`` only when given (the CLI's JSON, dumped with
        ``exclude_unset``, has neither them nor a periods schedule's cron fields)."""
        out = cls(id=v.id, created_at=v.created_at, updated_at=v.updated_at,
                  priority=v.priority, mode=v.schedule.mode, **schedule_document(v.schedule))
        if conflicts is not None:
            out.conflicts = [ConflictOut.of(c) for c in conflicts]
        return out


class ConflictOut(BaseModel):
    schedule: str
    other_schedule_id: UUID
    other_schedule: str
    first_conflict_at: datetime
    state: str = Field(description="what this schedule wants at first_conflict_at")
    other_state: str
    instances: list[str]
    winner: str = Field(description="the schedule the reconciler follows then")
    rule: str

    @classmethod
    def of(cls, c: ConflictView) -> ConflictOut:
        return cls(schedule=c.schedule_name, other_schedule_id=c.other_id,
                   other_schedule=c.other_name, first_conflict_at=c.first_at, state=c.state,
                   other_state=c.other_state, instances=list(c.instances), winner=c.winner,
                   rule=c.rule)


class MatchedBy(BaseModel):
    kind: str
    target: str
    assignment_id: UUID | None


class MatchOut(BaseModel):
    instance_id: UUID
    name: str
    provider: str
    account: str | None
    region: str | None
    engine: str
    status: str
    matched_by: list[MatchedBy]

    @classmethod
    def of(cls, m: MatchView) -> MatchOut:
        i = m.instance
        return cls(instance_id=i.id, name=i.name, provider=i.provider.value,
                   account=m.account_name, region=i.region, engine=i.engine,
                   status=i.status.value,
                   matched_by=[MatchedBy(kind=v.kind, target=v.target,
                                         assignment_id=v.assignment_id) for v in m.via])


class MatchesOut(BaseModel):
    schedule: str | None
    count: int
    instances: list[MatchOut]


class SelectorPreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    selector: dict[str, Any] = Field(
        examples=[{"all": [{"provider": "aws"}, {"tag": {"key": "env", "value": "dev|stg"}}]}],
        description="an instance selector (docs/selectors.md); not saved",
    )


def _import_rule() -> dict[str, Any]:
    """The import body's cross-field rule as JSON Schema (the service answers 400)."""
    rule = exactly_one_of("custodian", "instance_scheduler",
                          also_required={"custodian": ["name"]})
    for branch in rule["oneOf"]:
        if "instance_scheduler" in branch["required"]:  # opt-out is a Custodian option
            branch["properties"]["opt-out"] = {"not": {"const": True}}
    rule["oneOf"].append({
        "required": ["opt-out", "name"],
        "properties": {"opt-out": {"const": True}, "name": {"not": {"type": "null"}},
                       "custodian": {"type": "null"}, "instance_scheduler": {"type": "null"}},
    })
    return rule


class ImportIn(BaseModel):
    """Exactly one of ``custodian`` (with ``name``) and ``instance_scheduler``; or, for a
    Custodian policy with ``opt-out``, neither (with ``name``): untagged resources get the
    policy's defaults. Custodian's policy options may be spelled as in a policy
    (``weekends-only``, ``opt-out``) or with underscores."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True,
                              json_schema_extra=_import_rule())
    custodian: str | None = Field(None, examples=["off=(M-F,19);on=(M-F,7);tz=pt"],
                                  description="a Cloud Custodian offhours tag value")
    name: str | None = Field(None, description="name of the schedule made from `custodian`",
                             max_length=MAX_NAME_CHARS)
    default_tz: str = Field("et", description="Custodian's default zone when the tag has none")
    onhour: int = Field(7, ge=0, le=23, description="Custodian policy: default on hour")
    offhour: int = Field(19, ge=0, le=23, description="Custodian policy: default off hour")
    weekends: bool = Field(True, description="Custodian policy: default days are Mon-Fri "
                                             "(false: every day)")
    weekends_only: bool = Field(False, alias="weekends-only",
                                description="Custodian policy: off Friday at offhour, on "
                                            "Monday at onhour")
    opt_out: bool = Field(False, alias="opt-out",
                          description="Custodian policy: resources without the tag get the "
                                      "defaults; `custodian` may then be omitted")
    instance_scheduler: Any = Field(
        None, description="Instance Scheduler configuration (periods and schedules) as JSON"
    )
    default_timezone: str = Field("UTC", description="zone of Instance Scheduler schedules "
                                  "that name none")


class ImportOut(BaseModel):
    schedules: list[ScheduleOut]
    warnings: list[str]


class EvaluateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str | None = Field(None, examples=["2026-11-23T19:30:00+01:00"],
                           description="an instant with a UTC offset; default now")


class TransitionOut(BaseModel):
    at: datetime
    state: str
    previous: str
    reason: str

    @classmethod
    def of(cls, t: Transition | None) -> TransitionOut | None:
        if t is None:
            return None
        return cls(at=t.at, state=str(t.state), previous=str(t.previous), reason=t.reason)


class EvaluationOut(BaseModel):
    at: datetime
    state: str
    reason: str
    source: str
    next_transition: TransitionOut | None
    next_stop: TransitionOut | None

    @classmethod
    def of(cls, e: Evaluation) -> EvaluationOut:
        return cls(at=e.at, state=str(e.decision.state), reason=e.decision.reason,
                   source=e.decision.source, next_transition=TransitionOut.of(e.next),
                   next_stop=TransitionOut.of(e.next_stop))


class SegmentOut(BaseModel):
    start: datetime
    end: datetime
    state: str
    reason: str

    @classmethod
    def of(cls, s: Segment) -> SegmentOut:
        return cls(start=s.start, end=s.end, state=str(s.state), reason=s.reason)


class PreviewOut(BaseModel):
    schedule: str
    timezone: str
    segments: list[SegmentOut]


class AssignIn(BaseModel):
    """Exactly one of ``instance``, ``tag``, ``account`` and ``selector``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one_of(
        "instance", "tag", "account", "selector"))
    instance: str | None = Field(None, description="instance id, ARN or name")
    tag: str | None = Field(None, examples=["env=dev"], description="key=value selector")
    account: str | None = Field(None, description="account id or name")
    selector: dict[str, Any] | None = Field(
        None, examples=[{"any": [{"name": "stg-.*"}, {"tag": {"key": "env", "value": "dev"}}]}],
        description="an instance selector rule tree (docs/selectors.md)")


class AssignmentOut(BaseModel):
    id: UUID
    schedule_id: UUID
    schedule: str
    kind: str
    target: str
    selector: dict[str, Any] | None = None
    description: str
    created_at: datetime

    @classmethod
    def of(cls, a: Assignment) -> AssignmentOut:
        return cls(id=a.id, schedule_id=a.schedule_id, schedule=a.schedule_name, kind=a.kind,
                   target=a.target, selector=a.selector, description=a.description,
                   created_at=a.created_at)


class ReconcileItemOut(BaseModel):
    instance_id: UUID
    instance_name: str
    action: str = Field(description="stop | start | warn | skip | none")
    result: str = Field(description="ok | failed | refused | unknown | skipped | noop, or "
                        "dry_run: what a real run would do")
    reason: str
    error: str | None = None


class ReconcileOut(BaseModel):
    started_at: datetime
    dry_run: bool = Field(description="a preview: nothing was done or written")
    considered: int
    items: list[ReconcileItemOut]

    @classmethod
    def of(cls, r: ReconcileReport) -> ReconcileOut:
        return cls(started_at=r.started_at, dry_run=r.dry_run, considered=r.considered,
                   items=[ReconcileItemOut(
                       instance_id=i.instance_id, instance_name=i.instance_name,
                       action=i.action, result=i.result, reason=i.reason, error=i.error)
                       for i in r.items])
