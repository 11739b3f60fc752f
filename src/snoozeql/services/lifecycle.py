"""Start, stop and restart, through the instance's provider, with an action-log entry.

Every attempt is recorded, whatever its result: ``ok``, ``refused`` (the provider or
a rule of ours will not do it, with the reason) or ``failed`` (the call failed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

from snoozeql.domain.errors import ActionRefused, ProviderError, SnoozeError, ValidationError
from snoozeql.domain.types import ActionResult, Instance, LifecycleAction
from snoozeql.services.context import Context
from snoozeql.services.external import refuse_action
from snoozeql.services.inventory import InventoryService
from snoozeql.services.local_databases import bind_password_lookup
from snoozeql.store import accounts as account_store
from snoozeql.store import actions as action_log
from snoozeql.store import instances as instance_store

log = logging.getLogger(__name__)

ACTIONS = (LifecycleAction.START, LifecycleAction.STOP, LifecycleAction.RESTART)


@dataclass(frozen=True)
class ActionReport:
    action_id: UUID
    instance: Instance
    action: LifecycleAction
    result: ActionResult
    message: str | None


class LifecycleService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.inventory = InventoryService(ctx)
        bind_password_lookup(ctx)  # local/docker providers need the decrypted password

    def act(
        self, ref: str | UUID, action: str | LifecycleAction, *, actor: str,
        reason: str = "manual",
    ) -> ActionReport:
        """Carry out ``action``; raises ActionRefused/ProviderError after logging them."""
        try:
            act = LifecycleAction(action)
        except ValueError:
            raise ValidationError(
                f"unknown action {action!r}; use start, stop or restart"
            ) from None
        if act not in ACTIONS:
            raise ValidationError(f"{act.value} is not a start/stop/restart action")
        instance = self.inventory.get(ref)
        started = self.ctx.now()
        try:
            if instance.missing_since is not None:
                raise ActionRefused(
                    f"{instance.name} was not seen by the last sync (missing since "
                    f"{instance.missing_since:%Y-%m-%d %H:%M} UTC); sync its account first"
                )
            refuse_action(instance, act.value)
            with self.ctx.engine.connect() as conn:
                account = (
                    account_store.get(conn, instance.account_id) if instance.account_id else None
                )
            provider = self.ctx.providers.get(instance.provider)
            outcome = getattr(provider, act.value)(account, instance)
        except ActionRefused as exc:
            self._record(instance, act, actor, reason, started, ActionResult.REFUSED, exc.message)
            raise
        except SnoozeError as exc:
            with self.ctx.engine.begin() as conn:
                instance_store.set_status(
                    conn, instance.id, instance.status, instance.raw_status, exc.message
                )
            self._record(instance, act, actor, reason, started, ActionResult.FAILED, exc.message)
            raise
        except Exception as exc:
            log.exception("%s of %s failed unexpectedly", act.value, instance.name)
            message = f"internal error ({type(exc).__name__}); see the server log"
            self._record(instance, act, actor, reason, started, ActionResult.FAILED, message)
            raise ProviderError(message) from exc
        with self.ctx.engine.begin() as conn:
            instance_store.set_status(conn, instance.id, outcome.status, outcome.raw_status)
        action_id = self._record(
            instance, act, actor, reason, started, ActionResult.OK, None,
            {"status": outcome.status.value, "raw_status": outcome.raw_status},
        )
        return ActionReport(
            action_id, self.inventory.get(instance.id), act, ActionResult.OK, outcome.message
        )

    def _record(
        self, instance: Instance, act: LifecycleAction, actor: str, reason: str, started,  # noqa: ANN001
        result: ActionResult, error: str | None, details: dict | None = None,
    ) -> UUID:
        with self.ctx.engine.begin() as conn:
            return action_log.append(
                conn, at=started, finished_at=self.ctx.now(), actor=actor, action=act.value,
                reason=reason, result=result.value, instance_id=instance.id,
                instance_name=instance.name, provider=instance.provider.value, error=error,
                details=details,
            )
