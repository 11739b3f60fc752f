"""Stacks and service instances: create, change, merge, export, plan, apply.

The store keeps each instance as a reference to its template plus one override per kind
(entries one row each); this service turns those rows into domain values, calls the pure
merge and export code, and checks the cross-instance rules inside the same transaction
as the write: names unique among live rows, no host port published twice by enabled
instances of one stack, and the container name ``<prefix>-<stack>-<instance>`` short
enough. Secret env values go to the encrypted secrets table and come back as ``***``.

:class:`StackService` is put together from its parts: stack CRUD, restore and delete
preview here, instances and overrides in ``instances.py``, export and plan/apply/down in
``apply.py``, the shared base in ``base.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from snoozeql.domain.errors import ActionRefused, ConflictError, NotFoundError, ValidationError
from snoozeql.domain.stacks import validate_stack_name
from snoozeql.domain.stacks.runtime import UP_STATES, LiveState
from snoozeql.domain.validation import bounded_text
from snoozeql.services.stacks.apply import ApplyOps
from snoozeql.services.stacks.base import _same_time
from snoozeql.services.stacks.views import (
    AppliedObject,
    PreviewInstance,
    StackDeletePreview,
    StackView,
)
from snoozeql.store import stacks as store
from snoozeql.store.stacks import StackRecord

if TYPE_CHECKING:
    from sqlalchemy import Connection


class StackService(ApplyOps):
    """Stacks, their instances and overrides, export, plan, apply and down."""

    def create_stack(self, name: str, description: str = "", *, actor: str = "cli"
                     ) -> StackView:
        validate_stack_name(name, self.prefix)
        bounded_text(description or "", "description")
        with self.ctx.engine.begin() as conn:
            if store.stack_by_name(conn, name):
                raise ConflictError(self._stack_taken(name))
            try:
                sid = store.stack_insert(conn, name, description or "", self.ctx.now())
            except ConflictError:  # a concurrent create of the same name won
                raise ConflictError(self._stack_taken(name)) from None
            view = self._stack_view(conn, store.stack_get(conn, sid))  # type: ignore[arg-type]
            self._audit(conn, actor, "create", "stack", sid, name,
                        after=self._stack_json(view))
            return view

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

    def delete_stack_preview(self, name: str) -> StackDeletePreview:
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
            objects.append(AppliedObject(a.runtime_name, a.runtime, live.status,
                                         instance=a.instance_name))
        return StackDeletePreview(
            stack=s.name,
            instances=[
                PreviewInstance(r.name, r.template, r.enabled,
                                sum(o.entry_count for o in overrides[r.id].values()))
                for r in records
            ],
            applied=objects,
            running=[o.runtime_name for o in objects if o.state in UP_STATES],
            note="the delete is soft: the stack can be restored from the deleted list "
                 "(snoozeql stacks restore NAME --id ID); what still runs keeps running "
                 "unless it is taken down first (--down)",
        )

    def _pick_deleted(self, conn: Connection, name: str, stack_id: UUID | str | None,
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
        with self.ctx.engine.begin() as conn:
            if store.stack_by_name(conn, name):
                raise ConflictError(
                    f"a live stack named {name!r} exists; delete it (or rename it) "
                    "before restoring a deleted one"
                )
            s = self._pick_deleted(conn, name, stack_id, deleted_at)
            try:
                store.stack_update(conn, s.id, self.ctx.now(), deleted_at=None)
            except ConflictError:  # a concurrent create or restore won
                raise ConflictError(f"a live stack named {name!r} exists") from None
            view = self._stack_view(conn, store.stack_get(conn, s.id))  # type: ignore[arg-type]
            self._audit(conn, actor, "restore", "stack", s.id, s.name,
                        {**self._stack_json(view), "deleted": True}, self._stack_json(view))
            return view
