"""Stacks: the Compose export, plan, apply, down and live state.

``plan`` compares the desired state (the stack's enabled instances) with what ``apply``
last recorded; ``apply`` and ``down`` carry the plan out through a
:class:`~snoozeql.domain.stacks.runtime.StackRuntime` (by default the local runtimes,
``providers/local/runtimes.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from snoozeql.domain.errors import ConflictError, NotFoundError, SnoozeError, ValidationError
from snoozeql.domain.stacks import (
    ComposeExport,
    EffectiveService,
    container_name,
    effective,
    to_compose,
)
from snoozeql.domain.stacks.compose import ConfigStyle, SecretMode
from snoozeql.domain.stacks.runtime import UP_STATES, DesiredUnit, LiveState
from snoozeql.services.passwords import generate_password
from snoozeql.services.stacks.base import RUNTIME_PASSWORD, SECRET_SCOPE, check_host_paths
from snoozeql.services.stacks.instances import InstanceOps
from snoozeql.services.stacks.views import Plan, PlanItem, Progress, StepResult
from snoozeql.store import secrets as secret_store
from snoozeql.store import stacks as store
from snoozeql.store.stacks import AppliedRecord, InstanceRecord, StackRecord

if TYPE_CHECKING:
    from sqlalchemy import Connection


class ApplyOps(InstanceOps):
    """Export, plan, apply, down and the live state of a stack's instances."""

    def _enabled_services(
        self, conn: Connection, stack: StackRecord
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

    def _desired(self, conn: Connection, stack: StackRecord) -> list[DesiredUnit]:
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
            from snoozeql.providers.local import containers

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
        self, conn: Connection, stack: StackRecord
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

    def _live_states(self, conn: Connection, stack: StackRecord) -> dict[str, LiveState]:
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

    def _password(self, conn: Connection, unit: DesiredUnit) -> str:
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

