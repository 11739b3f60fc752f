"""Bodies of ``/api/v1/apikeys``. A key's secret appears once, in ``ApiKeyCreated``."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from snoozeql.domain.validation import MAX_NAME_CHARS
from snoozeql.store.apikeys import ApiKeyRecord


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

    @classmethod
    def of_new(cls, r: ApiKeyRecord, key: str) -> ApiKeyCreated:
        return cls(**ApiKeyOut.of(r).model_dump(), key=key)
