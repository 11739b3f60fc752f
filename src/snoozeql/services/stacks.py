"""Stacks and service instances: create, change, merge, export, plan, apply.

The store keeps each instance as a reference to its template plus one override per kind
(entries one row each); this service turns those rows into domain values, calls the pure
merge and export code, and checks the cross-instance rules inside the same transaction
as the write: names unique among live rows, no host port published twice by enabled
instances of one stack, and the container name ``<prefix>-<stack>-<instance>`` short
enough. Secret env values go to the encrypted secrets table and come back as ``***``.

``plan`` compares the desired state (the stack's enabled instances) with what ``apply``
last recorded; ``apply`` and ``down`` carry the plan out through a :class:`StackRuntime`
(by default :class:`LocalRuntimes`, the engine catalogue's native or Docker runtime, and
the generic container runtime for plain images).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from snoozeql.domain.errors import (
    ActionRefused,
    ConflictError,
    NotFoundError,
    SnoozeError,
    ValidationError,
)
from snoozeql.domain.stacks import (
    DEFAULT_PREFIX,
    ComposeExport,
    EffectiveService,
    MergeMode,
    Override,
    OverrideKind,
    Template,
    container_name,
    effective,
    parse_override,
    raise_on_clashes,
    to_compose,
    validate_instance_name,
    validate_stack_name,
)
from snoozeql.domain.stacks.compose import ConfigStyle, SecretMode
from snoozeql.domain.stacks.entries import EnvVar, VolumeMount
from snoozeql.domain.stacks.hostaccess import (
    bind_sources,
    check_bind_source,
    check_port_addresses,
    loopback_default,
)
from snoozeql.domain.stacks.names import suggest_name
from snoozeql.domain.validation import bounded_text
from snoozeql.services import audit
from snoozeql.services.context import Context
from snoozeql.services.datadir import check_local_dir
from snoozeql.services.secrets import SecretBox, generate_password
from snoozeql.services.templates import TemplateService
from snoozeql.store import secrets as secret_store
from snoozeql.store import stacks as store
from snoozeql.store.stacks import AppliedRecord, InstanceRecord, OverrideRow, StackRecord

SECRET_SCOPE = "stack_instance"
_ENV_PREFIX = "env:"
RUNTIME_PASSWORD = "runtime:password"


def stack_data_dir(settings: Any, stack: str) -> Path:
    """The stack's own data directory, where its bind-mount sources may live."""
    return Path(settings.data_dir).expanduser() / "stack-data" / stack


def check_host_paths(settings: Any, stack: str | None, volumes: Iterable[VolumeMount]) -> None:
    """ValidationError for a bind mount the host-path rules refuse (docs/stacks.md).

    ``stack`` None (a template) checks traversal and protected paths only; the stack's
    data directory is known once the template is used in a stack."""
    sources = bind_sources(volumes)
    if not sources:
        return
    allowed = [os.path.realpath(p) for p in getattr(settings, "allowed_host_paths", []) or []]
    base = os.path.realpath(stack_data_dir(settings, stack)) if stack else None
    for source in sources:
        resolved = None
        if not source.startswith("."):
            resolved = os.path.realpath(os.path.expanduser(source))
        check_bind_source(
            source, resolved=resolved, stack_dir=base or "",
            allowed=allowed if base else ["/"],
        )


def _same_time(stored: datetime, given: datetime | str) -> bool:
    """Whether ``stored`` falls in the ``given`` time at the precision it is written in
    (``2026-12-02T04:17`` matches the whole minute, ``...:05`` that second)."""
    from datetime import UTC, timedelta

    if isinstance(given, datetime):  # a datetime is exact
        when = given if given.tzinfo else given.replace(tzinfo=UTC)
        return stored.astimezone(UTC) == when.astimezone(UTC)
    text = given.strip()
    for suffix in ("UTC", "Z"):
        text = text.removesuffix(suffix).strip()
    text = text.replace(" ", "T")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"deleted_at {given!r} is not a time; write it like 2026-12-02T04:17:05 (UTC)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    clock = text.partition("T")[2].split("+")[0]
    if "." in clock:
        span = timedelta(microseconds=1)
    elif clock.count(":") >= 2:
        span = timedelta(seconds=1)
    elif clock:
        span = timedelta(minutes=1)
    else:
        span = timedelta(days=1)
    return when <= stored.astimezone(UTC) < when + span


def container_prefix(ctx: Context) -> str:
    """The container-name prefix: setting ``stack_prefix`` when present, else ``snoozeql``."""
    return str(getattr(ctx.settings, "stack_prefix", None) or DEFAULT_PREFIX)


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class StackView:
    id: UUID
    name: str
    description: str
    instance_count: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    last_applied_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "name": self.name, "description": self.description,
            "instance_count": self.instance_count, "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "deleted_at": self.deleted_at.isoformat() if self.deleted_at else None,
            "last_applied_at": (self.last_applied_at.isoformat()
                                if self.last_applied_at else None),
        }


@dataclass(frozen=True)
class LiveState:
    """A runtime object's state measured now.

    ``status``: running, starting, stopped, failed (not running while it was meant to),
    missing (its runtime object is gone), unknown (could not be measured), or, for an
    instance, ``not applied`` / ``disabled``."""

    status: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail}


UP_STATES = ("running", "starting")


@dataclass(frozen=True)
class InstanceView:
    """An instance as shown: overrides redacted, derived container name."""

    id: UUID
    stack: str
    name: str
    template: str
    description: str
    enabled: bool
    container_name: str
    override_count: int
    overrides: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime

    def to_dict(self, with_overrides: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": str(self.id), "stack": self.stack, "name": self.name,
            "template": self.template, "description": self.description,
            "enabled": self.enabled, "container_name": self.container_name,
            "override_count": self.override_count,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
        if with_overrides:
            out["overrides"] = self.overrides
        return out


# "stop" is a step of down, never a plan item
PlanAction = Literal["create", "start", "update", "remove", "unchanged", "refused", "stop"]
# progress(event, data): ("plan", [PlanItem]), ("begin", PlanItem), ("end", StepResult)
Progress = Callable[[str, Any], None]


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


@dataclass(frozen=True)
class PlanItem:
    action: PlanAction
    instance: str
    runtime_name: str
    runtime: str | None
    reason: str
    changes: dict[str, Any] = field(default_factory=dict)
    # the runtime object's state measured while planning (None: nothing applied yet)
    state: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action, "instance": self.instance,
            "runtime_name": self.runtime_name, "runtime": self.runtime,
            "reason": self.reason, "changes": self.changes, "state": self.state,
        }


