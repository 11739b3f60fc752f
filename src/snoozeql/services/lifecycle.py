"""Start, stop and restart, through the instance's provider, with an action-log entry.

Every attempt is recorded, whatever its result: ``ok``, ``refused`` (the provider or
a rule of ours will not do it, with the reason) or ``failed`` (the call failed).

The entry is written *before* the provider call, as an intent (result ``pending``: who,
why, and for the reconciler which schedule), under a lease the process's heartbeat
renews (``services/leases.py``), and completed after the call. So no provider call is
ever made without a row. If the process dies in between, the intent stays ``pending``
until its lease runs out; :meth:`LifecycleService.resolve_stale` (run by every
reconcile) then reads the instance's real state and completes it as ``ok`` with
``details.resolution = "confirmed after takeover"`` or as ``unknown``.

An action that already happened (stop an instance that is stopped, or stopping) is
``ok`` with the message ``already stopped`` (``already stopping (in progress)``): the
provider reads the real state when the cloud refuses, so nothing is reported as failed
that is in fact done. A protected instance (``snoozeql-protect=true``) is refused with
the reason "protected" unless the caller forces it (one instance named explicitly).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from snoozeql.domain.errors import (
    ActionRefused,
    NotFoundError,
    ProviderError,
    SnoozeError,
    ValidationError,
)
from snoozeql.domain.protection import is_protected, protected_refusal
from snoozeql.domain.types import (
    CONFIRMED_AFTER_TAKEOVER,
    ActionOutcome,
    ActionResult,
    Instance,
    InstanceStatus,
    LifecycleAction,
)
from snoozeql.observability import in_context, log_action
from snoozeql.services.accounts import AccountService
from snoozeql.services.context import Context
from snoozeql.services.external import refuse_action
from snoozeql.services.inventory import InventoryService
from snoozeql.services.leases import action_lease, keeper, new_owner
from snoozeql.services.local_databases import bind_password_lookup
from snoozeql.store import actions as action_log
from snoozeql.store import instances as instance_store
from snoozeql.store.actions import ActionRecord

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from snoozeql.domain.types import Account

log = logging.getLogger(__name__)

ACTIONS = (LifecycleAction.START, LifecycleAction.STOP, LifecycleAction.RESTART)


@dataclass(frozen=True)
class ActionReport:
    action_id: UUID
    instance: Instance
    action: LifecycleAction
    result: ActionResult
    message: str | None
    already: bool = False


#: The states that show a start or a stop happened.
_SHOWS = {
    LifecycleAction.START: {InstanceStatus.RUNNING, InstanceStatus.STARTING},
    LifecycleAction.STOP: {InstanceStatus.STOPPED, InstanceStatus.STOPPING},
}


@dataclass(frozen=True)
class _Intent:
    """An intent this service wrote: its id and the details written with it."""

    id: UUID
    details: dict[str, Any]


@dataclass(frozen=True)
class Resolution:
    """A dead holder's intent, completed by a takeover."""

    entry: ActionRecord
    instance: Instance | None
    confirmed: bool
    message: str


