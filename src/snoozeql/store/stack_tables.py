"""Tables of the stack manager: user templates, stacks, instances, overrides, applied state.

Defined on the one ``metadata`` of :mod:`snoozeql.store.schema` so migrations and the
schema check see them. Design choices that the issue asks for:

- Stacks and instances are soft-deleted (``deleted_at``); their names are unique among
  live rows only, through partial unique indexes (``WHERE deleted_at IS NULL``), which
  SQLite and PostgreSQL both support, so a deleted name can be reused at once.
- Overrides are normalised: one ``stack_overrides`` row per (instance, kind) holding the
  merge mode, and one ``stack_override_entries`` row per entry. A template is never
  copied into an instance.
- Secret env values live in the encrypted ``secrets`` table, never in these rows.
"""

from __future__ import annotations

import sqlalchemy as sa

from snoozeql.store.schema import metadata
from snoozeql.store.types import JSONType, UTCDateTime

__all__ = [
    "stack_applied",
    "stack_instances",
    "stack_override_entries",
    "stack_overrides",
    "stack_templates",
    "stacks",
]

# User templates (the built-in catalogue ships as data files and is not stored).
# ``definition`` is Template.to_dict() with secret env values left out (see secrets).
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
