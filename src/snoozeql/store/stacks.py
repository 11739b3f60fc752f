"""Stacks: their tables and queries (user templates, stacks, service instances, overrides,
applied state), taking and returning domain values.

Design choices of the tables:

- Stacks and instances are soft-deleted (``deleted_at``); their names are unique among
  live rows only, through partial unique indexes (``WHERE deleted_at IS NULL``), which
  SQLite and PostgreSQL both support, so a deleted name can be reused at once. A write
  that would take a live name raises :class:`~snoozeql.domain.errors.ConflictError`.
- Overrides are normalised: one ``stack_overrides`` row per (instance, kind) holding the
  merge mode, and one ``stack_override_entries`` row per entry. A template is never
  copied into an instance.
- Secret env values live in the encrypted ``secrets`` table, never in these rows: the
  service encrypts them, and hands the store the keys it keeps there
  (``stored``); reading back, a stored entry's value comes through a callback.

Every lookup by name looks at live rows only.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from snoozeql.domain.errors import ConflictError
from snoozeql.domain.stacks import Override, OverrideKind, Template, parse_override
from snoozeql.domain.stacks.entries import Healthcheck
from snoozeql.store.schema import metadata
from snoozeql.store.types import LIKE_ESCAPE, JSONType, UTCDateTime, contains_pattern

# ---------------------------------------------------------------------------- tables

# User templates (the built-in catalogue ships as data files and is not stored).
# ``definition`` is the template's stored form (:func:`template_definition`): secret env
# values are left out (they are in the secrets table).
stack_templates = sa.Table(
    "stack_templates",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(63), nullable=False, unique=True),
    sa.Column("definition", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

stacks = sa.Table(
    "stacks",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime),
    sa.Index(
        "ux_stacks_live_name",
        "name",
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    ),
)

stack_instances = sa.Table(
    "stack_instances",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column(
        "stack_id", sa.Uuid, sa.ForeignKey("stacks.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("name", sa.String(63), nullable=False),
    # The template's name: built-in or user template, resolved when needed.
    sa.Column("template", sa.String(63), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    # Creation order within the stack (timestamps can tie under a fixed clock).
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime),
    sa.Index(
        "ux_stack_instances_live_name",
        "stack_id",
        "name",
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    ),
    sa.Index("ix_stack_instances_stack_id_seq", "stack_id", "seq"),
)

stack_overrides = sa.Table(
    "stack_overrides",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column(
        "instance_id",
        sa.Uuid,
        sa.ForeignKey("stack_instances.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("mode", sa.String(8), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("instance_id", "kind"),
)

# One row per entry of an override: a port, a volume, an env var (secret values are in
# the secrets table), a label, a domain, a healthcheck field, a config file.
stack_override_entries = sa.Table(
    "stack_override_entries",
    metadata,
    sa.Column(
        "override_id",
        sa.Uuid,
        sa.ForeignKey("stack_overrides.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("data", JSONType, nullable=False),
)

# What `apply` last brought up for a stack, one row per runtime object, so `plan` can
# compare the desired state with it. ``digest`` covers the redacted effective service.
stack_applied = sa.Table(
    "stack_applied",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column(
        "stack_id", sa.Uuid, sa.ForeignKey("stacks.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("instance_id", sa.Uuid, nullable=False),
    sa.Column("instance_name", sa.String(63), nullable=False),
    sa.Column("runtime_name", sa.String(63), nullable=False),
    sa.Column("runtime", sa.String(16), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("summary", JSONType, nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("stack_id", "runtime_name"),
)

# short names for the queries below
ta, ti, te, to = stack_applied, stack_instances, stack_override_entries, stack_overrides
tt, ts = stack_templates, stacks


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class StackRecord:
    id: UUID
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


@dataclass(frozen=True)
class InstanceRecord:
    id: UUID
    stack_id: UUID
    name: str
    template: str
    description: str
    enabled: bool
    seq: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


@dataclass(frozen=True)
class StoredTemplate:
    """A user template as stored: the values of the ``stored`` secret env keys are
    None here (they are in the secrets table, under the template's ``id``)."""

    id: UUID
    template: Template
    stored: frozenset[str]


@dataclass(frozen=True)
class OverrideRow:
    """One override: its kind, mode and the stored entry dicts in order."""

    kind: str
    mode: str
    entries: list[dict[str, Any]]


@dataclass(frozen=True)
class AppliedRecord:
    id: UUID
    stack_id: UUID
    instance_id: UUID
    instance_name: str
    runtime_name: str
    runtime: str
    digest: str
    state: str
    summary: dict[str, Any]
    applied_at: datetime


def _stack(r: Any) -> StackRecord:
    return StackRecord(r.id, r.name, r.description or "", r.created_at, r.updated_at,
                       r.deleted_at)


def _instance(r: Any) -> InstanceRecord:
    return InstanceRecord(
        r.id, r.stack_id, r.name, r.template, r.description or "", bool(r.enabled), r.seq,
        r.created_at, r.updated_at, r.deleted_at,
    )


# ------------------------------------------------------------------------ templates


def _written(conn: sa.Connection, statement: Any, taken: str) -> Any:
    """Run a write that may take a name unique among live rows: ConflictError(``taken``)
    when it does (the caller's transaction is then to be rolled back)."""
    try:
        return conn.execute(statement)
    except sa.exc.IntegrityError:
        raise ConflictError(taken) from None


_STORED_SECRETS = "x-stored-secrets"


def template_definition(template: Template, stored: Collection[str] = ()) -> dict[str, Any]:
    """The JSON a user template is stored as: its fields, with the values of the
    ``stored`` secret env keys left out and their names under ``x-stored-secrets``."""
    hc = template.healthcheck
    return {
        "name": template.name,
        "description": template.description,
        "engine": template.engine,
        "image": template.image,
        "command": list(template.command) if isinstance(template.command, tuple)
        else template.command,
        "environment": [
            {"key": e.key, "value": None if e.key in stored else e.value, "secret": e.secret}
            for e in template.environment
        ],
        "labels": [asdict(x) for x in template.labels],
        "ports": [asdict(p) for p in template.ports],
        "volumes": [asdict(v) for v in template.volumes],
        "healthcheck": hc.set_values() if hc is not None else None,
        "config_files": [asdict(c) for c in template.config_files],
        "domains": list(template.domains),
        _STORED_SECRETS: sorted(stored),
    }


def _template(r: Any) -> StoredTemplate:
    data = dict(r.definition)
    stored = frozenset(data.pop(_STORED_SECRETS, None) or ())
    return StoredTemplate(r.id, Template.from_dict(data), stored)


def template_get(conn: sa.Connection, name: str) -> StoredTemplate | None:
    r = conn.execute(sa.select(tt.c.id, tt.c.definition).where(tt.c.name == name)).first()
    return _template(r) if r else None


def template_list(conn: sa.Connection) -> list[StoredTemplate]:
    rows = conn.execute(sa.select(tt.c.id, tt.c.definition).order_by(tt.c.name))
    return [_template(r) for r in rows]


def template_insert(
    conn: sa.Connection, template_id: UUID, template: Template, stored: Collection[str],
    now: datetime,
) -> None:
    """Store a user template (see :func:`template_definition`); ConflictError when the
    name is taken."""
    _written(conn, tt.insert().values(
        id=template_id, name=template.name, definition=template_definition(template, stored),
        created_at=now, updated_at=now,
    ), f"a template named {template.name!r} already exists")


def template_delete(conn: sa.Connection, name: str) -> int:
    return conn.execute(tt.delete().where(tt.c.name == name)).rowcount


def template_in_use(conn: sa.Connection, name: str) -> list[tuple[str, str]]:
    """(stack, instance) pairs of live instances in live stacks using the template."""
    q = (
        sa.select(ts.c.name, ti.c.name)
        .select_from(ti.join(ts, ti.c.stack_id == ts.c.id))
        .where(ti.c.template == name, ti.c.deleted_at.is_(None), ts.c.deleted_at.is_(None))
        .order_by(ts.c.name, ti.c.seq)
    )
    return [(r[0], r[1]) for r in conn.execute(q)]


# --------------------------------------------------------------------------- stacks


def stack_insert(conn: sa.Connection, name: str, description: str, now: datetime) -> UUID:
    """Insert a live stack; ConflictError when a live stack has the name."""
    sid = uuid4()
    _written(conn, ts.insert().values(
        id=sid, name=name, description=description, created_at=now, updated_at=now,
    ), f"a stack named {name!r} already exists")
    return sid


def stack_get(conn: sa.Connection, stack_id: UUID) -> StackRecord | None:
    r = conn.execute(sa.select(ts).where(ts.c.id == stack_id)).first()
    return _stack(r) if r else None


def stack_by_name(conn: sa.Connection, name: str) -> StackRecord | None:
    r = conn.execute(
        sa.select(ts).where(ts.c.name == name, ts.c.deleted_at.is_(None))
    ).first()
    return _stack(r) if r else None


def stack_latest_deleted(conn: sa.Connection, name: str) -> StackRecord | None:
    r = conn.execute(
        sa.select(ts)
        .where(ts.c.name == name, ts.c.deleted_at.is_not(None))
        .order_by(ts.c.deleted_at.desc())
        .limit(1)
    ).first()
    return _stack(r) if r else None


def stack_deleted(conn: sa.Connection, name: str) -> list[StackRecord]:
    """The deleted stacks of that name, most recently deleted first."""
    q = (sa.select(ts).where(ts.c.name == name, ts.c.deleted_at.is_not(None))
         .order_by(ts.c.deleted_at.desc()))
    return [_stack(r) for r in conn.execute(q)]


def stack_list(conn: sa.Connection, include_deleted: bool = False) -> list[StackRecord]:
    q = sa.select(ts).order_by(ts.c.name, ts.c.created_at)
    if not include_deleted:
        q = q.where(ts.c.deleted_at.is_(None))
    return [_stack(r) for r in conn.execute(q)]


def stack_update(conn: sa.Connection, stack_id: UUID, now: datetime, **values: Any) -> None:
    """ConflictError when restoring (``deleted_at=None``) meets a live stack's name."""
    _written(conn, ts.update().where(ts.c.id == stack_id).values(updated_at=now, **values),
             "a live stack has that name")


def instance_counts(conn: sa.Connection, stack_ids: Sequence[UUID]) -> dict[UUID, int]:
    if not stack_ids:
        return {}
    q = (
        sa.select(ti.c.stack_id, sa.func.count())
        .where(ti.c.stack_id.in_(list(stack_ids)), ti.c.deleted_at.is_(None))
        .group_by(ti.c.stack_id)
    )
    return {r[0]: int(r[1]) for r in conn.execute(q)}


# ------------------------------------------------------------------------ instances


def instance_insert(
    conn: sa.Connection,
    stack_id: UUID,
    name: str,
    template: str,
    description: str,
    enabled: bool,
    now: datetime,
) -> UUID:
    """Insert a live instance; ``seq`` continues the stack's creation order.
    ConflictError when a live instance of the stack has the name."""
    seq = conn.execute(
        sa.select(sa.func.coalesce(sa.func.max(ti.c.seq), 0)).where(ti.c.stack_id == stack_id)
    ).scalar_one()
    iid = uuid4()
    _written(conn, ti.insert().values(
        id=iid, stack_id=stack_id, name=name, template=template, description=description,
        enabled=enabled, seq=int(seq) + 1, created_at=now, updated_at=now,
    ), f"the stack already has an instance named {name!r}")
    return iid


def instance_get(conn: sa.Connection, instance_id: UUID) -> InstanceRecord | None:
    r = conn.execute(sa.select(ti).where(ti.c.id == instance_id)).first()
    return _instance(r) if r else None


def instance_by_name(conn: sa.Connection, stack_id: UUID, name: str) -> InstanceRecord | None:
    r = conn.execute(
        sa.select(ti).where(
            ti.c.stack_id == stack_id, ti.c.name == name, ti.c.deleted_at.is_(None)
        )
    ).first()
    return _instance(r) if r else None


def instance_list(
    conn: sa.Connection,
    stack_id: UUID,
    *,
    search: str | None = None,
    enabled: bool | None = None,
) -> list[InstanceRecord]:
    """Live instances in creation order; ``search`` matches name, template, description."""
    q = sa.select(ti).where(ti.c.stack_id == stack_id, ti.c.deleted_at.is_(None))
    if enabled is not None:
        q = q.where(ti.c.enabled == enabled)
    if search:
        like, esc = contains_pattern(search), LIKE_ESCAPE
        q = q.where(sa.or_(
            sa.func.lower(ti.c.name).like(like, escape=esc),
            sa.func.lower(ti.c.template).like(like, escape=esc),
            sa.func.lower(ti.c.description).like(like, escape=esc),
        ))
    return [_instance(r) for r in conn.execute(q.order_by(ti.c.seq))]


def instance_update(conn: sa.Connection, instance_id: UUID, now: datetime, **values: Any) -> None:
    """ConflictError when a rename meets a live instance's name."""
    _written(conn, ti.update().where(ti.c.id == instance_id).values(updated_at=now, **values),
             "the stack already has an instance with that name")


# ------------------------------------------------------------------------ overrides


def overrides_for(
    conn: sa.Connection,
    instance_ids: Iterable[UUID],
    stored_value: Callable[[UUID, str], str | None],
) -> dict[UUID, dict[OverrideKind, Override]]:
    """Every override of the given instances, by kind, two queries in all.
    ``stored_value(instance_id, key)`` gives the value of a secret env var kept in the
    secrets table (or None)."""
    ids = list(instance_ids)
    out: dict[UUID, dict[OverrideKind, Override]] = {i: {} for i in ids}
    if not ids:
        return out
    heads = conn.execute(
        sa.select(to.c.id, to.c.instance_id, to.c.kind, to.c.mode)
        .where(to.c.instance_id.in_(ids))
        .order_by(to.c.instance_id, to.c.kind)
    ).all()
    entries: dict[UUID, list[dict[str, Any]]] = {h.id: [] for h in heads}
    if heads:
        rows = conn.execute(
            sa.select(te.c.override_id, te.c.data)
            .where(te.c.override_id.in_([h.id for h in heads]))
            .order_by(te.c.override_id, te.c.position)
        )
        for r in rows:
            entries[r.override_id].append(dict(r.data))
    for h in heads:
        o = row_to_override(OverrideRow(h.kind, h.mode, entries[h.id]),
                            partial(stored_value, h.instance_id))
        out[h.instance_id][o.kind] = o
    return out


def override_put(
    conn: sa.Connection,
    instance_id: UUID,
    o: Override,
    now: datetime,
    stored: Collection[str] = (),
) -> None:
    """Replace the instance's override of ``o.kind`` (head row plus one row per entry);
    the values of the ``stored`` env keys are left out (they are in the secrets table)."""
    override_delete(conn, instance_id, o.kind.value)
    oid = uuid4()
    conn.execute(to.insert().values(
        id=oid, instance_id=instance_id, kind=o.kind.value, mode=o.mode.value, updated_at=now,
    ))
    rows = override_entry_rows(o, stored)
    if rows:
        conn.execute(
            te.insert(),
            [{"override_id": oid, "position": i, "data": e} for i, e in enumerate(rows)],
        )


def override_delete(conn: sa.Connection, instance_id: UUID, kind: str) -> int:
    oid = conn.execute(
        sa.select(to.c.id).where(to.c.instance_id == instance_id, to.c.kind == kind)
    ).scalar_one_or_none()
    if oid is None:
        return 0
    conn.execute(te.delete().where(te.c.override_id == oid))
    return conn.execute(to.delete().where(to.c.id == oid)).rowcount


# -------------------------------------------------------------------- applied state


def _applied(r: Any) -> AppliedRecord:
    return AppliedRecord(
        r.id, r.stack_id, r.instance_id, r.instance_name, r.runtime_name, r.runtime,
        r.digest, r.state, dict(r.summary or {}), r.applied_at,
    )


def applied_list(conn: sa.Connection, stack_id: UUID) -> list[AppliedRecord]:
    q = sa.select(ta).where(ta.c.stack_id == stack_id).order_by(ta.c.runtime_name)
    return [_applied(r) for r in conn.execute(q)]


def applied_last(conn: sa.Connection, stack_ids: Sequence[UUID]) -> dict[UUID, datetime]:
    """When each stack's objects were last brought up by ``apply``."""
    if not stack_ids:
        return {}
    q = (sa.select(ta.c.stack_id, sa.func.max(ta.c.applied_at))
         .where(ta.c.stack_id.in_(list(stack_ids))).group_by(ta.c.stack_id))
    return {r[0]: r[1] for r in conn.execute(q) if r[1] is not None}


def applied_put(
    conn: sa.Connection,
    *,
    stack_id: UUID,
    instance_id: UUID,
    instance_name: str,
    runtime_name: str,
    runtime: str,
    digest: str,
    state: str,
    summary: dict[str, Any],
    now: datetime,
) -> None:
    values = dict(
        instance_id=instance_id, instance_name=instance_name, runtime=runtime, digest=digest,
        state=state, summary=summary, applied_at=now,
    )
    res = conn.execute(
        ta.update()
        .where(ta.c.stack_id == stack_id, ta.c.runtime_name == runtime_name)
        .values(**values)
    )
    if res.rowcount == 0:
        conn.execute(ta.insert().values(
            id=uuid4(), stack_id=stack_id, runtime_name=runtime_name, **values
        ))


def applied_set_state(
    conn: sa.Connection, stack_id: UUID, runtime_name: str, state: str,
    now: datetime | None = None,
) -> None:
    """Record the object's state; ``now`` (an apply that started it) also moves
    ``applied_at``, while ``down`` leaves it as the time of the last apply."""
    values: dict[str, Any] = {"state": state}
    if now is not None:
        values["applied_at"] = now
    conn.execute(
        ta.update()
        .where(ta.c.stack_id == stack_id, ta.c.runtime_name == runtime_name)
        .values(**values)
    )


def applied_delete(conn: sa.Connection, stack_id: UUID, runtime_name: str) -> int:
    return conn.execute(
        ta.delete().where(ta.c.stack_id == stack_id, ta.c.runtime_name == runtime_name)
    ).rowcount


# ------------------------------------------------------------------ row mapping


def override_data(o: Override) -> dict[str, Any]:
    """An override as plain JSON data, secret values included: ``{"kind", "mode",
    "entries"}``, where entries are entry dicts, host names, or healthcheck fields."""
    entries: Any
    if isinstance(o.entries, Healthcheck):
        entries = o.entries.set_values()
    elif o.kind is OverrideKind.DOMAINS:
        entries = list(o.entries)
    else:
        entries = [asdict(e) for e in o.entries]
    return {"kind": o.kind.value, "mode": o.mode.value, "entries": entries}


def override_entry_rows(o: Override, stored: Collection[str] = ()) -> list[dict[str, Any]]:
    """The rows one override is stored as; an env var whose key is in ``stored`` keeps
    no value (``"stored": true``: its value is in the secrets table)."""
    data = override_data(o)["entries"]
    if o.kind is OverrideKind.HEALTHCHECK:
        return [{"field": k, "value": v} for k, v in data.items()]
    if o.kind is OverrideKind.DOMAINS:
        return [{"domain": d} for d in data]
    if o.kind is OverrideKind.ENV_VARS:
        return [{**e, "value": None, "stored": True} if e["key"] in stored else e
                for e in data]
    return list(data)


def row_to_override(row: OverrideRow, stored_value: Callable[[str], str | None]) -> Override:
    """The override a stored row holds; ``stored_value(key)`` gives the value of an env
    var whose entry is marked ``stored`` (kept in the encrypted secrets table), or None."""
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
                e["value"] = stored_value(e["key"])
            entries.append(e)
    else:
        entries = row.entries
    return parse_override(row.kind, {"mode": row.mode, "entries": entries})
