"""Templates: the built-in catalogue plus the user's own, stored in the database.

Built-in templates ship as data files (``domain/data/templates``) and are read once per
process; user templates are stored as their validated definition. A user template may not
take a built-in name, so a name always means one thing. Secret env values a user
template sets are kept in the encrypted secrets table, never in the definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import yaml

from snoozeql.domain.errors import ConflictError, NotFoundError, ValidationError
from snoozeql.domain.stacks import Template, load_builtin_templates, parse_template_yaml
from snoozeql.domain.stacks.entries import EnvVar
from snoozeql.services.context import Context
from snoozeql.services.secrets import SecretBox
from snoozeql.store import secrets as secret_store
from snoozeql.store import stacks as store
from snoozeql.store.stacks import StoredTemplate

if TYPE_CHECKING:
    from sqlalchemy import Connection

SECRET_SCOPE = "stack_template"


@lru_cache(maxsize=1)
def builtin_templates() -> dict[str, Template]:
    return load_builtin_templates()


@dataclass(frozen=True)
class TemplateInfo:
    """A template and whether it is built in (shown with its secret values masked by
    ``api/schemas/templates.py``)."""

    template: Template
    builtin: bool

    @property
    def name(self) -> str:
        return self.template.name


def parse_definition(
    definition: Mapping[str, Any] | str,
    name: str | None = None,
    default_name: str | None = None,
) -> Template:
    """A template from a Compose-style service mapping, a one-service Compose file, or
    the YAML text of either. ``name`` wins over the definition's own name;
    ``default_name`` (a file's stem) is used only when the definition names nothing."""
    if isinstance(definition, str):
        if name is None and default_name:
            try:
                data = yaml.safe_load(definition)
            except yaml.YAMLError:
                data = None
            if isinstance(data, dict) and "name" not in data and "services" not in data:
                name = default_name
        return parse_template_yaml(definition, name=name)
    if not isinstance(definition, Mapping):
        raise ValidationError("a template must be a mapping of service fields")
    if "services" in definition:
        return parse_template_yaml(yaml.safe_dump(dict(definition)), name=name)
    data = dict(definition)
    if name and "name" not in data:
        data["name"] = name
    return Template.from_dict(data)


class TemplateService:
    def __init__(self, ctx: Context, box: SecretBox | None = None) -> None:
        self.ctx = ctx
        self._box = box

    @property
    def box(self) -> SecretBox:
        if self._box is None:
            self._box = SecretBox(self.ctx.settings)
        return self._box

    def _load(self, conn: Connection, row: StoredTemplate) -> Template:
        """The stored template with its secret env values decrypted."""
        if not row.stored:
            return row.template
        values = secret_store.get_all(conn, SECRET_SCOPE, row.id)
        env = tuple(
            EnvVar(e.key, self.box.decrypt(values[e.key]), e.secret)
            if e.key in row.stored and e.key in values else e
            for e in row.template.environment
        )
        return replace(row.template, environment=env)

    def list(self) -> list[TemplateInfo]:
        out = [TemplateInfo(t, True) for t in builtin_templates().values()]
        with self.ctx.engine.connect() as conn:
            out += [TemplateInfo(self._load(conn, row), False)
                    for row in store.template_list(conn)]
        return sorted(out, key=lambda i: i.name)

    def find(self, conn: Connection, name: str) -> Template | None:
        builtin = builtin_templates().get(name)
        if builtin is not None:
            return builtin
        row = store.template_get(conn, name)
        return self._load(conn, row) if row else None

    def get(self, name: str) -> TemplateInfo:
        with self.ctx.engine.connect() as conn:
            template = self.find(conn, name)
        if template is None:
            raise NotFoundError(f"no template {name!r}; see `snoozeql templates list`")
        return TemplateInfo(template, name in builtin_templates())

    def add(
        self,
        definition: Mapping[str, Any] | str,
        name: str | None = None,
        default_name: str | None = None,
        *,
        admin: bool = True,
    ) -> TemplateInfo:
        """Store a user template. Its ports publish on 127.0.0.1 unless they name an
        address (another one needs ``admin``); its bind mounts follow the host-path
        rules (docs/stacks.md), checked again against the stack when it is used."""
        from snoozeql.domain.stacks.hostaccess import check_port_addresses, loopback_default
        from snoozeql.services.stacks import check_host_paths

        template = parse_definition(definition, name, default_name)
        template = replace(template, ports=loopback_default(template.ports))
        check_port_addresses(template.ports, admin)
        check_host_paths(self.ctx.settings, None, template.volumes)
        if template.name in builtin_templates():
            raise ConflictError(
                f"{template.name!r} is a built-in template; give yours another name"
            )
        tid = uuid4()
        now = self.ctx.now()
        secret_values = {
            e.key: e.value for e in template.environment if e.secret and e.value is not None
        }
        with self.ctx.engine.begin() as conn:
            if store.template_get(conn, template.name) is not None:
                raise ConflictError(
                    f"a template named {template.name!r} already exists; pick another "
                    f"name or remove it first (snoozeql templates remove {template.name})"
                )
            store.template_insert(conn, tid, template, secret_values, now)
            for key, value in secret_values.items():
                secret_store.put(conn, SECRET_SCOPE, tid, key, self.box.encrypt(value), now)
        return TemplateInfo(template, False)

    def remove(self, name: str) -> None:
        if name in builtin_templates():
            raise ValidationError(f"{name!r} is a built-in template and cannot be removed")
        with self.ctx.engine.begin() as conn:
            row = store.template_get(conn, name)
            if row is None:
                raise NotFoundError(f"no template {name!r}")
            users = store.template_in_use(conn, name)
            if users:
                shown = ", ".join(f"{s}/{i}" for s, i in users[:10])
                raise ConflictError(
                    f"template {name!r} is used by {len(users)} instance(s) ({shown}); "
                    "delete them first"
                )
            secret_store.delete(conn, SECRET_SCOPE, row.id)
            store.template_delete(conn, name)
