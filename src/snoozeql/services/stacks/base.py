"""The stacks service's shared part: constants, host-path rules and the base class."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from snoozeql.domain.errors import NotFoundError, ValidationError
from snoozeql.domain.stacks import DEFAULT_PREFIX, EffectiveService
from snoozeql.domain.stacks.entries import VolumeMount
from snoozeql.domain.stacks.hostaccess import bind_sources, check_bind_source
from snoozeql.domain.stacks.runtime import StackRuntime
from snoozeql.services import audit
from snoozeql.services.context import Context
from snoozeql.services.datadir import check_local_dir
from snoozeql.services.secrets import SecretBox
from snoozeql.services.stacks.views import InstanceView, StackView
from snoozeql.services.templates import TemplateService
from snoozeql.store import stacks as store
from snoozeql.store.stacks import StackRecord

if TYPE_CHECKING:  # the services hand the store's connection through, never use it
    from sqlalchemy import Connection

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


def local_runtimes(ctx: Context) -> StackRuntime:
    """The default runtime: :class:`LocalRuntimes`, checking before native work that the
    local-database directory is this store's."""
    from snoozeql.providers.local.runtimes import LocalRuntimes

    return LocalRuntimes(ctx.settings, lambda: check_local_dir(ctx, claim=True))


class StackServiceBase:
    """What every part of the stacks service shares: the context, the secret box, the
    runtime, and the stack lookup."""

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
            self._runtime = local_runtimes(self.ctx)
        return self._runtime

    def _stack(self, conn: Connection, name: str) -> StackRecord:
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

    def _stack_view(self, conn: Connection, s: StackRecord) -> StackView:
        count = store.instance_counts(conn, [s.id]).get(s.id, 0)
        last = store.applied_last(conn, [s.id]).get(s.id)
        return StackView(s.id, s.name, s.description, count, s.created_at, s.updated_at,
                         s.deleted_at, last)

    def _audit(self, conn: Connection, actor: str, action: str, kind: str,
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
        """The instance as the audit log records it (audit.record masks secrets)."""
        return {"stack": v.stack, "name": v.name, "template": v.template,
                "description": v.description, "enabled": v.enabled,
                "overrides": [store.override_data(o) for o in v.overrides]}

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
