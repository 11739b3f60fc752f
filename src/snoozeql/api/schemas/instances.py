"""Bodies of ``/api/v1/instances`` (listing, detail, actions, bulk actions, overrides)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field

from snoozeql.api.openapi import exactly_one_of
from snoozeql.domain.types import Instance

if TYPE_CHECKING:  # only in signatures: `instances list --json` loads no action code
    from snoozeql.services.bulk import BulkItemResult, Skipped
    from snoozeql.services.lifecycle import ActionReport
    from snoozeql.store.schedules import OverrideRecord


class InstanceOut(BaseModel):
    id: UUID
    account_id: UUID | None
    provider: str
    provider_id: str
    kind: str
    name: str
    engine: str
    engine_version: str | None
    instance_class: str | None
    region: str | None
    status: str
    raw_status: str | None
    tags: dict[str, str]
    endpoint_host: str | None
    endpoint_port: int | None
    multi_az: bool
    node_count: int
    cluster_provider_id: str | None
    hourly_cost_cents: float | None
    first_seen_at: datetime
    last_seen_at: datetime
    missing_since: datetime | None
    last_error: str | None

    @classmethod
    def of(cls, i: Instance) -> InstanceOut:
        return cls(
            id=i.id, account_id=i.account_id, provider=i.provider.value,
            provider_id=i.provider_id, kind=i.kind.value, name=i.name, engine=i.engine,
            engine_version=i.engine_version, instance_class=i.instance_class, region=i.region,
            status=i.status.value, raw_status=i.raw_status, tags=i.tags,
            endpoint_host=i.endpoint_host, endpoint_port=i.endpoint_port, multi_az=i.multi_az,
            node_count=i.node_count, cluster_provider_id=i.cluster_provider_id,
            hourly_cost_cents=(
                float(i.hourly_cost_cents) if i.hourly_cost_cents is not None else None
            ),
            first_seen_at=i.first_seen_at, last_seen_at=i.last_seen_at,
            missing_since=i.missing_since, last_error=i.last_error,
        )


def page_body(items: list[str], next_cursor: str | None) -> bytes:
    """The body :class:`InstancePage` describes, from items that are JSON text already
    (each what ``InstanceOut.of(instance)`` serialises to; rendered by the store)."""
    return b"".join((b'{"items":[', ",".join(items).encode(), b'],"next_cursor":',
                     orjson.dumps(next_cursor), b"}"))


class InstanceDetail(InstanceOut):
    members: list[InstanceOut] = Field(default_factory=list)

    @classmethod
    def with_members(cls, i: Instance, members: list[Instance]) -> InstanceDetail:
        """The instance and, for a cluster, its member instances."""
        return cls(**InstanceOut.of(i).model_dump(), members=[InstanceOut.of(m) for m in members])


class InstancePage(BaseModel):
    items: list[InstanceOut]
    next_cursor: str | None


class ActionIn(BaseModel):
    """Optional body of ``POST /instances/{id}/start|stop|restart``."""

    model_config = ConfigDict(extra="forbid")
    force: bool = Field(False, description="act on a protected instance (snoozeql-protect="
                                           "true); needs the admin role")


class ActionResultOut(BaseModel):
    action_id: UUID
    action: str
    result: str
    message: str | None = Field(description="e.g. 'already stopped' when nothing was to do")
    already: bool = Field(False, description="the instance already was in (or on its way "
                                             "to) the requested state; nothing was done")
    instance: InstanceOut

    @classmethod
    def of(cls, r: ActionReport) -> ActionResultOut:
        return cls(action_id=r.action_id, action=r.action.value, result=r.result.value,
                   message=r.message, already=r.already, instance=InstanceOut.of(r.instance))


# Bulk actions (POST /api/v1/instances/bulk)


class BulkIn(BaseModel):
    """Exactly one of ``ids`` and ``selector``; checked by the service (400 otherwise)."""

    model_config = ConfigDict(extra="forbid",
                              json_schema_extra=exactly_one_of("ids", "selector"))
    action: str = Field(examples=["stop"], description="start, stop or restart")
    ids: list[str] | None = Field(
        None, examples=[["db-0001", "arn:aws:rds:us-east-1:123456789012:db:db-0002"]],
        description="instance ids, ARNs/provider ids or names",
    )
    selector: dict[str, Any] | None = Field(
        None,
        examples=[{"all": [{"provider": "aws"}, {"tag": {"key": "env", "value": "dev"}},
                           {"name": "stg-.*"}]}],
        description="a rule tree (docs/selectors.md); regexes match the whole string",
    )
    dry_run: bool = Field(False, description="only list the instances that would be acted on")


class BulkItemOut(BaseModel):
    id: UUID
    name: str
    result: str = Field(description="ok, refused, failed, or dry_run")
    message: str | None
    status: str

    @classmethod
    def of(cls, r: BulkItemResult) -> BulkItemOut:
        return cls(id=r.instance.id, name=r.instance.name, result=r.result.value,
                   message=r.message, status=r.status.value)


class BulkSkippedOut(BaseModel):
    id: UUID
    name: str
    reason: str

    @classmethod
    def of(cls, s: Skipped) -> BulkSkippedOut:
        return cls(id=s.instance.id, name=s.instance.name, reason=s.reason)


class BulkOut(BaseModel):
    action: str
    dry_run: bool
    matched: int = Field(description="instances acted on (or, in a dry run, that would be)")
    results: list[BulkItemOut]
    skipped: list[BulkSkippedOut] = Field(
        description="matched but left out: missing from the last sync, or a member of a "
        "cluster that is itself selected")


# Overrides (POST /api/v1/instances/{instance}/override)


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: str = Field(examples=["running"], description="running (keep awake) or stopped")
    until: str = Field(examples=["22:00", "tomorrow 08:00", "2h", "2026-11-23T22:00:00+01:00"])
    timezone: str | None = Field(None, description="zone of HH:MM; default the schedule's")
    reason: str | None = Field(None, max_length=255)


class OverrideOut(BaseModel):
    instance_id: UUID
    instance: str
    state: str
    until: datetime
    reason: str
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, name: str, o: OverrideRecord) -> OverrideOut:
        return cls(instance_id=o.instance_id, instance=name, state=o.state, until=o.until,
                   reason=o.reason, created_by=o.created_by, created_at=o.created_at)
