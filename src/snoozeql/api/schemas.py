"""Request and response bodies. Secrets never appear in a response model."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field

from snoozeql.domain.types import Account, Instance
from snoozeql.domain.validation import MAX_NAME_CHARS
from snoozeql.services.discovery import SyncReport
from snoozeql.store.actions import ActionRecord
from snoozeql.store.apikeys import ApiKeyRecord


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: str = Field(examples=["aws"])
    name: str = Field(examples=["dev-account"], max_length=MAX_NAME_CHARS)
    config: dict[str, Any] = Field(
        default_factory=dict,
        examples=[{"regions": ["us-east-1", "eu-west-1"], "profile": "dev"}],
        description="AWS: regions, profile, role_arn, external_id, endpoint_url. "
        "GCP: projects, credentials_file (a path), api_endpoint.",
    )


class AccountUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any]


class AccountOut(BaseModel):
    id: UUID
    name: str
    provider: str
    config: dict[str, Any]
    status: str
    last_sync_at: datetime | None
    last_error: str | None
    created_at: datetime | None

    @classmethod
    def of(cls, a: Account, reveal: bool = False) -> AccountOut:
        """``reveal`` (admins only) shows secret settings; else they read ``set``."""
        from snoozeql.services.accounts import public_config

        return cls(
            id=a.id, name=a.name, provider=a.provider.value, config=public_config(a, reveal),
            status=a.status.value, last_sync_at=a.last_sync_at, last_error=a.last_error,
            created_at=a.created_at,
        )


class SyncOut(BaseModel):
    account_id: UUID
    account_name: str
    status: str
    found: int
    new: int
    changed: int
    missing: int
    seconds: float
    error: str | None

    @classmethod
    def of(cls, r: SyncReport) -> SyncOut:
        return cls(
            account_id=r.account_id, account_name=r.account_name, status=r.status.value,
            found=r.found, new=r.new, changed=r.changed, missing=r.missing,
            seconds=round(r.seconds, 3), error=r.error,
        )


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


def instance_json(i: Instance) -> dict[str, Any]:
    """What ``InstanceOut.of(i)`` serialises to, built directly (listings use it: no
    model validation per row). Encode with :func:`json_bytes`."""
    cost = i.hourly_cost_cents
    return {
        "id": i.id, "account_id": i.account_id, "provider": i.provider.value,
        "provider_id": i.provider_id, "kind": i.kind.value, "name": i.name,
        "engine": i.engine, "engine_version": i.engine_version,
        "instance_class": i.instance_class, "region": i.region, "status": i.status.value,
        "raw_status": i.raw_status, "tags": i.tags, "endpoint_host": i.endpoint_host,
        "endpoint_port": i.endpoint_port, "multi_az": i.multi_az, "node_count": i.node_count,
        "cluster_provider_id": i.cluster_provider_id,
        "hourly_cost_cents": float(cost) if cost is not None else None,
        "first_seen_at": i.first_seen_at, "last_seen_at": i.last_seen_at,
        "missing_since": i.missing_since, "last_error": i.last_error,
    }


def json_bytes(data: Any) -> bytes:
    """JSON as the response models serialise it (UUIDs as text, UTC times with ``Z``)."""
    return orjson.dumps(data, option=orjson.OPT_UTC_Z)


class InstanceDetail(InstanceOut):
    members: list[InstanceOut] = Field(default_factory=list)


class InstancePage(BaseModel):
    items: list[InstanceOut]
    next_cursor: str | None


class ActionOut(BaseModel):
    id: UUID
    at: datetime
    finished_at: datetime | None
    actor: str
    action: str
    instance_id: UUID | None
    instance_name: str | None
    provider: str | None
    reason: str
    result: str = Field(description="ok | failed | refused | dry_run | unknown, or pending "
                        "while the provider call runs")
    outcome: str = Field(description="the result as people read it, e.g. "
                         "'ok (confirmed after takeover)'")
    error: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, r: ActionRecord) -> ActionOut:
        fields = {k: v for k, v in r.__dict__.items() if k in cls.model_fields}
        return cls(**fields, outcome=r.outcome)


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


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=MAX_NAME_CHARS)
    role: str = "viewer"


class ApiKeyOut(BaseModel):
    id: UUID
    name: str
    role: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, r: ApiKeyRecord) -> ApiKeyOut:
        return cls(
            id=r.id, name=r.name, role=r.role.value, prefix=r.prefix, created_at=r.created_at,
            last_used_at=r.last_used_at, revoked_at=r.revoked_at,
        )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="Shown once; only its hash is stored.")
