"""Bodies of ``/api/v1/accounts``. Secrets never appear in a response model."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from snoozeql.domain.types import Account
from snoozeql.domain.validation import MAX_NAME_CHARS
from snoozeql.services.discovery import SyncReport


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