class LifecycleService:
    def __init__(self, ctx: Context, *, owner: str | None = None,
                 keep_accounts: bool = False) -> None:
        """``keep_accounts``: read each account (and decrypt its secrets) once for the
        life of this object, not once per action: for one reconcile run, which acts on
        a thousand instances of a few accounts as they were when the run began."""
        self.ctx = ctx
        self.owner = owner or new_owner()
        self.inventory = InventoryService(ctx)
        self._accounts: dict[UUID, Account] | None = {} if keep_accounts else None
        bind_password_lookup(ctx)  # local/docker providers need the decrypted password

    def act(
        self, ref: str | UUID | Instance, action: str | LifecycleAction, *, actor: str,
        reason: str = "manual", details: dict[str, Any] | None = None, force: bool = False,
        on_ok: Callable[[Connection], None] | None = None, read_back: bool = True,
    ) -> ActionReport:
        """Carry out ``action``; raises ActionRefused/ProviderError after logging them.

        ``ref`` may be the instance itself, as its caller just read it from the store
        (it is not read again). ``details`` (the schedule, say) go into the log entry
        with the intent. ``force`` acts on a protected instance; only for one instance a
        person named. ``on_ok(conn)`` runs when the provider call succeeded, in the
        transaction that records the outcome (the reconciler's stop interval: written
        with the outcome or not at all, and no transaction of its own). ``read_back``:
        the report's instance is read again after the outcome is written; a caller that
        does not use it (the reconciler) passes False and gets the instance it gave,
        with the new status (one statement less per action).
        """
        try:
            act = LifecycleAction(action)
        except ValueError:
            raise ValidationError(
                f"unknown action {action!r}; use start, stop or restart"
            ) from None
        if act not in ACTIONS:
            raise ValidationError(f"{act.value} is not a start/stop/restart action")
        instance = ref if isinstance(ref, Instance) else self.inventory.get(ref)
        started = self.ctx.now()
        lease = action_lease(self.ctx.settings)
        written = {**(details or {}), "owner": self.owner}
        with self.ctx.engine.begin() as conn:
            intent = action_log.append(
                conn, at=started, finished_at=None, actor=actor, action=act.value,
                reason=reason, result=ActionResult.PENDING.value, instance_id=instance.id,
                instance_name=instance.name, provider=instance.provider.value,
                details=written, lease_until=started + lease,
            )
        leases = keeper(self.ctx)
        with leases.hold(leases.intent(intent, lease)):
            return self._call(instance, act, actor, reason, started, _Intent(intent, written),
                              force, on_ok, read_back)

    def _account(self, account_id: UUID) -> Account:
        if self._accounts is None:
            return AccountService(self.ctx).get(account_id)
        account = self._accounts.get(account_id)
        if account is None:
            account = self._accounts[account_id] = AccountService(self.ctx).get(account_id)
        return account

    def _call(self, instance: Instance, act: LifecycleAction, actor: str, reason: str,
              started: datetime, intent: _Intent, force: bool = False,
              on_ok: Callable[[Connection], None] | None = None,
              read_back: bool = True) -> ActionReport:
        try:
            protected = protected_refusal(instance, act.value, force=force)
            if protected is not None:
                raise ActionRefused(protected)
            if instance.missing_since is not None:
                raise ActionRefused(
                    f"{instance.name} was not seen by the last sync (missing since "
                    f"{instance.missing_since:%Y-%m-%d %H:%M} UTC); sync its account first"
                )
            refuse_action(instance, act.value)
            account = self._account(instance.account_id) if instance.account_id else None
            provider = self.ctx.providers.get(instance.provider)
            outcome = getattr(provider, act.value)(account, instance)
        except ActionRefused as exc:
            self._record(instance, act, actor, reason, started, ActionResult.REFUSED, exc.message,
                         intent=intent)
            raise
        except SnoozeError as exc:
            with self.ctx.engine.begin() as conn:
                instance_store.set_status(
                    conn, instance.id, instance.status, instance.raw_status, exc.message
                )
            self._record(instance, act, actor, reason, started, ActionResult.FAILED, exc.message,
                         intent=intent)
            raise
        except Exception as exc:
            log.exception("%s of %s failed unexpectedly", act.value, instance.name)
            message = f"internal error ({type(exc).__name__}); see the server log"
            self._record(instance, act, actor, reason, started, ActionResult.FAILED, message,
                         intent=intent)
            raise ProviderError(message) from exc
        details: dict = {"status": outcome.status.value, "raw_status": outcome.raw_status}
        if outcome.already:
            details["already"] = outcome.message
        if force and is_protected(instance):
            details["forced"] = True
        # One transaction: the new status, the outcome, the caller's own rows.
        with self.ctx.engine.begin() as conn:
            instance_store.set_status(conn, instance.id, outcome.status, outcome.raw_status)
            action_id, written = self._complete(conn, instance, act, actor, reason, started,
                                                ActionResult.OK, None, details, intent)
            if on_ok is not None:
                on_ok(conn)
            after = (instance_store.get(conn, instance.id) if read_back else
                     replace(instance, status=outcome.status, raw_status=outcome.raw_status,
                             last_error=None))
        if written:
            self._log(instance, act, actor, reason, started, ActionResult.OK, None, details,
                      action_id)
        return ActionReport(
            action_id, after or instance, act, ActionResult.OK, outcome.message,
            outcome.already,
        )

    def _record(
        self, instance: Instance, act: LifecycleAction, actor: str, reason: str, started,  # noqa: ANN001
        result: ActionResult, error: str | None, details: dict | None = None,
        *, intent: _Intent | None = None,
    ) -> UUID:
        """Complete the ``intent`` with the outcome (or append a whole entry), in a
        transaction of its own, and log it."""
        with self.ctx.engine.begin() as conn:
            action_id, written = self._complete(conn, instance, act, actor, reason, started,
                                                result, error, details, intent)
        if written:
            self._log(instance, act, actor, reason, started, result, error, details,
                      action_id)
        return action_id

    def _complete(
        self, conn: Connection, instance: Instance, act: LifecycleAction, actor: str,
        reason: str, started: datetime, result: ActionResult, error: str | None,
        details: dict | None, intent: _Intent | None,
    ) -> tuple[UUID, bool]:
        """(the entry's id, whether this wrote it): False when a takeover completed the
        intent first (counted and logged by the takeover that wrote it)."""
        finished = self.ctx.now()
        if intent is None:
            return action_log.append(
                conn, at=started, finished_at=finished, actor=actor, action=act.value,
                reason=reason, result=result.value, instance_id=instance.id,
                instance_name=instance.name, provider=instance.provider.value,
                error=error, details=details,
            ), True
        if not action_log.complete(conn, intent.id, result=result.value,
                                   finished_at=finished, error=error, details=details,
                                   intent_details=intent.details):
            log.warning("the %s of %s (%s) was resolved by a takeover before it "
                        "finished here", act.value, instance.name, result.value)
            return intent.id, False
        return intent.id, True

    def _log(self, instance: Instance, act: LifecycleAction, actor: str, reason: str,
             started: datetime, result: ActionResult, error: str | None,
             details: dict | None, action_id: UUID) -> None:
        """The action's log line and metrics, once its row is committed."""
        log_action(
            self.ctx.telemetry, action_id=action_id, action=act.value, result=result.value,
            instance_id=instance.id, instance_name=instance.name,
            account_id=instance.account_id, provider=instance.provider.value, actor=actor,
            reason=reason, seconds=(self.ctx.now() - started).total_seconds(), error=error,
            message=(details or {}).get("already"),
        )

    # ------------------------------------------------------------------ takeover

    def pending(self, instance_id: UUID) -> list[ActionRecord]:
        """Intents on the instance not completed yet (in flight, or left by the dead)."""
        with self.ctx.engine.connect() as conn:
            return action_log.pending(conn, instance_ids=[instance_id])

    def resolve_stale(self, instance_ids: list[UUID] | None = None) -> list[Resolution]:
        """Complete the intents whose holder died (lease run out) from the real state."""
        now = self.ctx.now()
        with self.ctx.engine.connect() as conn:
            stale = action_log.pending(conn, instance_ids=instance_ids, expired_at=now)
        if not stale:
            return []

        def one(entry: ActionRecord) -> Resolution | None:
            try:
                return self._resolve(entry)
            except Exception:  # noqa: BLE001 - one entry must not stop the others
                log.exception("resolving the pending %s of %s failed", entry.action,
                              entry.instance_name)
                return None

        workers = max(1, min(self.ctx.settings.discovery_workers, len(stale)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="resolve") as pool:
            return [r for r in pool.map(in_context(one), stale) if r is not None]

    def _resolve(self, entry: ActionRecord) -> Resolution | None:
        holder = entry.details.get("owner") or "its holder"
        instance: Instance | None = None
        outcome: ActionOutcome | None = None
        with self.ctx.engine.connect() as conn:
            if entry.instance_id is not None:
                instance = instance_store.get(conn, entry.instance_id)
        account = None
        if instance is not None and instance.account_id:
            try:
                account = AccountService(self.ctx).get(instance.account_id)
            except NotFoundError:
                instance = None  # its account (and so the instance) went away meanwhile
        if instance is None:
            message = f"{holder} died during the call; the instance is no longer in the inventory"
        else:
            try:
                outcome = self.ctx.providers.get(instance.provider).status(account, instance)
            except SnoozeError as exc:
                message = f"{holder} died during the call; could not read the state: {exc.message}"
            except Exception as exc:  # noqa: BLE001
                log.exception("reading the state of %s failed", instance.name)
                message = (f"{holder} died during the call; could not read the state "
                           f"(internal error {type(exc).__name__})")
            else:
                message = f"{holder} died during the call; {instance.name} is " \
                    f"{outcome.raw_status or outcome.status.value} now"
        try:
            act = LifecycleAction(entry.action)
        except ValueError:
            act = None
        confirmed = (outcome is not None and act in _SHOWS
                     and outcome.status in _SHOWS[act])  # type: ignore[index]
        details: dict[str, Any] = {"resolved_by": self.owner}
        if outcome is not None:
            details |= {"status": outcome.status.value, "raw_status": outcome.raw_status}
        if confirmed:
            details["resolution"] = CONFIRMED_AFTER_TAKEOVER
        elif act is LifecycleAction.RESTART and outcome is not None:
            message += "; a restart cannot be confirmed from the state"
        else:
            message += f", so the {entry.action} may not have happened"
        result = ActionResult.OK if confirmed else ActionResult.UNKNOWN
        with self.ctx.engine.begin() as conn:
            done = action_log.complete(
                conn, entry.id, result=result.value,
                finished_at=self.ctx.now(), error=None if confirmed else message, details=details,
            )
            if done and instance is not None and outcome is not None:
                instance_store.set_status(conn, instance.id, outcome.status, outcome.raw_status)
        if not done:
            return None  # another replica resolved it first
        log_action(
            self.ctx.telemetry, action_id=entry.id, action=entry.action, result=result.value,
            instance_id=entry.instance_id, instance_name=entry.instance_name,
            account_id=instance.account_id if instance is not None else None,
            provider=entry.provider, actor=entry.actor, reason=entry.reason,
            error=None if confirmed else message, resolution="takeover",
        )
        log.warning("pending %s of %s by %s resolved after takeover: %s", entry.action,
                    entry.instance_name, holder, "confirmed" if confirmed else "unknown")
        return Resolution(entry, instance, confirmed, message)
