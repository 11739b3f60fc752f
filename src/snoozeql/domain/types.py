"""Core value types shared by every layer.

Providers translate outside APIs into these types; services persist them; the API and
CLI render them. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID


class ProviderKind(StrEnum):
    """The known provider names. Each but ``external`` has a plugin
    (:mod:`snoozeql.providers.registry`); a new provider adds its name here."""

    AWS = "aws"
    GCP = "gcp"
    LOCAL = "local"
    DOCKER = "docker"
    # The simulated clouds of `snoozeql demo` (providers/demo/): never real databases.
    DEMO_AWS = "demo-aws"
    DEMO_GCP = "demo-gcp"
    EXTERNAL = "external"
    """A database registered by hand that SnoozeQL cannot discover, measure or control:
    its metrics are pushed, it gets recommendations and savings, start/stop are refused."""


class InstanceKind(StrEnum):
    INSTANCE = "instance"
    CLUSTER = "cluster"


class InstanceStatus(StrEnum):
    """Normalized status. The provider's own word is kept beside it as ``raw_status``."""

    RUNNING = "running"
    STOPPED = "stopped"
    STARTING = "starting"
    STOPPING = "stopping"
    PENDING = "pending"
    FAILED = "failed"
    UNKNOWN = "unknown"


class AccountStatus(StrEnum):
    UNKNOWN = "unknown"
    SYNCING = "syncing"
    CONNECTED = "connected"
    FAILED = "failed"


class LifecycleAction(StrEnum):
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    CREATE = "create"
    DELETE = "delete"


class ActionResult(StrEnum):
    OK = "ok"
    FAILED = "failed"
    REFUSED = "refused"
    DRY_RUN = "dry_run"
    # The intent, written before the provider call and completed after it.
    PENDING = "pending"
    # A dead holder's intent whose effect the instance's real state does not show.
    UNKNOWN = "unknown"


#: What ``details["resolution"]`` says of an intent a takeover found done.
CONFIRMED_AFTER_TAKEOVER = "confirmed after takeover"


class Role(StrEnum):
    """API key roles, each including the rights of the one before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return {"viewer": 0, "operator": 1, "admin": 2}[self.value]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True)
class Account:
    """A cloud account (or GCP set of projects) SnoozeQL discovers databases in.

    ``config`` holds provider settings (regions, profile, role ARN, endpoint URL,
    projects, credentials file *path*); never a secret.
    """

    id: UUID
    name: str
    provider: ProviderKind
    config: dict[str, Any]
    status: AccountStatus = AccountStatus.UNKNOWN
    last_sync_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    history_read_at: datetime | None = None


@dataclass(slots=True)
class DiscoveredInstance:
    """One database as a provider reports it, before it is stored.

    ``provider_id`` is the provider's stable identity (an ARN, ``project:instance``,
    a local instance name); together with ``provider`` it is the upsert key.
    Providers leave cost out: services/pricing.py prices what they report.
    """

    provider: ProviderKind
    provider_id: str
    name: str
    kind: InstanceKind
    engine: str
    engine_version: str | None
    instance_class: str | None
    region: str | None
    status: InstanceStatus
    raw_status: str | None
    tags: dict[str, str] = field(default_factory=dict)
    endpoint_host: str | None = None
    endpoint_port: int | None = None
    multi_az: bool = False
    node_count: int = 1
    cluster_provider_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Instance:
    """A stored inventory record."""

    id: UUID
    account_id: UUID | None
    provider: ProviderKind
    provider_id: str
    kind: InstanceKind
    name: str
    engine: str
    engine_version: str | None
    instance_class: str | None
    region: str | None
    status: InstanceStatus
    raw_status: str | None
    tags: dict[str, str]
    endpoint_host: str | None
    endpoint_port: int | None
    multi_az: bool
    node_count: int
    cluster_provider_id: str | None
    hourly_cost_cents: Decimal | None
    first_seen_at: datetime
    last_seen_at: datetime
    missing_since: datetime | None
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionOutcome:
    """What a provider reports after a lifecycle call.

    ``already`` means the provider did nothing because the instance already was in the
    requested state (stopped for a stop) or on its way there (stopping): a success,
    never a refusal.
    """

    status: InstanceStatus
    raw_status: str | None
    message: str | None = None
    already: bool = False


#: For start and stop: the states in which the action has already happened, and the
#: ones in which it is in progress. An action asked for in either is a success.
ALREADY_DONE = {"start": InstanceStatus.RUNNING, "stop": InstanceStatus.STOPPED}
IN_PROGRESS = {"start": InstanceStatus.STARTING, "stop": InstanceStatus.STOPPING}


def already_message(action: str, status: InstanceStatus) -> str | None:
    """``already stopped`` / ``already stopping (in progress)`` when ``action`` (start or
    stop) needs nothing done in ``status``; None otherwise."""
    if ALREADY_DONE.get(action) is status:
        return f"already {status.value}"
    if IN_PROGRESS.get(action) is status:
        return f"already {status.value} (in progress)"
    return None
