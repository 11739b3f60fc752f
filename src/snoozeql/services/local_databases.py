"""Local databases as a use case: create, delete, inspect and re-measure them.

This is the one place that joins the runtimes (native processes, Docker containers)
with the store: the inventory row (provider ``local`` or ``docker``, ``provider_id`` =
the name, endpoint 127.0.0.1:port, runtime facts in ``extra``), the password encrypted
in the secrets table, and the action log. Start, stop and restart go through
:class:`~snoozeql.services.lifecycle.LifecycleService` like any cloud instance; the
providers get the password from :func:`bind_password_lookup`.

Rules kept here:

* everything is validated before anything is made; a failed create leaves no row, no
  secret and no data behind;
* a port must be free now and not belong to another local instance (stopped ones too);
* a generated password is returned once, by :meth:`LocalDatabaseService.create`; after
  that only :meth:`LocalDatabaseService.url` reveals it, to whoever asks for it;
* status is measured, never read from the store; each measurement is written back so
  listings show the last measured state.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID, uuid4

from snoozeql.domain.engines import (
    Engine,
    LocalDatabaseSpec,
    Runtime,
    RuntimeState,
    parse_runtime,
    validate_name,
    validate_port,
)
from snoozeql.domain.errors import (
    ConflictError,
    NotFoundError,
    SnoozeError,
    ValidationError,
)
from snoozeql.domain.types import (
    ActionResult,
    Instance,
    InstanceKind,
    InstanceStatus,
    LifecycleAction,
    ProviderKind,
)
from snoozeql.observability import log_action
from snoozeql.providers.local import engines
from snoozeql.providers.local.base import LocalRuntime, SetupAhead
from snoozeql.providers.local.ports import free_port, port_in_use
from snoozeql.providers.local.provider import runtime_of, short_status
from snoozeql.services.context import Context
from snoozeql.services.datadir import check_local_dir
from snoozeql.services.inventory import by_id_prefix
from snoozeql.services.passwords import generate_password, validate_password
from snoozeql.services.secrets import SecretBox
from snoozeql.store import actions as action_log
from snoozeql.store import instances as instance_store
from snoozeql.store import secrets as secret_store
from snoozeql.store.instances import InstanceFilter

log = logging.getLogger(__name__)

LOCAL_PROVIDERS = (ProviderKind.LOCAL, ProviderKind.DOCKER)
SECRET_SCOPE = "instance"
PASSWORD_SECRET = "password"
HOST = "127.0.0.1"
REFRESH_WORKERS = 8



@dataclass(frozen=True)
class CreatedDatabase:
    """The new instance; ``generated_password`` is set only when SnoozeQL made it up."""

    instance: Instance
    state: RuntimeState
    generated_password: str | None


@dataclass(frozen=True)
class MeasuredDatabase:
    """An instance with the state just measured (``state.log_tail`` is redacted)."""

    instance: Instance
    state: RuntimeState


@dataclass(frozen=True)
class DeletedDatabase:
    instance: Instance
    kept_at: str | None


def is_local(instance: Instance) -> bool:
    return instance.provider in LOCAL_PROVIDERS


def _redact(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text


def _scrubbed(exc: SnoozeError, password: str | None) -> SnoozeError:
    """The same error with the password masked (runtimes already do; belt and braces)."""
    if password and password in exc.message:
        exc.message = _redact(exc.message, password)
        exc.args = (exc.message,)
    return exc


def bind_password_lookup(ctx: Context) -> None:
    """Give the ``local`` and ``docker`` providers a way to the decrypted password.

    Providers never read the store; this closure does it for them, in the service layer.
    """

    def lookup(instance: Instance) -> str | None:
        return LocalDatabaseService(ctx, bind=False).password(instance)

    def owner_check() -> None:
        check_local_dir(ctx, claim=False)

    for kind in LOCAL_PROVIDERS:
        provider = ctx.providers.get(kind)
        if hasattr(provider, "password_lookup"):
            provider.password_lookup = lookup
        if hasattr(provider, "owner_check"):
            provider.owner_check = owner_check


class LocalDatabaseService:
    def __init__(self, ctx: Context, *, bind: bool = True) -> None:
        self.ctx = ctx
        if bind:
            bind_password_lookup(ctx)

    # ------------------------------------------------------------------ lookups

    def runtime(self, kind: ProviderKind) -> LocalRuntime:
        """The NativeRuntime (``local``) or DockerRuntime (``docker``) of the provider."""
        return runtime_of(self.ctx.providers.get(kind))

    def list_all(self) -> list[Instance]:
        """Every local and Docker instance in the inventory, stopped ones included."""
        with self.ctx.engine.connect() as conn:
            found = [
                i
                for kind in LOCAL_PROVIDERS
                for i in instance_store.iter_all(conn, InstanceFilter(provider=kind.value))
            ]
        return sorted(found, key=lambda i: (i.name, str(i.id)))

    def get(self, ref: str | UUID) -> Instance:
        """A local instance by id or name; a cloud instance of that name does not count."""
        ref = str(ref)
        with self.ctx.engine.connect() as conn:
            try:
                found = instance_store.get(conn, UUID(ref))
            except ValueError:
                found = None
            if found is not None:
                if not is_local(found):
                    raise ValidationError(
                        f"{found.name} is a {found.provider.value} instance; this applies to "
                        "local and docker databases only"
                    )
                return found
            matches = [i for i in instance_store.find(conn, name=ref) if is_local(i)]
            if not matches:
                return by_id_prefix(conn, ref, f"no local database named {ref!r}", is_local)
        return matches[0]

    def password(self, instance: Instance) -> str | None:
        """The decrypted password of a local instance (None when none is stored)."""
        with self.ctx.engine.connect() as conn:
            token = secret_store.get(conn, SECRET_SCOPE, instance.id, PASSWORD_SECRET)
        return SecretBox(self.ctx.settings).decrypt(token) if token else None

    # ------------------------------------------------------------------ create

    def create(
        self,
        *,
        name: str,
        engine: str,
        version: str | None = None,
        image: str | None = None,
        tag: str | None = None,
        port: int | None = None,
        password: str | None = None,
        runtime: str = Runtime.NATIVE.value,
        actor: str,
        ahead: SetupAhead | None = None,
    ) -> CreatedDatabase:
        """Validate, pick a port and password, make the database, wait until it answers,
        then record it (row, encrypted password, ``create`` action) in one transaction.

        ``ahead`` is what :func:`snoozeql.services.local_ahead.begin_create` started for
        this create (PostgreSQL's initdb) while the caller started up: without a
        ``password`` its generated one is used; it is moved into place by the runtime,
        or discarded (nothing left) when the create is refused or fails."""
        try:
            return self._create(name=name, engine=engine, version=version, image=image,
                                tag=tag, port=port, password=password, runtime=runtime,
                                actor=actor, ahead=ahead)
        finally:
            if ahead is not None:
                ahead.discard()  # a no-op once the runtime used it

    def _create(
        self, *, name: str, engine: str, version: str | None, image: str | None,
        tag: str | None, port: int | None, password: str | None, runtime: str, actor: str,
        ahead: SetupAhead | None,
    ) -> CreatedDatabase:
        validate_name(name)
        engine_module = engines.get(engine)  # an unknown engine is refused here
        rt = parse_runtime(runtime)
        # An engine whose client is an optional extra (MongoDB) is refused up front.
        engine_module.require_client()
        check_local_dir(self.ctx, claim=True)  # the data dir must be this store's
        if port is not None:
            validate_port(port)
        if password is not None:
            validate_password(password)
        if version is not None:
            version = str(version).strip() or None
        kind = rt.provider
        taken = self._taken_ports()
        with self.ctx.engine.connect() as conn:
            clash = [i for i in instance_store.find(conn, name=name) if is_local(i)]
        if clash:
            raise ConflictError(
                f"a local database named {name!r} already exists ({clash[0].provider.value})"
            )
        if port is None:
            port = free_port(exclude=set(taken))
        elif port in taken:
            raise ConflictError(
                f"port {port} belongs to local database {taken[port]!r}: choose another port"
            )
        elif port_in_use(port):
            raise ConflictError(
                f"port {port} on {HOST} is already in use by another process: choose another "
                "port or stop what holds it"
            )
        spec = LocalDatabaseSpec.build(
            name=name, engine=engine, port=port, version=version, runtime=rt, image=image, tag=tag
        )
        generated = password is None
        if password is not None:
            secret = password
        else:
            secret = ahead.password if ahead is not None else generate_password()
        box = SecretBox(self.ctx.settings)  # fails on a bad key before anything is made
        ciphertext = box.encrypt(secret)
        runtime_obj = self.runtime(kind)
        started = self.ctx.now()
        try:
            state = runtime_obj.create(spec, secret, ahead)
        except SnoozeError as exc:
            scrubbed = _scrubbed(exc, secret)
            self._log_action(
                LifecycleAction.CREATE, None, name, kind, actor, started, ActionResult.FAILED,
                scrubbed.message, self._details(spec, None),
            )
            raise scrubbed from None
        instance_id = uuid4()
        now = self.ctx.now()
        made = Instance(
            id=instance_id, account_id=None, provider=kind, provider_id=name,
            kind=InstanceKind.INSTANCE, name=name, engine=spec.engine.value,
            engine_version=state.version, instance_class=None, region=None,
            status=state.status, raw_status=_raw(state.detail), tags={},
            endpoint_host=HOST, endpoint_port=port, multi_az=False, node_count=1,
            cluster_provider_id=None, hourly_cost_cents=None, first_seen_at=now,
            last_seen_at=now, missing_since=None, extra=self._details(spec, state),
        )
        try:
            with self.ctx.engine.begin() as conn:
                instance_store.add(conn, made)
                secret_store.put(conn, SECRET_SCOPE, instance_id, PASSWORD_SECRET, ciphertext, now)
                created_id = action_log.append(
                    conn, at=started, finished_at=self.ctx.now(), actor=actor,
                    action=LifecycleAction.CREATE.value, reason="manual",
                    result=ActionResult.OK.value, instance_id=instance_id, instance_name=name,
                    provider=kind.value, details=self._details(spec, state),
                )
        except BaseException:
            # The store refused (ConflictError: a concurrent create of the same name won):
            # take the database down again so nothing is left half-made.
            log.warning("recording local database %s failed; removing it again", name)
            try:
                runtime_obj.delete(name, keep_data=False)
            except Exception:  # noqa: BLE001 - the original error matters more
                log.exception("could not remove local database %s after a failed create", name)
            raise
        _logged(self.ctx, created_id, LifecycleAction.CREATE.value, ActionResult.OK.value,
                instance_id, name, kind, actor, started, self.ctx.now(), None)
        with self.ctx.engine.connect() as conn:
            instance = instance_store.get(conn, instance_id)
        assert instance is not None
        return CreatedDatabase(instance, state, secret if generated else None)

    def _taken_ports(self) -> dict[int, str]:
        """Port -> name of every local instance, running or not: a port stays theirs."""
        return {
            i.endpoint_port: i.name for i in self.list_all() if i.endpoint_port is not None
        }

    @staticmethod
    def _details(spec: LocalDatabaseSpec, state: RuntimeState | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "runtime": spec.runtime.value,
            "engine": spec.engine.value,
            "requested_version": spec.version,
            "port": spec.port,
        }
        if spec.image:
            out["image"] = f"{spec.image}:{spec.tag}"
        if state is not None:
            out["version"] = state.version
            out["data_path"] = state.location
        return out

    # ------------------------------------------------------------------ delete

    def delete(self, ref: str | UUID, *, keep_data: bool = False, actor: str) -> DeletedDatabase:
        """Stop and remove the database (data too, unless ``keep_data``), its row and its
        password; record a ``delete`` action. A database already gone from disk or from
        the Docker engine is still removed from the inventory."""
        instance = self.get(ref)
        runtime_obj = self.runtime(instance.provider)
        started = self.ctx.now()
        kept: str | None = None
        try:
            where = runtime_obj.delete(instance.provider_id, keep_data=keep_data)
            kept = str(where) if where is not None else None
        except NotFoundError:
            log.info("local database %s was already gone from its runtime", instance.name)
        except SnoozeError as exc:
            self._log_action(
                LifecycleAction.DELETE, instance.id, instance.name, instance.provider, actor,
                started, ActionResult.FAILED, exc.message, {"keep_data": keep_data},
            )
            raise
        with self.ctx.engine.begin() as conn:
            instance_store.delete(conn, instance.id)
            secret_store.delete(conn, SECRET_SCOPE, instance.id)
            deleted_id = action_log.append(
                conn, at=started, finished_at=self.ctx.now(), actor=actor,
                action=LifecycleAction.DELETE.value, reason="manual", result=ActionResult.OK.value,
                instance_id=instance.id, instance_name=instance.name,
                provider=instance.provider.value,
                details={"keep_data": keep_data, "kept_at": kept},
            )
        _logged(self.ctx, deleted_id, LifecycleAction.DELETE.value, ActionResult.OK.value,
                instance.id, instance.name, instance.provider, actor, started, self.ctx.now(),
                None)
        return DeletedDatabase(instance, kept)

    # ------------------------------------------------------------------ inspect

    def status(self, ref: str | UUID) -> MeasuredDatabase:
        """Measure now (process/container, port, probe with the password) and store it."""
        instance = self.get(ref)
        password = self.password(instance)
        state = self._measure(instance, password)
        return MeasuredDatabase(self._record_status(instance, state), state)

    def logs(self, ref: str | UUID, n: int = 50) -> list[str]:
        if not 0 <= n <= 10_000:
            raise ValidationError("n must be between 0 and 10000")
        instance = self.get(ref)
        lines = self.runtime(instance.provider).logs(instance.provider_id, n)
        password = self.password(instance)
        return [_redact(line, password) for line in lines]

    def url(self, ref: str | UUID) -> str:
        """A connection URL with the password in it: for the user who asks, never logged."""
        instance = self.get(ref)
        password = self.password(instance)
        if password is None:
            raise NotFoundError(f"no password is stored for {instance.name}")
        return str(self.runtime(instance.provider).url(instance.provider_id, password))

    def refresh_all(self) -> list[MeasuredDatabase]:
        """Recompute every local instance's status from reality (at ``serve`` start and
        periodically): nothing stored is trusted, a crash or reboot shows as failed."""
        instances = self.list_all()
        passwords = {}
        for i in instances:
            try:
                passwords[i.id] = self.password(i)
            except SnoozeError as exc:  # a changed key must not stop the others
                log.warning("cannot read the password of %s: %s", i.name, exc.message)
                passwords[i.id] = None
        if not instances:
            return []
        workers = min(REFRESH_WORKERS, len(instances))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="local-refresh") as pool:
            states = list(pool.map(lambda i: self._measure(i, passwords[i.id]), instances))
        return [
            MeasuredDatabase(self._record_status(i, s), s)
            for i, s in zip(instances, states, strict=True)
        ]

    def _measure(self, instance: Instance, password: str | None) -> RuntimeState:
        """The runtime's measurement; a vanished instance or an unreachable engine
        becomes a state (failed / unknown) instead of an error."""
        runtime = Runtime.of(instance.provider)
        base = RuntimeState(
            name=instance.name,
            engine=Engine(instance.engine),
            version=instance.engine_version,
            runtime=runtime,
            port=instance.endpoint_port or 0,
            status=InstanceStatus.UNKNOWN,
        )
        try:
            state: RuntimeState = self.runtime(instance.provider).status(
                instance.provider_id, password
            )
        except NotFoundError:
            where = "container" if runtime is Runtime.DOCKER else "data directory"
            return replace(
                base, status=InstanceStatus.FAILED,
                detail=f"its {where} is gone (removed outside SnoozeQL)",
            )
        except SnoozeError as exc:
            return replace(base, detail=_redact(exc.message, password))
        tail = tuple(_redact(line, password) for line in state.log_tail)
        return replace(state, log_tail=tail, detail=_redact(state.detail or "", password) or None)

    def _record_status(self, instance: Instance, state: RuntimeState) -> Instance:
        error = state.detail if state.status in (InstanceStatus.FAILED, InstanceStatus.UNKNOWN) \
            else None
        with self.ctx.engine.begin() as conn:
            instance_store.set_status(conn, instance.id, state.status, _raw(state.detail), error)
        return replace(
            instance, status=state.status, raw_status=_raw(state.detail), last_error=error
        )

    def _log_action(
        self, action: LifecycleAction, instance_id: UUID | None, name: str, kind: ProviderKind,
        actor: str, started: Any, result: ActionResult, error: str | None,
        details: dict[str, Any],
    ) -> None:
        finished = self.ctx.now()
        with self.ctx.engine.begin() as conn:
            action_id = action_log.append(
                conn, at=started, finished_at=finished, actor=actor, action=action.value,
                reason="manual", result=result.value, instance_id=instance_id,
                instance_name=name, provider=kind.value, error=error, details=details,
            )
        _logged(self.ctx, action_id, action.value, result.value, instance_id, name, kind,
                actor, started, finished, error)


def _logged(ctx: Context, action_id: UUID, action: str, result: str, instance_id: UUID | None,
            name: str, kind: ProviderKind, actor: str, started: Any, finished: Any,
            error: str | None) -> None:
    """Count the create or delete and write its log line (observability.log_action)."""
    log_action(ctx.telemetry, action_id=action_id, action=action, result=result,
               instance_id=instance_id, instance_name=name, account_id=None,
               provider=kind.value, actor=actor, reason="manual",
               seconds=(finished - started).total_seconds(), error=error)


def _raw(detail: str | None) -> str | None:
    return short_status(detail)