@dataclass(frozen=True)
class Plan:
    stack: str
    items: list[PlanItem]

    @property
    def changes(self) -> int:
        return sum(1 for i in self.items if i.action in ("create", "start", "update", "remove"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack, "changes": self.changes,
            "items": [i.to_dict() for i in self.items],
        }


@dataclass(frozen=True)
class StepResult:
    action: str
    instance: str
    runtime_name: str
    ok: bool
    status: str | None
    detail: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ------------------------------------------------------------------------ runtimes


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


class LocalRuntimes:
    """Database instances through the engine catalogue: natively when the engine's
    server binaries are installed, else as a Docker container of the official image.

    Plain images (templates without an ``engine``) run through the generic container
    runtime (:mod:`snoozeql.providers.containers`, runtime ``"container"``): one Docker
    container per instance, host networking only. ``choose(None)`` checks that a Docker
    engine answers, so ``plan`` refuses such units up front when none does.
    """

    def __init__(self, ctx: Context) -> None:
        try:
            from snoozeql.providers import docker as docker_provider
            from snoozeql.providers import local as local_provider
        except ImportError as exc:  # pragma: no cover - depends on the build
            raise ActionRefused(
                f"apply needs the local runtimes, which cannot be loaded here ({exc.name}); "
                "export the stack and run it with Compose instead (snoozeql stacks export)"
            ) from None
        self._local = local_provider
        self._native = local_provider.NativeRuntime(ctx.settings)
        self._docker_cls = docker_provider.DockerRuntime
        self._docker: Any = None
        self._containers: Any = None
        self._settings = ctx.settings
        self._ctx = ctx

    def _generic(self) -> Any:
        if self._containers is None:
            from snoozeql.providers.containers import ContainerRuntime

            self._containers = ContainerRuntime(self._settings)
        return self._containers

    def _rt(self, runtime: str) -> Any:
        if runtime == "native":
            check_local_dir(self._ctx, claim=True)  # never another store's database files
            return self._native
        if self._docker is None:
            self._docker = self._docker_cls(self._settings)
        return self._docker

    def choose(self, engine: str | None) -> str | None:
        if engine is None:
            from snoozeql.providers.containers import RUNTIME

            self._generic().check()  # ProviderError (a clear reason) when Docker is absent
            return RUNTIME
        from snoozeql.domain.engines import parse_engine

        eng = parse_engine(engine)
        return "native" if self._local.installed_versions(eng) else "docker"

    def up(self, unit: DesiredUnit, password: str) -> str:
        from snoozeql.domain.engines import LocalDatabaseSpec
        from snoozeql.providers import containers

        if unit.runtime == containers.RUNTIME:
            cspec = containers.ContainerSpec(unit.runtime_name, unit.stack, unit.instance,
                                             unit.service)
            return str(self._generic().create(cspec).status.value)
        assert unit.engine and unit.runtime and unit.port
        spec = LocalDatabaseSpec.build(
            name=unit.runtime_name, engine=unit.engine, port=unit.port, runtime=unit.runtime,
            image=unit.image if unit.runtime == "docker" else None,
            tag=unit.tag if unit.runtime == "docker" else None,
        )
        state = self._rt(unit.runtime).create(spec, password)
        return str(state.status.value)

    def start(self, runtime: str, name: str, password: str) -> str:
        if runtime == "container":
            return str(self._generic().start(name).status.value)
        return str(self._rt(runtime).start(name, password).status.value)

    def stop(self, runtime: str, name: str) -> str:
        if runtime == "container":
            return str(self._generic().stop(name).status.value)
        return str(self._rt(runtime).stop(name).status.value)

    def status(self, runtime: str, name: str) -> LiveState:
        try:
            if runtime == "container":
                cstate = self._generic().status(name)
                return LiveState(str(cstate.status.value), cstate.detail)
            state = self._rt(runtime).status(name, None)
        except NotFoundError:
            return LiveState("missing", f"{name} no longer exists in the {runtime} runtime "
                                        "(removed outside SnoozeQL)")
        except SnoozeError as exc:
            return LiveState("unknown", exc.message)
        return LiveState(str(state.status.value), state.detail or str(state.status.value))

    def remove(self, runtime: str, name: str) -> str:
        if runtime == "container":
            volumes = self._generic().delete(name, keep_volumes=True)
            return "removed" + (f"; volumes kept: {', '.join(volumes)}" if volumes else "")
        kept = self._rt(runtime).delete(name, keep_data=True)
        return f"removed; data kept in {kept}" if kept else "removed"


# ------------------------------------------------------------------------- service


def _entry_rows(o: Override) -> list[dict[str, Any]]:
    """The rows one override is stored as (secret values are blanked by the caller)."""
    data = o.to_dict(reveal_secrets=True)["entries"]
    if o.kind is OverrideKind.HEALTHCHECK:
        return [{"field": k, "value": v} for k, v in data.items()]
    if o.kind is OverrideKind.DOMAINS:
        return [{"domain": d} for d in data]
    return list(data)


class StackService:
    def __init__(
        self, ctx: Context, runtime: StackRuntime | None = None, box: SecretBox | None = None
    ) -> None:
        self.ctx = ctx
        self._runtime = runtime
        self._box = box
        self.prefix = container_prefix(ctx)
        self.templates = TemplateService(ctx)

    @property
    def box(self) -> SecretBox:
        if self._box is None:
            self._box = SecretBox(self.ctx.settings)
            self.templates._box = self._box
        return self._box

    @property
    def runtime(self) -> StackRuntime:
        if self._runtime is None:
            self._runtime = LocalRuntimes(self.ctx)
        return self._runtime

    # ------------------------------------------------------------------ stacks

    def _stack(self, conn: sa.Connection, name: str) -> StackRecord:
        found = store.stack_by_name(conn, name)
        if found is None:
            deleted = store.stack_latest_deleted(conn, name)
            if deleted is not None:
                raise NotFoundError(
                    f"stack {name!r} was deleted; restore it first "
                    f"(snoozeql stacks restore {name})"
                )
            raise NotFoundError(f"no stack {name!r}; see `snoozeql stacks list`")
        return found

    def _stack_view(self, conn: sa.Connection, s: StackRecord) -> StackView:
        count = store.instance_counts(conn, [s.id]).get(s.id, 0)
        last = store.applied_last(conn, [s.id]).get(s.id)
        return StackView(s.id, s.name, s.description, count, s.created_at, s.updated_at,
                         s.deleted_at, last)

    def _audit(self, conn: sa.Connection, actor: str, action: str, kind: str,
               object_id: UUID, name: str, before: Any = None, after: Any = None) -> None:
        """One audit entry in the caller's transaction (services/audit.py redacts)."""
        audit.record(conn, at=self.ctx.now(), actor=actor, action=action, kind=kind,
                     object_id=object_id, name=name, before=before, after=after)

    @staticmethod
    def _stack_json(v: StackView) -> dict[str, Any]:
        return {"name": v.name, "description": v.description,
                "deleted": v.deleted_at is not None}

    @staticmethod
    def _instance_json(v: InstanceView) -> dict[str, Any]:
        return {"stack": v.stack, "name": v.name, "template": v.template,
                "description": v.description, "enabled": v.enabled,
                "overrides": v.overrides}

    def create_stack(self, name: str, description: str = "", *, actor: str = "cli"
                     ) -> StackView:
        validate_stack_name(name, self.prefix)
        bounded_text(description or "", "description")
        try:
            with self.ctx.engine.begin() as conn:
                if store.stack_by_name(conn, name):
                    raise ConflictError(self._stack_taken(name))
                sid = store.stack_insert(conn, name, description or "", self.ctx.now())
                view = self._stack_view(conn, store.stack_get(conn, sid))  # type: ignore[arg-type]
                self._audit(conn, actor, "create", "stack", sid, name,
                            after=self._stack_json(view))
                return view
        except IntegrityError:
            raise ConflictError(self._stack_taken(name)) from None

    @staticmethod
    def _stack_taken(name: str) -> str:
        return (
            f"a stack named {name!r} already exists; pick another name or delete it first "
            f"(snoozeql stacks delete {name})"
        )

    def list_stacks(self, include_deleted: bool = False) -> list[StackView]:
        with self.ctx.engine.connect() as conn:
            rows = store.stack_list(conn, include_deleted)
            counts = store.instance_counts(conn, [s.id for s in rows])
            last = store.applied_last(conn, [s.id for s in rows])
        return [
            StackView(s.id, s.name, s.description, counts.get(s.id, 0), s.created_at,
                      s.updated_at, s.deleted_at, last.get(s.id))
            for s in rows
        ]

    def list_deleted(self) -> list[StackView]:
        """The soft-deleted stacks, most recently deleted first (each restorable)."""
        views = [v for v in self.list_stacks(include_deleted=True) if v.deleted_at]
        return sorted(views, key=lambda v: v.deleted_at or v.created_at, reverse=True)

    def stack_states(self, stack_name: str) -> tuple[str, dict[str, LiveState]]:
        """The stack's overall state (up, partly up, down, empty) and each instance's."""
        states = self.live_states(stack_name)
        return self.overall(states), states

    def get_stack(self, name: str) -> StackView:
        with self.ctx.engine.connect() as conn:
            return self._stack_view(conn, self._stack(conn, name))

    def update_stack(self, name: str, description: str, *, actor: str = "cli") -> StackView:
        bounded_text(description or "", "description")
        with self.ctx.engine.begin() as conn:
            s = self._stack(conn, name)
            before = self._stack_view(conn, s)
            store.stack_update(conn, s.id, self.ctx.now(), description=description or "")
            view = self._stack_view(conn, store.stack_get(conn, s.id))  # type: ignore[arg-type]
            self._audit(conn, actor, "update", "stack", s.id, s.name,
                        self._stack_json(before), self._stack_json(view))
            return view

    def delete_stack(self, name: str, *, down: bool = False, actor: str = "cli"
                     ) -> StackView:
        """Soft delete: the stack and its instances disappear from every view; restorable.

        ``down`` first stops what apply brought up (a failed stop keeps the stack)."""
        if down:
            failed = [s for s in self.down(name) if not s.ok]
            if failed:
                raise ActionRefused(
                    "not deleted: could not stop " + ", ".join(
                        f"{s.runtime_name} ({s.detail})" for s in failed))
        with self.ctx.engine.begin() as conn:
            s = self._stack(conn, name)
            before = self._stack_view(conn, s)
            store.stack_update(conn, s.id, self.ctx.now(), deleted_at=self.ctx.now())
            view = self._stack_view(conn, store.stack_get(conn, s.id))  # type: ignore[arg-type]
            self._audit(conn, actor, "delete", "stack", s.id, s.name,
                        self._stack_json(before), self._stack_json(view))
            return view

    def delete_stack_preview(self, name: str) -> dict[str, Any]:
        """What deleting the stack takes away: its instances (with their overrides and
        secrets) and the runtime objects apply brought up, measured now."""
        with self.ctx.engine.connect() as conn:
            s = self._stack(conn, name)
            records = store.instance_list(conn, s.id)
            overrides = self._load_overrides(conn, [r.id for r in records])
            applied = store.applied_list(conn, s.id)
        objects = []
        for a in applied:
            live = self.runtime.status(a.runtime, a.runtime_name) if a.state == "running" \
                else LiveState("stopped", "stopped by down")
            objects.append({"runtime_name": a.runtime_name, "runtime": a.runtime,
                            "instance": a.instance_name, "state": live.status})
        running = [o["runtime_name"] for o in objects if o["state"] in UP_STATES]
        return {
            "stack": s.name,
            "instances": [
                {"name": r.name, "template": r.template, "enabled": r.enabled,
                 "override_count": sum(o.entry_count for o in overrides[r.id].values())}
                for r in records
            ],
            "applied": objects,
            "running": running,
            "note": "the delete is soft: the stack can be restored from the deleted list "
                    "(snoozeql stacks restore NAME --id ID); what still runs keeps running "
                    "unless it is taken down first (--down)",
        }

    def _pick_deleted(self, conn: sa.Connection, name: str, stack_id: UUID | str | None,
                      deleted_at: datetime | str | None) -> StackRecord:
        """The deleted stack to restore: by id, by deletion time, or the only one."""
        found = store.stack_deleted(conn, name)
        listing = "; ".join(f"id {c.id} deleted {c.deleted_at:%Y-%m-%d %H:%M:%S} UTC"
                            for c in found[:10])
        if not found:
            raise NotFoundError(f"no deleted stack {name!r} to restore; see "
                                "`snoozeql stacks list --deleted`")
        if stack_id is not None:
            try:
                wanted = stack_id if isinstance(stack_id, UUID) else UUID(str(stack_id))
            except ValueError:
                raise ValidationError(f"id {stack_id!r} is not a stack id (a UUID)") from None
            match = [c for c in found if c.id == wanted]
            if not match:
                raise NotFoundError(f"no deleted stack {name!r} has id {wanted}; deleted ones: "
                                    f"{listing}")
            return match[0]
        if deleted_at is not None:
            match = [c for c in found if c.deleted_at and _same_time(c.deleted_at, deleted_at)]
            if not match:
                raise NotFoundError(f"no stack {name!r} was deleted at {deleted_at}; deleted "
                                    f"ones: {listing}")
            if len(match) > 1:
                raise ConflictError(
                    f"{len(match)} stacks {name!r} were deleted at {deleted_at}; give the "
                    f"time to the second or pick one with --id: {listing}")
            return match[0]
        if len(found) > 1:
            raise ConflictError(
                f"{len(found)} deleted stacks are named {name!r}; pick one with --id ID or "
                f"--deleted-at TIME (API: id or deleted_at): {listing}")
        return found[0]

    def restore_stack(self, name: str, *, stack_id: UUID | str | None = None,
                      deleted_at: datetime | str | None = None, actor: str = "cli"
                      ) -> StackView:
        """Bring a deleted stack back with its instances: the one with ``stack_id``, the
        one deleted at ``deleted_at``, or the only deleted stack of that name (several
        without either is an error listing them)."""
        try:
            with self.ctx.engine.begin() as conn:
                if store.stack_by_name(conn, name):
                    raise ConflictError(
                        f"a live stack named {name!r} exists; delete it (or rename it) "
                        "before restoring a deleted one"
                    )
                s = self._pick_deleted(conn, name, stack_id, deleted_at)
                store.stack_update(conn, s.id, self.ctx.now(), deleted_at=None)
                view = self._stack_view(conn, store.stack_get(conn, s.id))  # type: ignore[arg-type]
                self._audit(conn, actor, "restore", "stack", s.id, s.name,
                            {**self._stack_json(view), "deleted": True}, self._stack_json(view))
                return view
        except IntegrityError:
            raise ConflictError(f"a live stack named {name!r} exists") from None

    # --------------------------------------------------------------- overrides io

    def _load_overrides(
        self, conn: sa.Connection, instance_ids: list[UUID]
    ) -> dict[UUID, dict[OverrideKind, Override]]:
        rows = store.overrides_for(conn, instance_ids)
        out: dict[UUID, dict[OverrideKind, Override]] = {}
        for iid, overrides in rows.items():
            secrets: dict[str, str] | None = None
            parsed: dict[OverrideKind, Override] = {}
            for row in overrides:
                if row.kind == OverrideKind.ENV_VARS.value and any(
                    e.get("stored") for e in row.entries
                ):
                    if secrets is None:
                        secrets = secret_store.get_all(conn, SECRET_SCOPE, iid)
                parsed[OverrideKind(row.kind)] = self._row_to_override(row, secrets or {})
            out[iid] = parsed
        return out

    def _row_to_override(self, row: OverrideRow, secrets: Mapping[str, str]) -> Override:
        entries: Any
        if row.kind == OverrideKind.HEALTHCHECK.value:
            entries = {e["field"]: e["value"] for e in row.entries}
        elif row.kind == OverrideKind.DOMAINS.value:
            entries = [e["domain"] for e in row.entries]
        elif row.kind == OverrideKind.ENV_VARS.value:
            entries = []
            for e in row.entries:
                e = dict(e)
                if e.pop("stored", False):
                    token = secrets.get(_ENV_PREFIX + e["key"])
                    e["value"] = self.box.decrypt(token) if token is not None else None
                entries.append(e)
        else:
            entries = row.entries
        return parse_override(row.kind, {"mode": row.mode, "entries": entries})

    def _write_override(self, conn: sa.Connection, iid: UUID, o: Override) -> None:
        now = self.ctx.now()
        rows = _entry_rows(o)
        if o.kind is OverrideKind.ENV_VARS:
            for name in secret_store.get_all(conn, SECRET_SCOPE, iid):
                if name.startswith(_ENV_PREFIX):
                    secret_store.delete(conn, SECRET_SCOPE, iid, name)
            assert isinstance(o.entries, tuple)
            for row, entry in zip(rows, o.entries, strict=True):
                if entry.secret and entry.value is not None:
                    secret_store.put(conn, SECRET_SCOPE, iid, _ENV_PREFIX + entry.key,
                                     self.box.encrypt(entry.value), now)
                    row["value"] = None
                    row["stored"] = True
        store.override_put(conn, iid, o.kind.value, o.mode.value, rows, now)

    def _host_rules(self, stack: str, o: Override, admin: bool) -> Override:
        """The override with 127.0.0.1 for ports without an address, after checking
        what it may reach on the host: a public address needs ``admin``; bind mounts
        stay in the stack's data directory or the allowed host paths (every role)."""
        if o.kind is OverrideKind.PORTS:
            o = Override(o.kind, loopback_default(o.entries), o.mode)  # type: ignore[arg-type]
            check_port_addresses(o.entries, admin)  # type: ignore[arg-type]
        elif o.kind is OverrideKind.VOLUMES:
            check_host_paths(self.ctx.settings, stack, o.entries)  # type: ignore[arg-type]
        return o

    # --------------------------------------------------------------- instances

    def _template(self, conn: sa.Connection, name: str) -> Template:
        t = self.templates.find(conn, name)
        if t is None:
            raise NotFoundError(
                f"template {name!r} no longer exists; add it again (snoozeql templates add)"
            )
        return t

    def _instance(self, conn: sa.Connection, stack: StackRecord, name: str) -> InstanceRecord:
        found = store.instance_by_name(conn, stack.id, name)
        if found is None:
            raise NotFoundError(f"stack {stack.name!r} has no instance {name!r}")
        return found

    def _view(
        self, stack: StackRecord, r: InstanceRecord, overrides: Mapping[OverrideKind, Override]
    ) -> InstanceView:
        ordered = [overrides[k] for k in OverrideKind if k in overrides]
        return InstanceView(
            id=r.id, stack=stack.name, name=r.name, template=r.template,
            description=r.description, enabled=r.enabled,
            container_name=f"{self.prefix}-{stack.name}-{r.name}",
            override_count=sum(o.entry_count for o in ordered),
            overrides=[o.redacted() for o in ordered], created_at=r.created_at,
            updated_at=r.updated_at,
        )

    def _taken(self, stack: str, name: str) -> str:
        return (
            f"stack {stack!r} already has an instance named {name!r}; choose another name "
            f"(for example {suggest_name(name + '-2')!r}), rename the existing one "
            f"(snoozeql stacks instances rename {stack} {name} NEW) or delete it first"
        )

    def _check_clashes(
        self,
        conn: sa.Connection,
        stack: StackRecord,
        candidate: tuple[UUID | None, str, EffectiveService] | None,
    ) -> None:
        """409 if the stack's enabled instances (with ``candidate`` in place of its own
        stored state, or added) would publish one host port twice."""
        records = store.instance_list(conn, stack.id, enabled=True)
        cand_id = candidate[0] if candidate else None
        others = [r for r in records if r.id != cand_id]
        overrides = self._load_overrides(conn, [r.id for r in others])
        pairs = []
        for r in others:
            svc = effective(self._template(conn, r.template), overrides[r.id])
            pairs.append((r.name, svc.ports))
        if candidate is not None:
            pairs.append((candidate[1], candidate[2].ports))
        raise_on_clashes(pairs)

    def create_instance(
        self,
        stack_name: str,
        name: str,
        template: str,
        *,
        description: str = "",
        enabled: bool = True,
        overrides: Mapping[str, Any] | None = None,
        actor: str = "cli",
        admin: bool = True,
    ) -> InstanceView:
        """Create an instance from a template, optionally with overrides.

        Secret env vars the template leaves without a value (a database password) get a
        generated value, stored encrypted as an env_vars override. ``admin`` False (an
        operator's API key) may not publish ports beyond 127.0.0.1.
        """
        bounded_text(description or "", "description")
        with self.ctx.engine.connect() as conn:
            stack = self._stack(conn, stack_name)
            validate_instance_name(name, stack.name, self.prefix)
            tmpl = self.templates.find(conn, template)
        if tmpl is None:
            known = ", ".join(t.name for t in self.templates.list())
            raise ValidationError(f"unknown template {template!r}; templates: {known}")
        parsed = {OverrideKind.parse(k): parse_override(k, v)
                  for k, v in (overrides or {}).items()}
        parsed = {k: self._host_rules(stack.name, o, admin) for k, o in parsed.items()}
        parsed = self._with_generated_secrets(tmpl, parsed)
        svc = effective(tmpl, parsed.values())
        check_host_paths(self.ctx.settings, stack.name, svc.volumes)
        try:
            with self.ctx.engine.begin() as conn:
                stack = self._stack(conn, stack_name)
                if store.instance_by_name(conn, stack.id, name):
                    raise ConflictError(self._taken(stack.name, name))
                if enabled:
                    self._check_clashes(conn, stack, (None, name, svc))
                iid = store.instance_insert(
                    conn, stack.id, name, tmpl.name, description or "", enabled, self.ctx.now()
                )
                for o in parsed.values():
                    self._write_override(conn, iid, o)
                view = self._view(stack, store.instance_get(conn, iid), parsed)  # type: ignore[arg-type]
                self._audit(conn, actor, "create", "stack_instance", iid,
                            f"{stack.name}/{name}", after=self._instance_json(view))
                return view
        except IntegrityError:
            raise ConflictError(self._taken(stack_name, name)) from None

    @staticmethod
    def _secret_as_declared(
        tmpl: Template, parsed: dict[OverrideKind, Override]
    ) -> dict[OverrideKind, Override]:
        """``parsed`` with env_vars entries for the template's secret keys marked secret."""
        declared = {e.key for e in tmpl.environment if e.secret}
        current = parsed.get(OverrideKind.ENV_VARS)
        if current is None or not declared:
            return parsed
        entries = tuple(
            EnvVar(e.key, e.value, secret=True)
            if e.key in declared and e.value is not None and not e.secret else e
            for e in current.entries  # type: ignore[union-attr]
        )
        return {**parsed, OverrideKind.ENV_VARS: Override(OverrideKind.ENV_VARS, entries,
                                                          current.mode)}

    @staticmethod
    def _with_generated_secrets(
        tmpl: Template,
        parsed: dict[OverrideKind, Override],
        previous: Override | None = None,
    ) -> dict[OverrideKind, Override]:
        """``parsed`` with the instance's generated secrets in its env_vars override.

        A secret env var the template leaves without a value (a database password) is
        the instance's own: every env_vars override, in merge or replace mode, keeps it
        (its value from ``previous``, the override being replaced, else a new one)
        unless the new override names that key itself, which is how a user sets or
        removes it explicitly.

        A value given for a key the template declares secret is kept secret (encrypted,
        shown as ``***``) even when the entry does not say ``secret``.
        """
        parsed = StackService._secret_as_declared(tmpl, parsed)
        missing = [e.key for e in tmpl.environment if e.secret and e.value is None]
        if not missing:
            return parsed
        current = parsed.get(OverrideKind.ENV_VARS)
        entries = list(current.entries) if current is not None else []  # type: ignore[arg-type]
        given = {e.key for e in entries}
        before: dict[str, str | None] = {}
        if previous is not None:
            before = {e.key: e.value for e in previous.entries}  # type: ignore[union-attr]
        for key in missing:
            if key not in given:
                entries.append(EnvVar(key, before.get(key) or generate_password(), secret=True))
        out = dict(parsed)
        mode = current.mode if current is not None else MergeMode.MERGE
        out[OverrideKind.ENV_VARS] = Override(OverrideKind.ENV_VARS, tuple(entries), mode)
        return out

    def list_instances(
        self, stack_name: str, *, search: str | None = None, enabled: bool | None = None
    ) -> list[InstanceView]:
        with self.ctx.engine.connect() as conn:
            stack = self._stack(conn, stack_name)
            records = store.instance_list(conn, stack.id, search=search, enabled=enabled)
            overrides = self._load_overrides(conn, [r.id for r in records])
        return [self._view(stack, r, overrides[r.id]) for r in records]

    def get_instance(self, stack_name: str, name: str) -> InstanceView:
        with self.ctx.engine.connect() as conn:
            stack = self._stack(conn, stack_name)
            r = self._instance(conn, stack, name)
            return self._view(stack, r, self._load_overrides(conn, [r.id])[r.id])

    def update_instance(
        self,
        stack_name: str,
        name: str,
        *,
        description: str | None = None,
        enabled: bool | None = None,
        actor: str = "cli",
    ) -> InstanceView:
        bounded_text(description or "", "description")
        with self.ctx.engine.begin() as conn:
            stack = self._stack(conn, stack_name)
            r = self._instance(conn, stack, name)
            overrides = self._load_overrides(conn, [r.id])[r.id]
            before = self._instance_json(self._view(stack, r, overrides))
            values: dict[str, Any] = {}
            if description is not None:
                values["description"] = description
            if enabled is not None:
                if enabled and not r.enabled:
                    svc = effective(self._template(conn, r.template), overrides)
                    self._check_clashes(conn, stack, (r.id, r.name, svc))
                values["enabled"] = enabled
            if values:
                store.instance_update(conn, r.id, self.ctx.now(), **values)
            view = self._view(stack, store.instance_get(conn, r.id), overrides)  # type: ignore[arg-type]
            if values:
                self._audit(conn, actor, "update", "stack_instance", r.id,
                            f"{stack.name}/{r.name}", before, self._instance_json(view))
            return view

    def delete_instance(self, stack_name: str, name: str, *, actor: str = "cli") -> None:
        """Soft delete; the name is free again at once (uniqueness ignores deleted rows)."""
        with self.ctx.engine.begin() as conn:
            stack = self._stack(conn, stack_name)
            r = self._instance(conn, stack, name)
            before = self._view(stack, r, self._load_overrides(conn, [r.id])[r.id])
            store.instance_update(conn, r.id, self.ctx.now(), deleted_at=self.ctx.now())
            self._audit(conn, actor, "delete", "stack_instance", r.id, f"{stack.name}/{r.name}",
                        before=self._instance_json(before))

    def delete_preview(self, stack_name: str, name: str) -> dict[str, Any]:
        """What a delete would remove: the instance, its overrides and secrets, and what
        the next apply would take down."""
        with self.ctx.engine.connect() as conn:
            stack = self._stack(conn, stack_name)
            r = self._instance(conn, stack, name)
            overrides = self._load_overrides(conn, [r.id])[r.id]
            svc = effective(self._template(conn, r.template), overrides)
            secret_names = [
                n.removeprefix(_ENV_PREFIX)
                for n in secret_store.get_all(conn, SECRET_SCOPE, r.id)
                if n.startswith(_ENV_PREFIX)
            ]
            applied = [a for a in store.applied_list(conn, stack.id) if a.instance_id == r.id]
        view = self._view(stack, r, overrides)
        return {
            "stack": stack.name,
            "instance": r.name,
            "container_name": view.container_name,
            "enabled": r.enabled,
            "overrides": {o["kind"]: o_count for o, o_count in zip(
                view.overrides,
                [overrides[k].entry_count for k in OverrideKind if k in overrides],
                strict=True,
            )},
            "override_count": view.override_count,
            "secret_env_vars": sorted(secret_names),
            "volumes": [f"{r.name}_{v.source}" for v in svc.volumes
                        if v.type == "volume" and v.source],
            "applied": [
                {"runtime_name": a.runtime_name, "runtime": a.runtime, "state": a.state}
                for a in applied
            ],
            "note": "the delete is soft: the name can be reused at once; the next "
                    "`stacks apply` removes what is listed under applied (keeping its data)",
        }

    def duplicate_instance(
        self,
        stack_name: str,
        name: str,
        new_name: str | None = None,
        *,
        enabled: bool | None = None,
        actor: str = "cli",
    ) -> InstanceView:
        """Copy the instance and every override (secrets included) in one transaction."""
        target = new_name or f"{name}-copy"
        try:
            with self.ctx.engine.begin() as conn:
                stack = self._stack(conn, stack_name)
                src = self._instance(conn, stack, name)
                validate_instance_name(target, stack.name, self.prefix)
                if store.instance_by_name(conn, stack.id, target):
                    raise ConflictError(self._taken(stack.name, target))
                overrides = self._load_overrides(conn, [src.id])[src.id]
                on = src.enabled if enabled is None else enabled
                if on:
                    svc = effective(self._template(conn, src.template), overrides)
                    try:
                        self._check_clashes(conn, stack, (None, target, svc))
                    except ConflictError as exc:
                        raise ConflictError(
                            f"{exc.message}; or duplicate it disabled (enabled=false, "
                            "--disabled) and then change its ports"
                        ) from None
                iid = store.instance_insert(
                    conn, stack.id, target, src.template, src.description, on, self.ctx.now()
                )
                for o in overrides.values():
                    self._write_override(conn, iid, o)
                view = self._view(stack, store.instance_get(conn, iid), overrides)  # type: ignore[arg-type]
                self._audit(conn, actor, "create", "stack_instance", iid,
                            f"{stack.name}/{target}",
                            after={**self._instance_json(view), "copied_from": src.name})
                return view
        except IntegrityError:
            raise ConflictError(self._taken(stack_name, target)) from None

    def rename_instance(self, stack_name: str, name: str, new_name: str, *,
                        actor: str = "cli") -> InstanceView:
        try:
            with self.ctx.engine.begin() as conn:
                stack = self._stack(conn, stack_name)
                r = self._instance(conn, stack, name)
                validate_instance_name(new_name, stack.name, self.prefix)
                if new_name != name:
                    if store.instance_by_name(conn, stack.id, new_name):
                        raise ConflictError(self._taken(stack.name, new_name))
                    store.instance_update(conn, r.id, self.ctx.now(), name=new_name)
                    self._audit(conn, actor, "update", "stack_instance", r.id,
                                f"{stack.name}/{new_name}", {"name": name}, {"name": new_name})
                overrides = self._load_overrides(conn, [r.id])[r.id]
                return self._view(stack, store.instance_get(conn, r.id), overrides)  # type: ignore[arg-type]
        except IntegrityError:
            raise ConflictError(self._taken(stack_name, new_name)) from None

    def put_override(
        self, stack_name: str, name: str, kind: str, body: Mapping[str, Any], *,
        actor: str = "cli", admin: bool = True,
    ) -> InstanceView:
        """Replace the instance's override of one kind (``mode`` merge or replace).

        ``entries`` is required: removing every entry of a kind is an explicit
        ``{"mode": "replace", "entries": []}``, never the result of an empty value."""
        if isinstance(body, Mapping) and body.get("entries") is None:
            raise ValidationError(
                f"{kind} override: entries is required; to remove every {kind} entry send "
                '{"mode": "replace", "entries": []} (CLI: --clear)'
            )
        o = parse_override(kind, body)
        with self.ctx.engine.begin() as conn:
            stack = self._stack(conn, stack_name)
            o = self._host_rules(stack.name, o, admin)
            r = self._instance(conn, stack, name)
            overrides = self._load_overrides(conn, [r.id])[r.id]
            old = overrides.get(o.kind)
            if o.kind is OverrideKind.ENV_VARS:
                o = self._with_generated_secrets(
                    self._template(conn, r.template), {o.kind: o}, old)[o.kind]
            self._audit(conn, actor, "update" if old else "create", "stack_override", r.id,
                        f"{stack.name}/{r.name}/{o.kind.value}",
                        old.redacted() if old else None, o.redacted())
            overrides[o.kind] = o
            svc = effective(self._template(conn, r.template), overrides)
            if r.enabled and o.kind is OverrideKind.PORTS:
                self._check_clashes(conn, stack, (r.id, r.name, svc))
            self._write_override(conn, r.id, o)
            store.instance_update(conn, r.id, self.ctx.now())
            return self._view(stack, store.instance_get(conn, r.id), overrides)  # type: ignore[arg-type]

    def delete_override(self, stack_name: str, name: str, kind: str, *, actor: str = "cli"
                        ) -> InstanceView:
        k = OverrideKind.parse(kind)
        with self.ctx.engine.begin() as conn:
            stack = self._stack(conn, stack_name)
            r = self._instance(conn, stack, name)
            overrides = self._load_overrides(conn, [r.id])[r.id]
            old = overrides.pop(k, None)
            tmpl = self._template(conn, r.template)
            kept = None
            if k is OverrideKind.ENV_VARS:
                # the generated secrets are the instance's own: they stay
                kept = self._with_generated_secrets(tmpl, {}, old).get(k)
            if old is not None:
                self._audit(conn, actor, "delete", "stack_override", r.id,
                            f"{stack.name}/{r.name}/{k.value}", before=old.redacted(),
                            after=kept.redacted() if kept is not None else None)
            svc = effective(tmpl, overrides)
            if r.enabled and k is OverrideKind.PORTS:
                self._check_clashes(conn, stack, (r.id, r.name, svc))
            if kept is not None:
                self._write_override(conn, r.id, kept)
                overrides[k] = kept
            else:
                store.override_delete(conn, r.id, k.value)
                if k is OverrideKind.ENV_VARS:
                    for n in secret_store.get_all(conn, SECRET_SCOPE, r.id):
                        if n.startswith(_ENV_PREFIX):
                            secret_store.delete(conn, SECRET_SCOPE, r.id, n)
            return self._view(stack, store.instance_get(conn, r.id), overrides)  # type: ignore[arg-type]

    def effective(self, stack_name: str, name: str) -> tuple[InstanceView, EffectiveService]:
        with self.ctx.engine.connect() as conn:
            stack = self._stack(conn, stack_name)
            r = self._instance(conn, stack, name)
            overrides = self._load_overrides(conn, [r.id])[r.id]
            svc = effective(self._template(conn, r.template), overrides)
        return self._view(stack, r, overrides), svc

    def _ensure_generated(self, stack_name: str) -> None:
        """Give every instance the generated secrets its template asks for and its
        env_vars override does not name: instances made before a template declared one
        (``REDIS_PASSWORD``) or whose password an older version dropped. The database's
        password is seeded from the one ``apply`` generated for it, if any, so the
        running database and the export agree. Writes only when something is missing."""
        from snoozeql.domain.engines import engine_info

        with self.ctx.engine.begin() as conn:
            stack = self._stack(conn, stack_name)
            records = store.instance_list(conn, stack.id)
            overrides = self._load_overrides(conn, [r.id for r in records])
            for r in records:
                tmpl = self.templates.find(conn, r.template)
                if tmpl is None:
                    continue
                current = overrides[r.id].get(OverrideKind.ENV_VARS)
                named = {e.key for e in current.entries} if current else set()  # type: ignore[union-attr]
                missing = [e.key for e in tmpl.environment
                           if e.secret and e.value is None and e.key not in named]
                if not missing:
                    continue
                seed: dict[str, str] = {}
                token = secret_store.get(conn, SECRET_SCOPE, r.id, RUNTIME_PASSWORD)
                if token is not None and tmpl.engine:
                    info = engine_info(tmpl.engine)
                    for var in (*info.docker_password_env, *info.template_password_env):
                        seed.setdefault(var, self.box.decrypt(token))
                previous = Override(OverrideKind.ENV_VARS, tuple(
                    EnvVar(k, v, secret=True) for k, v in seed.items()))
                parsed = {current.kind: current} if current is not None else {}
                new = self._with_generated_secrets(tmpl, parsed, previous)
                self._write_override(conn, r.id, new[OverrideKind.ENV_VARS])

    def secrets(self, stack_name: str, name: str) -> dict[str, Any]:
        """The instance's effective secret values, and the password ``apply`` gives its
        database. For the operator who runs it (CLI, operator API role) only."""
        self._ensure_generated(stack_name)
        with self.ctx.engine.connect() as conn:
            stack = self._stack(conn, stack_name)
            r = self._instance(conn, stack, name)
            overrides = self._load_overrides(conn, [r.id])[r.id]
            svc = effective(self._template(conn, r.template), overrides)
            token = secret_store.get(conn, SECRET_SCOPE, r.id, RUNTIME_PASSWORD)
        origin = svc.entry_provenance.get(OverrideKind.ENV_VARS, {})
        entries = [
            {"key": e.key, "value": e.value, "source": origin.get(e.key, "template")}
            for e in svc.environment if e.secret
        ]
        password: str | None = None
        password_from: str | None = None
        if svc.engine:
            var = self._password_var(svc)
            if var is not None:
                password, password_from = svc.env()[var], var
            elif token is not None:
                password, password_from = self.box.decrypt(token), "generated at apply"
        return {
            "stack": stack.name, "instance": r.name,
            "container_name": container_name(self.prefix, stack.name, r.name),
            "engine": svc.engine, "env_vars": entries,
            "database_password": password, "database_password_from": password_from,
        }

    # ----------------------------------------------------------------- export

    def _enabled_services(
        self, conn: sa.Connection, stack: StackRecord
    ) -> list[tuple[InstanceRecord, EffectiveService]]:
        records = store.instance_list(conn, stack.id, enabled=True)
        overrides = self._load_overrides(conn, [r.id for r in records])
        return [(r, effective(self._template(conn, r.template), overrides[r.id]))
                for r in records]

    def compose(
        self,
        stack_name: str,
        *,
        secrets: SecretMode = "interpolate",
        config_style: ConfigStyle = "bind",
    ) -> ComposeExport:
        """The Compose export of the stack's enabled instances."""
        self._ensure_generated(stack_name)
        with self.ctx.engine.connect() as conn:
            stack = self._stack(conn, stack_name)
            services = self._enabled_services(conn, stack)
        for r, svc in services:
            # rows written before the host-path rules (or by an older version) are
            # checked again: a refused mount is never handed out to run
            try:
                check_host_paths(self.ctx.settings, stack.name, svc.volumes)
            except ValidationError as exc:
                raise ConflictError(
                    f"instance {r.name!r} cannot be exported: {exc.message}; change its "
                    f"volumes (snoozeql stacks instances override {stack.name} {r.name} "
                    "volumes ...)"
                ) from None
        return to_compose(
            stack.name, [(r.name, svc) for r, svc in services], self.prefix,
            secrets=secrets, config_style=config_style,
        )

    # ------------------------------------------------------------ plan / apply

    def _desired(self, conn: sa.Connection, stack: StackRecord) -> list[DesiredUnit]:
        units = []
        for r, svc in self._enabled_services(conn, stack):
            runtime_name = container_name(self.prefix, stack.name, r.name)
            units.append(self._unit(r, runtime_name, svc, stack.name))
        return units

    def _unit(self, r: InstanceRecord, runtime_name: str, svc: EffectiveService,
              stack: str = "") -> DesiredUnit:
        image, _, tag = svc.image.partition(":")
        base = dict(instance_id=r.id, instance=r.name, runtime_name=runtime_name, service=svc,
                    engine=svc.engine, image=image, tag=tag or None)
        try:
            check_host_paths(self.ctx.settings, stack or None, svc.volumes)
            host_problem = None
        except ValidationError as exc:
            host_problem = exc.message
        if svc.engine is None:
            # A plain image: the generic container runtime (Docker, host networking).
            from snoozeql.providers import containers

            problem = host_problem or containers.unit_problem(svc)
            runtime = None
            if problem is None:
                try:
                    runtime = self.runtime.choose(None)
                except SnoozeError as exc:
                    problem = exc.message
                if runtime is None and problem is None:
                    problem = ("this runtime cannot run plain images; run this stack with "
                               "`snoozeql stacks export` and Compose")
            return DesiredUnit(
                **base, runtime=runtime, port=None, problem=problem,  # type: ignore[arg-type]
                stack=stack, spec=containers.plan_summary(svc),
            )
        from snoozeql.domain.engines import engine_info

        try:
            info = engine_info(svc.engine)
            runtime = self.runtime.choose(svc.engine)
        except SnoozeError as exc:
            return DesiredUnit(**base, runtime=None, port=None, problem=exc.message)  # type: ignore[arg-type]
        published = [p for p in svc.ports if p.host_port is not None]
        match = [p for p in published if p.container_port == info.default_port] or published
        if not match:
            return DesiredUnit(
                **base, runtime=runtime, port=None,  # type: ignore[arg-type]
                problem=f"publish a host port for container port {info.default_port} "
                "(a ports override) so the database can be reached",
            )
        port = match[0].host_port
        problem = None
        if port is not None and port < 1024:
            problem = f"host port {port} is privileged; use a port from 1024 to 65535"
        return DesiredUnit(**base, runtime=runtime, port=port, problem=problem)  # type: ignore[arg-type]

    def plan(self, stack_name: str) -> Plan:
        with self.ctx.engine.connect() as conn:
            stack = self._stack(conn, stack_name)
            return self._plan(conn, stack)[0]

    def _plan(
        self, conn: sa.Connection, stack: StackRecord
    ) -> tuple[Plan, dict[str, DesiredUnit], dict[str, AppliedRecord]]:
        desired = {u.runtime_name: u for u in self._desired(conn, stack)}
        applied = {a.runtime_name: a for a in store.applied_list(conn, stack.id)}
        items: list[PlanItem] = []
        for name, u in desired.items():
            a = applied.get(name)
            if u.problem:
                items.append(PlanItem("refused", u.instance, name, u.runtime, u.problem))
            elif a is None:
                items.append(PlanItem("create", u.instance, name, u.runtime,
                                      "enabled instance not applied yet", u.summary))
            elif a.digest != u.digest:
                changes = {k: {"applied": a.summary.get(k), "desired": v}
                           for k, v in u.summary.items() if a.summary.get(k) != v}
                items.append(PlanItem(
                    "update", u.instance, name, u.runtime,
                    "changed since the last apply; a database is recreated by deleting the "
                    "instance (its data is kept) and creating it again", changes,
                ))
            elif a.state != "running":
                items.append(PlanItem("start", u.instance, name, a.runtime,
                                      f"stopped by down ({a.state})", state=a.state))
            else:
                items.append(self._compare_live(u, a))
        for name, a in applied.items():
            if name not in desired:
                items.append(PlanItem(
                    "remove", a.instance_name, name, a.runtime,
                    "instance deleted, disabled or renamed since the last apply",
                ))
        return Plan(stack.name, items), desired, applied

    def _compare_live(self, u: DesiredUnit, a: AppliedRecord) -> PlanItem:
        """An up-to-date object that should run, against its state measured now: one
        that died (killed, crashed) or was stopped behind SnoozeQL's back is started
        again, one that is gone is created again."""
        live = self.runtime.status(a.runtime, a.runtime_name)
        name = a.runtime_name
        if live.status in UP_STATES:
            return PlanItem("unchanged", u.instance, name, a.runtime, "up to date",
                            state=live.status)
        if live.status == "missing":
            return PlanItem("create", u.instance, name, u.runtime,
                            f"{live.detail}; apply creates it again", u.summary,
                            state="missing")
        if live.status == "unknown":
            return PlanItem("unchanged", u.instance, name, a.runtime,
                            f"up to date, but its state could not be measured: {live.detail}",
                            state="unknown")
        why = "failed" if live.status == "failed" else f"{live.status} outside SnoozeQL"
        return PlanItem("start", u.instance, name, a.runtime,
                        f"{why}: {live.detail}; apply starts it again", state=live.status)

    def live_states(self, stack_name: str) -> dict[str, LiveState]:
        """Each live instance's state measured now, by instance name: ``disabled``,
        ``not applied``, or its runtime object's status (``stopped`` after down)."""
        with self.ctx.engine.connect() as conn:
            stack = self._stack(conn, stack_name)
            return self._live_states(conn, stack)

    def _live_states(self, conn: sa.Connection, stack: StackRecord) -> dict[str, LiveState]:
        records = store.instance_list(conn, stack.id)
        applied = {a.instance_id: a for a in store.applied_list(conn, stack.id)}
        out: dict[str, LiveState] = {}
        todo: list[tuple[str, AppliedRecord]] = []
        for r in records:
            a = applied.get(r.id)
            if not r.enabled:
                out[r.name] = LiveState("disabled", "disabled: apply leaves it out"
                                        + ("; the next apply removes what runs"
                                           if a is not None else ""))
            elif a is None or a.runtime_name != container_name(self.prefix, stack.name,
                                                                r.name):
                out[r.name] = LiveState("not applied", "not applied yet: run apply")
            else:
                todo.append((r.name, a))
        if todo:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
                measured = list(pool.map(
                    lambda item: self.runtime.status(item[1].runtime, item[1].runtime_name),
                    todo))
            for (name, a), live in zip(todo, measured, strict=True):
                if a.state != "running" and live.status == "stopped":
                    live = LiveState("stopped", "stopped by down; apply starts it again")
                out[name] = live
        return {r.name: out[r.name] for r in records}

    @staticmethod
    def overall(states: Mapping[str, LiveState]) -> str:
        """``up`` (every enabled instance runs), ``partly up``, ``down``, or ``empty``
        (no enabled instance)."""
        enabled = [s for s in states.values() if s.status != "disabled"]
        if not enabled:
            return "empty"
        up = sum(1 for s in enabled if s.status in UP_STATES)
        return "up" if up == len(enabled) else "partly up" if up else "down"

    @staticmethod
    def _password_var(service: EffectiveService) -> str | None:
        """The env var holding the database password (POSTGRES_PASSWORD, REDIS_PASSWORD),
        when the effective service sets it."""
        from snoozeql.domain.engines import engine_info

        if not service.engine:
            return None
        info = engine_info(service.engine)
        env = service.env()
        for var in (*info.docker_password_env, *info.template_password_env):
            if env.get(var):
                return var
        return None

    def _password(self, conn: sa.Connection, unit: DesiredUnit) -> str:
        """The database password: the template's password variable when it has one,
        else a generated one kept encrypted for this instance."""
        var = self._password_var(unit.service)
        if var is not None:
            return str(unit.service.env()[var])
        token = secret_store.get(conn, SECRET_SCOPE, unit.instance_id, RUNTIME_PASSWORD)
        if token is not None:
            return self.box.decrypt(token)
        password = generate_password()
        secret_store.put(conn, SECRET_SCOPE, unit.instance_id, RUNTIME_PASSWORD,
                         self.box.encrypt(password), self.ctx.now())
        return password

    def apply(self, stack_name: str, progress: Progress | None = None) -> list[StepResult]:
        """Carry the plan out, one runtime object at a time, recording each success.

        A failed step is reported and the others still run; ``refused`` items are
        reported without touching anything. ``progress`` hears of the steps to come
        (``"plan"``, the list of :class:`PlanItem`), each one starting (``"begin"``,
        its item) and its outcome (``"end"``, its :class:`StepResult`).
        """
        notify = progress or (lambda event, data: None)
        self._ensure_generated(stack_name)
        with self.ctx.engine.connect() as conn:
            stack = self._stack(conn, stack_name)
            plan, desired, applied = self._plan(conn, stack)
        todo = [i for i in plan.items if i.action != "unchanged"]
        notify("plan", todo)
        results = []
        for item in todo:
            notify("begin", item)
            if item.action == "refused":
                result = StepResult("refused", item.instance, item.runtime_name, False,
                                    None, item.reason)
            else:
                result = self._step(stack, item, desired.get(item.runtime_name),
                                    applied.get(item.runtime_name))
            results.append(result)
            notify("end", result)
        return results

    def _step(
        self,
        stack: StackRecord,
        item: PlanItem,
        unit: DesiredUnit | None,
        applied: AppliedRecord | None,
    ) -> StepResult:
        rt = self.runtime
        now = self.ctx.now
        try:
            if item.action == "remove":
                assert applied is not None
                try:
                    detail = rt.remove(applied.runtime, applied.runtime_name)
                except NotFoundError:
                    detail = "already gone"
                with self.ctx.engine.begin() as conn:
                    store.applied_delete(conn, stack.id, applied.runtime_name)
                return StepResult("remove", item.instance, item.runtime_name, True, None, detail)
            assert unit is not None and unit.runtime is not None
            with self.ctx.engine.begin() as conn:
                password = self._password(conn, unit) if unit.engine else ""
            if item.action == "start":
                assert applied is not None
                status = rt.start(applied.runtime, unit.runtime_name, password)
                with self.ctx.engine.begin() as conn:
                    store.applied_set_state(conn, stack.id, unit.runtime_name, "running", now())
                return StepResult("start", item.instance, item.runtime_name, True, status, None)
            if item.action in ("update", "create") and applied is not None:
                with contextlib.suppress(NotFoundError):  # gone behind SnoozeQL's back
                    rt.remove(applied.runtime, applied.runtime_name)
                with self.ctx.engine.begin() as conn:
                    store.applied_delete(conn, stack.id, applied.runtime_name)
            status = rt.up(unit, password)
            with self.ctx.engine.begin() as conn:
                store.applied_put(
                    conn, stack_id=stack.id, instance_id=unit.instance_id,
                    instance_name=unit.instance, runtime_name=unit.runtime_name,
                    runtime=unit.runtime, digest=unit.digest, state="running",
                    summary=unit.summary, now=now(),
                )
            return StepResult(item.action, item.instance, item.runtime_name, True, status, None)
        except SnoozeError as exc:
            return StepResult(item.action, item.instance, item.runtime_name, False, None,
                              exc.message)

    def down(self, stack_name: str, progress: Progress | None = None) -> list[StepResult]:
        """Stop every runtime object the stack has applied; they stay recorded, so the
        next apply starts them again. ``progress`` as for :meth:`apply`."""
        notify = progress or (lambda event, data: None)
        with self.ctx.engine.connect() as conn:
            stack = self._stack(conn, stack_name)
            applied = [a for a in store.applied_list(conn, stack.id) if a.state == "running"]
        notify("plan", [PlanItem("stop", a.instance_name, a.runtime_name, a.runtime,
                                 "stop what apply brought up") for a in applied])
        results = []
        for a in applied:
            notify("begin", PlanItem("stop", a.instance_name, a.runtime_name, a.runtime,
                                     "stop what apply brought up"))
            try:
                status = self.runtime.stop(a.runtime, a.runtime_name)
                with self.ctx.engine.begin() as conn:
                    store.applied_set_state(conn, stack.id, a.runtime_name, "stopped")
                results.append(StepResult("stop", a.instance_name, a.runtime_name, True,
                                          status, None))
            except SnoozeError as exc:
                results.append(StepResult("stop", a.instance_name, a.runtime_name, False,
                                          None, exc.message))
            notify("end", results[-1])
        return results

