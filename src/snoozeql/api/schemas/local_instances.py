"""Request and response bodies for local databases.

The password appears in exactly two places: the create request (when the caller
chooses one) and :class:`LocalInstanceCreated` (only when SnoozeQL generated it). Every
other body is built from :class:`~snoozeql.api.schemas.InstanceOut`, which has no
password field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from snoozeql.api.schemas.instances import InstanceOut
from snoozeql.domain.engines import RuntimeState
from snoozeql.domain.validation import MAX_NAME_CHARS


class LocalInstanceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(examples=["pg1"], description="a DNS label, unique among local databases",
                      max_length=MAX_NAME_CHARS)
    engine: str = Field(examples=["postgres"], description="postgres, mysql, mariadb, redis, "
                        "mongodb")
    version: str | None = Field(default=None, examples=["15"])
    image: str | None = Field(default=None, description="docker runtime only")
    tag: str | None = Field(default=None, description="docker runtime only")
    password: str | None = Field(
        default=None, description="default: generated and returned once, in the response"
    )
    port: int | None = Field(default=None, description="default: a free port")
    runtime: str = Field(default="native", examples=["native", "docker"])


class ExternalInstanceCreate(BaseModel):
    """Register a database SnoozeQL cannot discover: its metrics are pushed."""

    model_config = ConfigDict(extra="forbid")
    provider: Literal["external"]
    name: str = Field(examples=["billing-db"], description="a DNS label")
    engine: str = Field(examples=["postgres"])
    hourly_cost: float | None = Field(default=None, ge=0, description="USD per hour")
    tags: dict[str, str] = Field(default_factory=dict)


class LocalInstanceCreated(InstanceOut):
    status_detail: str | None
    password: str | None = Field(
        default=None,
        description="Only when SnoozeQL generated it; shown once, stored encrypted.",
    )


class LocalStatusOut(BaseModel):
    """The status measured now, with the evidence behind it."""

    instance: InstanceOut
    status: str
    detail: str | None
    process_alive: bool
    port_open: bool
    probe_ok: bool | None
    pid: int | None
    container_id: str | None
    location: str | None
    log_tail: list[str]

    @classmethod
    def of(cls, instance: InstanceOut, s: RuntimeState) -> LocalStatusOut:
        return cls(
            instance=instance, status=s.status.value, detail=s.detail,
            process_alive=s.process_alive, port_open=s.port_open, probe_ok=s.probe_ok,
            pid=s.pid, container_id=s.container_id, location=s.location,
            log_tail=list(s.log_tail),
        )


class LocalLogsOut(BaseModel):
    lines: list[str]


class LocalUrlOut(BaseModel):
    url: str = Field(description="holds the password")
