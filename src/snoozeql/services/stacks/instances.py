"""Stack instances: create, change, duplicate, rename, delete; their overrides (read from
and written to the store, secret env values encrypted) and generated secrets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from snoozeql.domain.errors import ConflictError, NotFoundError, ValidationError
from snoozeql.domain.stacks import (
    EffectiveService,
    MergeMode,
    Override,
    OverrideKind,
    Template,
    container_name,
    effective,
    parse_override,
    raise_on_clashes,
    validate_instance_name,
)
from snoozeql.domain.stacks.entries import EnvVar
from snoozeql.domain.stacks.hostaccess import check_port_addresses, loopback_default
from snoozeql.domain.stacks.names import suggest_name
from snoozeql.domain.validation import bounded_text
from snoozeql.services.passwords import generate_password
from snoozeql.services.stacks.base import (
    _ENV_PREFIX,
    RUNTIME_PASSWORD,
    SECRET_SCOPE,
    StackServiceBase,
    check_host_paths,
)
from snoozeql.services.stacks.views import (
    AppliedObject,
    InstanceDeletePreview,
    InstanceSecrets,
    InstanceView,
    SecretValue,
)
from snoozeql.store import secrets as secret_store
from snoozeql.store import stacks as store
from snoozeql.store.stacks import InstanceRecord, StackRecord

if TYPE_CHECKING:
    from sqlalchemy import Connection


class InstanceOps(StackServiceBase):
    """Instance CRUD and override row I/O."""

    def _load_overrides(
        self, conn: Connection, instance_ids: list[UUID]
    ) -> dict[UUID, dict[OverrideKind, Override]]:
        secrets: dict[UUID, dict[str, str]] = {}

        def stored_value(iid: UUID, key: str) -> str | None:
            if iid not in secrets:
                secrets[iid] = secret_store.get_all(conn, SECRET_SCOPE, iid)
            token = secrets[iid].get(_ENV_PREFIX + key)
            return self.box.decrypt(token) if token is not None else None

        return store.overrides_for(conn, instance_ids, stored_value)

    def _write_override(self, conn: Connection, iid: UUID, o: Override) -> None:
        """Store the override; its secret env values go to the secrets table, encrypted."""
        now = self.ctx.now()
        stored: list[str] = []
        if o.kind is OverrideKind.ENV_VARS:
            for name in secret_store.get_all(conn, SECRET_SCOPE, iid):
                if name.startswith(_ENV_PREFIX):
                    secret_store.delete(conn, SECRET_SCOPE, iid, name)
            assert isinstance(o.entries, tuple)
            for entry in o.entries:
                if entry.secret and entry.value is not None:
                    secret_store.put(conn, SECRET_SCOPE, iid, _ENV_PREFIX + entry.key,
                                     self.box.encrypt(entry.value), now)
                    stored.append(entry.key)
        store.override_put(conn, iid, o, now, stored)

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

    def _template(self, conn: Connection, name: str) -> Template:
        t = self.templates.find(conn, name)
        if t is None:
            raise NotFoundError(
                f"template {name!r} no longer exists; add it again (snoozeql templates add)"
            )
        return t

    def _instance(self, conn: Connection, stack: StackRecord, name: str) -> InstanceRecord:
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
            overrides=tuple(ordered), created_at=r.created_at,
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
        conn: Connection,
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
        with self.ctx.engine.begin() as conn:
            stack = self._stack(conn, stack_name)
            if store.instance_by_name(conn, stack.id, name):
                raise ConflictError(self._taken(stack.name, name))
            if enabled:
                self._check_clashes(conn, stack, (None, name, svc))
            try:
                iid = store.instance_insert(
                    conn, stack.id, name, tmpl.name, description or "", enabled, self.ctx.now()
                )
            except ConflictError:  # a concurrent create of the same name won
                raise ConflictError(self._taken(stack.name, name)) from None
            for o in parsed.values():
                self._write_override(conn, iid, o)
            view = self._view(stack, store.instance_get(conn, iid), parsed)  # type: ignore[arg-type]
            self._audit(conn, actor, "create", "stack_instance", iid,
                        f"{stack.name}/{name}", after=self._instance_json(view))
            return view

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
        parsed = InstanceOps._secret_as_declared(tmpl, parsed)
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

    def delete_preview(self, stack_name: str, name: str) -> InstanceDeletePreview:
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
        return InstanceDeletePreview(
            stack=stack.name,
            instance=r.name,
            container_name=view.container_name,
            enabled=r.enabled,
            overrides={o.kind.value: o.entry_count for o in view.overrides},
            override_count=view.override_count,
            secret_env_vars=sorted(secret_names),
            volumes=[f"{r.name}_{v.source}" for v in svc.volumes
                     if v.type == "volume" and v.source],
            applied=[AppliedObject(a.runtime_name, a.runtime, a.state) for a in applied],
            note="the delete is soft: the name can be reused at once; the next "
                 "`stacks apply` removes what is listed under applied (keeping its data)",
        )

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
            try:
                iid = store.instance_insert(
                    conn, stack.id, target, src.template, src.description, on, self.ctx.now()
                )
            except ConflictError:  # a concurrent create of the same name won
                raise ConflictError(self._taken(stack.name, target)) from None
            for o in overrides.values():
                self._write_override(conn, iid, o)
            view = self._view(stack, store.instance_get(conn, iid), overrides)  # type: ignore[arg-type]
            self._audit(conn, actor, "create", "stack_instance", iid,
                        f"{stack.name}/{target}",
                        after={**self._instance_json(view), "copied_from": src.name})
            return view

    def rename_instance(self, stack_name: str, name: str, new_name: str, *,
                        actor: str = "cli") -> InstanceView:
        with self.ctx.engine.begin() as conn:
            stack = self._stack(conn, stack_name)
            r = self._instance(conn, stack, name)
            validate_instance_name(new_name, stack.name, self.prefix)
            if new_name != name:
                if store.instance_by_name(conn, stack.id, new_name):
                    raise ConflictError(self._taken(stack.name, new_name))
                try:
                    store.instance_update(conn, r.id, self.ctx.now(), name=new_name)
                except ConflictError:  # a concurrent create or rename won
                    raise ConflictError(self._taken(stack.name, new_name)) from None
                self._audit(conn, actor, "update", "stack_instance", r.id,
                            f"{stack.name}/{new_name}", {"name": name}, {"name": new_name})
            overrides = self._load_overrides(conn, [r.id])[r.id]
            return self._view(stack, store.instance_get(conn, r.id), overrides)  # type: ignore[arg-type]

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
                        store.override_data(old) if old else None, store.override_data(o))
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
                            f"{stack.name}/{r.name}/{k.value}",
                            before=store.override_data(old),
                            after=store.override_data(kept) if kept is not None else None)
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

    def secrets(self, stack_name: str, name: str) -> InstanceSecrets:
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
        entries = [SecretValue(e.key, e.value, origin.get(e.key, "template"))
                   for e in svc.environment if e.secret]
        password: str | None = None
        password_from: str | None = None
        if svc.engine:
            var = self._password_var(svc)
            if var is not None:
                password, password_from = svc.env()[var], var
            elif token is not None:
                password, password_from = self.box.decrypt(token), "generated at apply"
        return InstanceSecrets(
            stack=stack.name, instance=r.name,
            container_name=container_name(self.prefix, stack.name, r.name),
            engine=svc.engine, env_vars=entries,
            database_password=password, database_password_from=password_from,
        )
