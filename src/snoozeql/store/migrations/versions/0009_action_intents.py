"""Action intents: an action's log entry is written before the provider call.

The entry starts as ``pending`` with a lease (``actions.lease_until``) that its
holder's heartbeat renews, and is completed once with the outcome. The append-only
triggers of 0001 are replaced by ones that still refuse every DELETE and every UPDATE,
except an UPDATE of a ``pending`` entry that keeps what was asked (id, time, actor,
action, instance, reason) and only sets the outcome, the lease or the details.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from snoozeql.store.types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_MESSAGE = "the action log is append-only"


def _old_triggers(pg: bool) -> None:
    if pg:
        op.execute(
            "CREATE TRIGGER actions_append_only BEFORE UPDATE OR DELETE ON actions "
            "FOR EACH ROW EXECUTE FUNCTION snoozeql_actions_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER actions_no_{event.lower()} BEFORE {event} ON actions "
                f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
            )


def _drop_triggers(pg: bool) -> None:
    if pg:
        op.execute("DROP TRIGGER IF EXISTS actions_append_only ON actions")
        op.execute("DROP TRIGGER IF EXISTS actions_no_delete ON actions")
        op.execute("DROP TRIGGER IF EXISTS actions_complete_pending_only ON actions")
        op.execute("DROP FUNCTION IF EXISTS snoozeql_actions_complete_pending_only()")
    else:
        for name in ("actions_no_update", "actions_no_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("lease_until", UTCDateTime))
        batch.create_index("ix_actions_lease_until", ["lease_until"])
    _drop_triggers(pg)
    if pg:
        op.execute(
            f"""
            CREATE FUNCTION snoozeql_actions_complete_pending_only() RETURNS trigger AS $$
            BEGIN
              IF OLD.result = 'pending' AND NEW.id = OLD.id AND NEW.at = OLD.at
                 AND NEW.actor = OLD.actor AND NEW.action = OLD.action
                 AND NEW.instance_id IS NOT DISTINCT FROM OLD.instance_id
                 AND NEW.instance_name IS NOT DISTINCT FROM OLD.instance_name
                 AND NEW.reason = OLD.reason AND NEW.object_kind IS NULL THEN
                RETURN NEW;
              END IF;
              RAISE EXCEPTION '{_MESSAGE}';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER actions_complete_pending_only BEFORE UPDATE ON actions "
            "FOR EACH ROW EXECUTE FUNCTION snoozeql_actions_complete_pending_only()"
        )
        op.execute(
            "CREATE TRIGGER actions_no_delete BEFORE DELETE ON actions "
            "FOR EACH ROW EXECUTE FUNCTION snoozeql_actions_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER actions_no_update BEFORE UPDATE ON actions "
            "WHEN OLD.result IS NOT 'pending' OR NEW.id IS NOT OLD.id OR NEW.at IS NOT OLD.at "
            "OR NEW.actor IS NOT OLD.actor OR NEW.action IS NOT OLD.action "
            "OR NEW.instance_id IS NOT OLD.instance_id "
            "OR NEW.instance_name IS NOT OLD.instance_name OR NEW.reason IS NOT OLD.reason "
            "OR NEW.object_kind IS NOT NULL "
            f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
        )
        op.execute(
            "CREATE TRIGGER actions_no_delete BEFORE DELETE ON actions "
            f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
        )


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    _drop_triggers(pg)
    with op.batch_alter_table("actions") as batch:  # may rebuild the table on SQLite
        batch.drop_index("ix_actions_lease_until")
        batch.drop_column("lease_until")
    _old_triggers(pg)
