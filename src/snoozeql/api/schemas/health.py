"""Bodies of ``GET /healthz``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class HealthOut(BaseModel):
    status: Literal["ok"] = Field(examples=["ok"])
    version: str
    demo: bool = Field(description="true when serving `snoozeql demo`'s simulated fleet")


class DegradedOut(BaseModel):
    """The answer (503) when the store does not answer."""

    status: Literal["degraded"]
    store: Literal["unreachable"]
