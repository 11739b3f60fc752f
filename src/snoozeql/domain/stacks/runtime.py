"""What a stack's runtime object is and what apply and down need from a runtime.

Pure values: :class:`DesiredUnit` (one enabled instance as a runtime object),
:class:`LiveState` (its state measured now) and the :class:`StackRuntime` protocol the
local runtimes (``providers/local/runtimes.py``) implement.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from snoozeql.domain.stacks.merge import EffectiveService


@dataclass(frozen=True)
class LiveState:
    """A runtime object's state measured now.

    ``status``: running, starting, stopped, failed (not running while it was meant to),
    missing (its runtime object is gone), unknown (could not be measured), or, for an
    instance, ``not applied`` / ``disabled``."""

    status: str
    detail: str


UP_STATES = ("running", "starting")


@dataclass(frozen=True)
class DesiredUnit:
    """One enabled instance as a runtime object: what ``apply`` would bring up."""

    instance_id: UUID
    instance: str
    runtime_name: str
    service: EffectiveService
    engine: str | None
    runtime: str | None
    port: int | None
    image: str | None
    tag: str | None
    problem: str | None = None
    stack: str = ""
    # Plain images only: what the generic container runtime uses (no secret values).
    spec: Mapping[str, Any] | None = None

    @property
    def summary(self) -> dict[str, Any]:
        out = {
            "engine": self.engine, "runtime": self.runtime, "port": self.port,
            "image": self.image, "tag": self.tag, "template": self.service.template,
        }
        if self.spec is not None:
            out.update(self.spec)
        return out

    @property
    def digest(self) -> str:
        raw = json.dumps(self.summary, sort_keys=True).encode()
        return hashlib.sha256(raw).hexdigest()


class StackRuntime(Protocol):
    """What apply and down need from the runtimes; one object per runtime name."""

    def choose(self, engine: str | None) -> str | None:
        """The runtime that would run it ("native", "docker") or None if none can."""

    def up(self, unit: DesiredUnit, password: str) -> str:
        """Create and start; returns the measured status."""

    def start(self, runtime: str, name: str, password: str) -> str: ...

    def stop(self, runtime: str, name: str) -> str: ...

    def remove(self, runtime: str, name: str) -> str:
        """Delete the runtime object, keeping its data; returns where it was kept."""

    def status(self, runtime: str, name: str) -> LiveState:
        """Measured now; ``missing`` when the object is gone, ``failed`` when it is not
        running although it was meant to (killed, crashed)."""
