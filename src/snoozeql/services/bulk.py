"""Start, stop or restart many instances at once, named by reference or by selector.

Protected instances (``snoozeql-protect=true``) are attempted and refused with the
reason "protected" (in the results and the action log); ``--force`` is only for one
instance named alone, never for a bulk action.

One instance's failure never stops the others: each is carried out through
:class:`LifecycleService` (so every attempt lands in the action log) and the outcome is
reported per instance. The calls are independent cloud round trips, so they run in a
small thread pool.

Resolving a selector works on the stored inventory, never live from a cloud. Two kinds
of matched instances are left out, and reported as skipped rather than silently dropped:

- instances the last sync did not see (``missing_since`` set): acting on them would only
  be refused;
- members of a cluster that is itself selected: the cluster action covers them, and
  the provider would refuse them on their own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from snoozeql.domain.errors import ActionRefused, SnoozeError, ValidationError
from snoozeql.domain.protection import protected_refusal
from snoozeql.domain.selectors import Selector, parse_selector
from snoozeql.domain.types import (
    ActionResult,
    Instance,
    InstanceKind,
    InstanceStatus,
    LifecycleAction,
)
from snoozeql.services.accounts import AccountService
from snoozeql.services.context import Context
from snoozeql.services.inventory import InventoryService
from snoozeql.services.lifecycle import ACTIONS, LifecycleService

log = logging.getLogger(__name__)

MAX_REFS = 1000


def bulk_action(action: str | LifecycleAction) -> LifecycleAction:
    """The action, if it is one bulk operations do (start, stop, restart)."""
    try:
        act = LifecycleAction(action)
    except ValueError:
        act = None
    if act not in ACTIONS:
        raise ValidationError(f"unknown action {action!r}; use start, stop or restart")
    return act  # type: ignore[return-value]


@dataclass(frozen=True)
class Skipped:
    instance: Instance
    reason: str


@dataclass(frozen=True)
class Resolution:
    """The instances to act on, and the matched ones left out (with why)."""

    instances: list[Instance]
    skipped: list[Skipped]


@dataclass(frozen=True)
class BulkItemResult:
    instance: Instance
    result: ActionResult
    message: str | None
    status: InstanceStatus


class BulkService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.inventory = InventoryService(ctx)

    def resolve(
        self, ids: Sequence[str] | None, selector: Selector | dict[str, Any] | None
    ) -> list[Instance]:
        """The instances to act on (see :meth:`resolve_detailed` for the skipped ones)."""
        return self.resolve_detailed(ids, selector).instances

    def resolve_detailed(
        self, ids: Sequence[str] | None, selector: Selector | dict[str, Any] | None
    ) -> Resolution:
        """Exactly one of ``ids`` (id, ARN or name each) or ``selector``.

        Every reference must resolve, or nothing is returned: a typo in a list of ten
        names must not leave nine databases stopped and one running.
        """
        if (ids is None) == (selector is None):
            raise ValidationError("give exactly one of ids or selector")
        if ids is not None:
            return self._by_refs(ids)
        return self._by_selector(parse_selector(selector))

    def _by_refs(self, ids: Sequence[str]) -> Resolution:
        if not ids:
            raise ValidationError("ids must name at least one instance")
        if len(ids) > MAX_REFS:
            raise ValidationError(f"at most {MAX_REFS} instances per bulk request")
        found: list[Instance] = []
        errors: list[SnoozeError] = []
        for ref in ids:
            if not isinstance(ref, str) or not ref.strip():
                errors.append(ValidationError(f"bad instance reference {ref!r}"))
                continue
            try:
                inst = self.inventory.get(ref.strip())
            except SnoozeError as exc:
                errors.append(exc)
                continue
            if all(inst.id != f.id for f in found):
                found.append(inst)
        if errors:
            raise type(errors[0])("; ".join(e.message for e in errors))
        # Named explicitly: a missing instance is attempted (and refused, with the
        # reason, in the action log) rather than skipped behind the user's back.
        return self._drop_covered_members(found, [])

    def _by_selector(self, selector: Selector) -> Resolution:
        accounts = AccountService(self.ctx)
        for ref in sorted(selector.values("account")):
            accounts.get(ref)  # an unknown account is a typo, not "matches nothing"
        names = {a.id: a.name for a in accounts.list()}
        matched = selector.filter(self.inventory.list_all(self.inventory.build_filter()), names)
        present: list[Instance] = []
        skipped: list[Skipped] = []
        for inst in matched:
            if inst.missing_since is not None:
                skipped.append(Skipped(
                    inst, f"missing since {inst.missing_since:%Y-%m-%d %H:%M} UTC "
                          "(not seen by the last sync)"))
            else:
                present.append(inst)
        return self._drop_covered_members(present, skipped)

    @staticmethod
    def _drop_covered_members(instances: list[Instance], skipped: list[Skipped]) -> Resolution:
        clusters = {i.provider_id: i.name for i in instances if i.kind == InstanceKind.CLUSTER}
        keep: list[Instance] = []
        for inst in instances:
            cluster = clusters.get(inst.cluster_provider_id or "")
            if inst.kind != InstanceKind.CLUSTER and cluster is not None:
                skipped.append(Skipped(inst, f"member of cluster {cluster}, which is selected"))
            else:
                keep.append(inst)
        return Resolution(keep, skipped)

    def run(
        self, action: str | LifecycleAction, instances: Sequence[Instance], actor: str,
        reason: str = "manual",
    ) -> list[BulkItemResult]:
        """Act on each instance; results in the order given, whatever happens to each."""
        act = bulk_action(action)
        if not instances:
            return []
        lifecycle = LifecycleService(self.ctx)

        def one(inst: Instance) -> BulkItemResult:
            try:
                report = lifecycle.act(inst.id, act, actor=actor, reason=reason)
            except ActionRefused as exc:
                return BulkItemResult(inst, ActionResult.REFUSED, exc.message, inst.status)
            except SnoozeError as exc:
                return BulkItemResult(inst, ActionResult.FAILED, exc.message, inst.status)
            except Exception as exc:  # the store, say: report it, go on with the others
                log.exception("bulk %s of %s failed unexpectedly", act.value, inst.name)
                return BulkItemResult(
                    inst, ActionResult.FAILED,
                    f"internal error ({type(exc).__name__}); see the server log", inst.status,
                )
            return BulkItemResult(
                report.instance, ActionResult.OK, report.message, report.instance.status
            )

        workers = max(1, min(self.ctx.settings.discovery_workers, len(instances)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bulk") as pool:
            return list(pool.map(one, instances))

    @staticmethod
    def preview(action: str | LifecycleAction, instances: Sequence[Instance]) -> list[
            BulkItemResult]:
        """What :meth:`run` would attempt, without acting or logging (dry run); a
        protected instance shows as refused, as it would be."""
        act = bulk_action(action)
        out = []
        for i in instances:
            protected = protected_refusal(i, act.value)
            out.append(BulkItemResult(i, ActionResult.REFUSED, protected, i.status) if protected
                       else BulkItemResult(i, ActionResult.DRY_RUN, f"would {act.value}",
                                           i.status))
        return out
