"""SQLAlchemy Core tables: the one description of the schema.

Migrations in ``store/migrations`` create exactly these tables; a test checks that
the migrated schema and this metadata agree.
"""

from __future__ import annotations

import sqlalchemy as sa

from snoozeql.store.schema import metadata
from snoozeql.store.types import JSONType, UTCDateTime

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(63), nullable=False, unique=True),
    sa.Column("provider", sa.String(16), nullable=False),
    # Provider settings (regions, profile, role ARN, endpoint, projects, key file
    # path). Never a secret: credentials come from the provider's own chain.
    sa.Column("config", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="unknown"),
    sa.Column("last_sync_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # When the metric history was read after the first sync (day-one backfill, claimed
    # once: services/metrics.py); NULL: not yet.
    sa.Column("history_read_at", UTCDateTime),
)

instances = sa.Table(
    "instances",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, sa.ForeignKey("accounts.id", ondelete="CASCADE")),
    sa.Column("provider", sa.String(16), nullable=False),
    sa.Column("provider_id", sa.String(512), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("engine", sa.String(64), nullable=False),
    sa.Column("engine_version", sa.String(64)),
    sa.Column("instance_class", sa.String(64)),
    sa.Column("region", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("raw_status", sa.String(64)),
    sa.Column("tags", JSONType, nullable=False),
    sa.Column("endpoint_host", sa.String(255)),
    sa.Column("endpoint_port", sa.Integer),
    sa.Column("multi_az", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("node_count", sa.Integer, nullable=False, server_default="1"),
    sa.Column("cluster_provider_id", sa.String(512)),
    sa.Column("hourly_cost_cents", sa.Numeric(14, 4)),
    sa.Column("extra", JSONType, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("missing_since", UTCDateTime),
    # Digest of the synced columns as discovery last wrote them (store/instances.py);
    # NULL after any other write to those columns, so the next sync rewrites the row.
    sa.Column("sync_hash", sa.String(32)),
    sa.UniqueConstraint("provider", "provider_id"),
    sa.Index("ix_instances_name_id", "name", "id"),
    sa.Index("ix_instances_account_id", "account_id"),
    sa.Index(
        "ix_instances_cluster_provider_id", "cluster_provider_id",
        postgresql_where=sa.text("cluster_provider_id IS NOT NULL"),
        sqlite_where=sa.text("cluster_provider_id IS NOT NULL"),
    ),
)

# Append-only: rows are inserted once, never deleted, and never updated, except that an
# action's intent (result ``pending``, written before the provider call) is completed
# once with its outcome, and its lease renewed until then (database triggers enforce
# it, migration 0009). One row per action attempt, with its outcome.
actions = sa.Table(
    "actions",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("instance_id", sa.Uuid),
    sa.Column("instance_name", sa.String(255)),
    sa.Column("provider", sa.String(16)),
    sa.Column("reason", sa.String(255), nullable=False),
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("details", JSONType, nullable=False),
    # Audit entries (changes to accounts, schedules, keys, stacks, ...): the object
    # changed and its redacted state before and after (services/audit.py).
    sa.Column("object_kind", sa.String(32)),
    sa.Column("object_id", sa.String(64)),
    sa.Column("object_name", sa.String(255)),
    sa.Column("before", JSONType),
    sa.Column("after", JSONType),
    # While ``pending``: until when the intent's holder is alive (renewed by its
    # heartbeat); a pending entry past it is resolved by a takeover. NULL once completed.
    sa.Column("lease_until", UTCDateTime),
    sa.Index("ix_actions_at", "at"),
    sa.Index("ix_actions_lease_until", "lease_until"),
    sa.Index("ix_actions_instance_id", "instance_id"),
    sa.Index("ix_actions_object_kind", "object_kind"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(63), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    # SHA-256 of the whole key; the key itself is shown once and never stored.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_used_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
)

# Prices learnt from a provider's price API, so each lookup costs one call per
# (provider, class, engine, region, deployment) and survives restarts.
price_cache = sa.Table(
    "price_cache",
    metadata,
    sa.Column("provider", sa.String(16), primary_key=True),
    sa.Column("instance_class", sa.String(64), primary_key=True),
    sa.Column("engine", sa.String(64), primary_key=True),
    sa.Column("region", sa.String(64), primary_key=True),
    sa.Column("deployment", sa.String(16), primary_key=True),
    # NULL means "asked, and the price list has no such product".
    sa.Column("usd_per_hour", sa.Numeric(14, 6)),
    sa.Column("fetched_at", UTCDateTime, nullable=False),
)

# Periodic jobs: one row per job; a replica runs a job only after claiming its row
# with a conditional UPDATE, so several replicas never run the same job twice.
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("next_run_at", UTCDateTime, nullable=False),
    sa.Column("locked_by", sa.String(128)),
    sa.Column("locked_until", UTCDateTime),
    sa.Column("last_started_at", UTCDateTime),
    sa.Column("last_finished_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
)

# Runs of background tasks, one row per run, for `snoozeql jobs list` and
# GET /api/v1/jobs: written by the in-process runner (SQLite, or PostgreSQL without a
# queue) and by queue workers alike, so both show the same shape. ``job_id`` is the
# queue's job id (None in process); ``attempt`` counts from 0 (a retry is > 0).
job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("task", sa.String(64), nullable=False),
    sa.Column("args", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("worker", sa.String(160), nullable=False),
    sa.Column("job_id", sa.BigInteger),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("error", sa.Text),
    sa.Index("ix_job_runs_started", "started_at"),
    sa.Index("ix_job_runs_job", "job_id"),
)

# The parts of one queued sync of an account, one per region (AWS) or project (GCP),
# each found by its own task; the task that brings the last part writes them all in
# one transaction, as a whole-account sync does (services/discovery.py, sync_scope).
sync_parts = sa.Table(
    "sync_parts",
    metadata,
    sa.Column("account_id", sa.Uuid, sa.ForeignKey("accounts.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("round", sa.String(64), primary_key=True),
    sa.Column("scope", sa.String(255), primary_key=True),
    sa.Column("items", JSONType, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("found_at", UTCDateTime, nullable=False),
)

# Encrypted secrets (local database passwords, secret env values of stack instances).
# ``ciphertext`` is Fernet output (services/secrets.py); plaintext never reaches the store.
secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("scope", sa.String(32), nullable=False),
    sa.Column("owner_id", sa.Uuid, nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("ciphertext", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("scope", "owner_id", "name"),
)

# One counter per kind of data ("instances", "metrics"), bumped in the same transaction
# as every write to it. Derived results cached in a process (the fleet's
# recommendations) record the counters they were computed from, and are recomputed
# when the store's counters moved: the check is one small read, and it is right across
# processes and replicas.
data_versions = sa.Table(
    "data_versions",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)

# The store's own id (one row, made by migration 0011): files kept outside the database
# carry it in a marker so two stores never share them (services/datadir.py).
store_identity = sa.Table(
    "store_identity",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Dashboard sessions: a browser's sign-in, exchanged for an API key. Only the SHA-256
# of the session token is kept; the key's role and revocation apply on every request.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "key_id", sa.Uuid, sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False,
        index=True,
    ),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
)

# Per-instance version of its metrics: the recommendations re-analyse only instances
# whose metrics changed since the last analysis (store/versions.py).
instance_data_versions = sa.Table(
    "instance_data_versions",
    metadata,
    sa.Column("instance_id", sa.Uuid, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Index("ix_instance_data_versions_version", "version"),
)
