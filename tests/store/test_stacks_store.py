"""The stacks store and the local-instance writes take domain values and answer a taken
name with the domain's ConflictError (never the driver's IntegrityError), on both stores."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from snoozeql.domain.errors import ConflictError
from snoozeql.domain.stacks import Template, parse_override
from snoozeql.domain.types import Instance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.services.context import Context
from snoozeql.store import instances as instance_store
from snoozeql.store import stacks as store

NOW = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)


def test_a_live_stack_name_is_taken_until_its_stack_is_deleted(ctx: Context) -> None:
    with ctx.engine.begin() as conn:
        first = store.stack_insert(conn, "shop", "", NOW)
    with pytest.raises(ConflictError, match="'shop' already exists"), ctx.engine.begin() as conn:
        store.stack_insert(conn, "shop", "", NOW)
    with ctx.engine.begin() as conn:
        store.stack_update(conn, first, NOW, deleted_at=NOW)
        store.stack_insert(conn, "shop", "again", NOW)
    # restoring the deleted one would make two live stacks of that name
    with pytest.raises(ConflictError), ctx.engine.begin() as conn:
        store.stack_update(conn, first, NOW, deleted_at=None)
    with ctx.engine.connect() as conn:
        assert [s.description for s in store.stack_list(conn)] == ["again"]


def test_instance_names_are_unique_among_live_instances(ctx: Context) -> None:
    with ctx.engine.begin() as conn:
        sid = store.stack_insert(conn, "shop", "", NOW)
        store.instance_insert(conn, sid, "db", "postgres", "", True, NOW)
        other = store.instance_insert(conn, sid, "cache", "redis", "", True, NOW)
    with pytest.raises(ConflictError, match="'db'"), ctx.engine.begin() as conn:
        store.instance_insert(conn, sid, "db", "redis", "", True, NOW)
    with pytest.raises(ConflictError), ctx.engine.begin() as conn:
        store.instance_update(conn, other, NOW, name="db")
    with ctx.engine.connect() as conn:
        assert [r.name for r in store.instance_list(conn, sid)] == ["db", "cache"]


def test_overrides_and_templates_go_in_and_come_back_as_domain_values(ctx: Context) -> None:
    env = parse_override("env_vars", {"entries": [
        {"key": "T", "value": "s3cr3t", "secret": True}, {"key": "P", "value": "p"}]})
    hc = parse_override("healthcheck", {"mode": "replace", "entries": {"retries": 2}})
    with ctx.engine.begin() as conn:
        sid = store.stack_insert(conn, "shop", "", NOW)
        iid = store.instance_insert(conn, sid, "web", "nginx", "", True, NOW)
        store.override_put(conn, iid, env, NOW, stored=["T"])
        store.override_put(conn, iid, hc, NOW)
    asked: list[tuple[object, str]] = []

    def stored_value(instance_id: object, key: str) -> str | None:
        asked.append((instance_id, key))
        return "s3cr3t"

    with ctx.engine.connect() as conn:
        back = store.overrides_for(conn, [iid], stored_value)[iid]
    assert back == {env.kind: env, hc.kind: hc} and asked == [(iid, "T")]

    t = Template.from_dict({"name": "api", "image": "i",
                            "environment": {"T": {"value": "s3cr3t", "secret": True}}})
    with ctx.engine.begin() as conn:
        store.template_insert(conn, uuid4(), t, ["T"], NOW)
    with pytest.raises(ConflictError, match="'api' already exists"), ctx.engine.begin() as conn:
        store.template_insert(conn, uuid4(), t, [], NOW)
    with ctx.engine.connect() as conn:
        found = store.template_get(conn, "api")
    assert found is not None and found.stored == {"T"}
    assert found.template.environment[0].value is None  # the value is the caller's to add


def _local(name: str) -> Instance:
    return Instance(
        id=uuid4(), account_id=None, provider=ProviderKind.LOCAL, provider_id=name,
        kind=InstanceKind.INSTANCE, name=name, engine="postgres", engine_version="16",
        instance_class=None, region=None, status=InstanceStatus.RUNNING, raw_status="up",
        tags={}, endpoint_host="127.0.0.1", endpoint_port=15432, multi_az=False,
        node_count=1, cluster_provider_id=None, hourly_cost_cents=None, first_seen_at=NOW,
        last_seen_at=NOW, missing_since=None, extra={"runtime": "native"},
    )


def test_a_local_instance_is_written_from_the_domain_instance(ctx: Context) -> None:
    pg1 = _local("pg1")
    with ctx.engine.begin() as conn:
        instance_store.add(conn, pg1)
    with (pytest.raises(ConflictError, match="'pg1' is already in the inventory"),
          ctx.engine.begin() as conn):
        instance_store.add(conn, _local("pg1"))
    with ctx.engine.connect() as conn:
        stored = instance_store.get(conn, pg1.id)
    assert stored is not None
    assert (stored.provider, stored.name, stored.endpoint_port, stored.extra) == (
        ProviderKind.LOCAL, "pg1", 15432, {"runtime": "native"})
