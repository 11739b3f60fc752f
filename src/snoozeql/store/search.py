"""Names of the search, tag and sort indexes of migration 0017.

They are made by the migration only (expression, GIN and FTS5 objects that
the store's table definitions do not describe); the schema comparison in the tests
skips them.
The queries that use them are in ``store/instances.py``.
"""

from __future__ import annotations

INDEX_NAMES = frozenset({
    "ix_instances_sort_engine", "ix_instances_sort_provider", "ix_instances_sort_status",
    "ix_instances_sort_region", "ix_instances_sort_instance_class",
    "ix_instances_sort_hourly_cost", "ix_instances_sort_first_seen_at",
    "ix_instances_tags", "ix_instances_trgm_name", "ix_instances_trgm_provider_id",
    "ix_instances_trgm_engine", "ix_instances_trgm_endpoint_host",
    "ix_instance_tags_key_value", "ix_instance_tags_instance_id",
    "ix_instances_filter_provider", "ix_instances_filter_engine",
    "ix_instances_filter_status", "ix_instances_filter_region", "ix_instances_filter_kind",
    "ix_instances_filter_missing",
})
# instance_tags and the FTS5 table with its shadow tables (SQLite only).
TABLE_PREFIXES = ("instance_tags", "instances_search")


def unmodelled(name: str | None, type_: str) -> bool:
    """True for an object made by a migration (0017: search indexes; 0019: the job
    queue's schema) rather than described by the store's tables."""
    if name is None:
        return False
    if name.startswith("procrastinate_") or name.startswith("idx_procrastinate_"):
        return True  # the job queue's schema, installed by 0019 from procrastinate's file
    if type_ == "table":
        return name.startswith(TABLE_PREFIXES)
    return type_ == "index" and name in INDEX_NAMES
