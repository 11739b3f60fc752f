"""Bodies of ``POST /api/v1/instances/bulk`` (start, stop or restart many instances)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from snoozeql.api.openapi import exactly_one_of
from snoozeql.services.bulk import BulkItemResult, Skipped


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
