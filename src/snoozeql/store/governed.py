"""Which instances the reconciler has to look at: the governed ones, found in SQL.

A reconcile run must cost what the governed instances cost, not what the fleet costs
(issue 19). An instance is *governed* when something could decide its state: an
assignment (to the instance, its account, one of its tags, a selector), its own
``snoozeql-schedule`` tag naming a schedule, or an override. This module turns the
assignments into one WHERE clause that picks every candidate (a superset of the
governed instances) and reads them as a narrow projection:

- instance, account and tag assignments and overrides are exact conditions;
- a selector is pushed down as a necessary condition: ``provider``, ``region``,
  ``engine`` and ``account`` become ``IN`` lists, a ``tag`` with an exact key becomes
  "has that key"; ``name`` and regex conditions cannot be pushed down and are left to
  the caller, which evaluates the whole selector in Python on the candidates.

With no assignment, no schedule and no override the scan reads no instance at all.
The rows come back as :class:`Instance` values holding only the columns planning uses
(see :data:`NARROW`); the others are empty (``extra`` too: :func:`extras` reads it).
Read the full row (:func:`for_action`, or :func:`snoozeql.store.instances.get`) before
acting on one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from snoozeql.domain.schedules.assignment import AssignmentRecord
from snoozeql.domain.selectors import (
    AllOf,
    AnyOf,
    FieldRule,
    Rule,
    Selector,
    TagRule,
    parse_selector,
)
from snoozeql.domain.types import Instance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.store import instances as instance_store
from snoozeql.store.actions import actions
from snoozeql.store.instances import instances as t
from snoozeql.store.schedules import stop_intervals

__all__ = ["NARROW", "cluster_ids", "extras", "for_action", "running_while_open", "scan",
           "selector_condition", "where"]

#: The columns a plan needs (who it is, what governs it, its state, its cost).
NARROW = (
    "id", "account_id", "provider", "provider_id", "kind", "name", "engine", "region",
    "status", "tags", "node_count", "cluster_provider_id", "hourly_cost_cents",
    "first_seen_at",
)
_ID_CHUNK = 500
_JSONB_TAGS = sa.type_coerce(t.c.tags, postgresql.JSONB())


def _has_tag(key: str, pg: bool) -> Any:
    # On PostgreSQL ``tags ? key`` and ``tags @> {key: value}`` can use a GIN index on
    # tags; they mean the same as the portable forms for string-valued tags.
    if pg:
        return _JSONB_TAGS.has_key(key)
    return t.c.tags[key].as_string().is_not(None)


def _tag_is(key: str, value: str | None, pg: bool) -> Any:
    if pg and value is not None:
        return _JSONB_TAGS.contains({key: value})
    return t.c.tags[key].as_string() == value


def selector_condition(rule: Rule, account_ids: dict[str, list[UUID]], pg: bool = False
                       ) -> Any:
    """A SQL condition every instance the rule selects satisfies (``true()`` when
    nothing can be pushed down). ``account_ids`` maps account names to their ids."""
    if isinstance(rule, AllOf):
        return sa.and_(*(selector_condition(r, account_ids, pg) for r in rule.rules))
    if isinstance(rule, AnyOf):
        return sa.or_(*(selector_condition(r, account_ids, pg) for r in rule.rules))
    if isinstance(rule, FieldRule):
        if rule.field in ("provider", "region", "engine"):
            return t.c[rule.field].in_(list(rule.values))
        ids: list[UUID] = []
        for v in rule.values:
            ids.extend(account_ids.get(v, []))
            try:
                ids.append(UUID(v))
            except ValueError:
                pass
        return t.c.account_id.in_(ids) if ids else sa.false()
    if isinstance(rule, TagRule) and rule.key is not None and (
            rule.value is not None or rule.exists):
        return _has_tag(rule.key, pg)
    return sa.true()  # a name regex, a key regex, "no tag K": decided in Python


def where(assignments: Iterable[AssignmentRecord], *, own_tag: str | None,
          extra_ids: Iterable[UUID], account_names: dict[UUID, str],
          dialect: str = "sqlite") -> Any | None:
    """The candidates' condition (None: there are none). ``own_tag``: the tag through
    which an instance names its own schedule (None when no schedule exists);
    ``extra_ids``: instances to read anyway (their overrides)."""
    pg = dialect == "postgresql"
    by_name: dict[str, list[UUID]] = {}
    for aid, name in account_names.items():
        by_name.setdefault(name, []).append(aid)
    ids = set(extra_ids)
    accounts: set[UUID] = set()
    parts: list[Any] = []
    for a in assignments:
        if a.kind == "instance" and a.instance_id:
            ids.add(a.instance_id)
        elif a.kind == "account" and a.account_id:
            accounts.add(a.account_id)
        elif a.kind == "tag" and a.tag_key:
            parts.append(_tag_is(a.tag_key, a.tag_value, pg))
        elif a.kind == "selector" and a.selector is not None:
            sel: Selector = parse_selector(a.selector)
            parts.append(selector_condition(sel.root, by_name, pg))
    if own_tag is not None:
        parts.append(_has_tag(own_tag, pg))
    if accounts:
        parts.append(t.c.account_id.in_(sorted(accounts)))
    id_list = sorted(ids)
    for i in range(0, len(id_list), _ID_CHUNK):
        parts.append(t.c.id.in_(id_list[i:i + _ID_CHUNK]))
    if not parts:
        return None
    return sa.and_(t.c.missing_since.is_(None), sa.or_(*parts))


#: The empty ``extra`` (and, once resolved, ``tags``) every narrow row shares: the
#: reconciler keeps these rows to read, never to write (20,000 governed instances held
#: 20,000 empty dicts, 2.5 MB).
NO_VALUES: dict[str, Any] = {}


def _narrow(r: Any, shared: dict[Any, Any]) -> Instance:
    # ``shared``: one object per distinct account id, engine and region of a scan (the
    # reconciler keeps these rows for as long as nothing moves).
    one = shared.setdefault
    return Instance(
        id=r.id, account_id=one(r.account_id, r.account_id), provider=ProviderKind(r.provider),
        provider_id=r.provider_id, kind=InstanceKind(r.kind), name=r.name,
        engine=one(r.engine, r.engine), engine_version=None, instance_class=None,
        region=one(r.region, r.region),
        status=InstanceStatus(r.status), raw_status=None, tags=r.tags or NO_VALUES,
        endpoint_host=None, endpoint_port=None, multi_az=False, node_count=r.node_count,
        cluster_provider_id=r.cluster_provider_id, hourly_cost_cents=r.hourly_cost_cents,
        first_seen_at=r.first_seen_at, last_seen_at=r.first_seen_at, missing_since=None,
        last_error=None, extra=NO_VALUES,
    )


def scan(conn: sa.Connection, condition: Any, *, chunk: int = 2_000
         ) -> Iterator[list[Instance]]:
    """The candidates, in chunks, as narrow :class:`Instance` values (streamed, so a
    broad selector does not hold the fleet in memory at once)."""
    q = sa.select(*(t.c[c] for c in NARROW)).where(condition).order_by(t.c.name, t.c.id)
    result = conn.execution_options(stream_results=True, yield_per=chunk).execute(q)
    shared: dict[Any, Any] = {}
    for part in result.partitions(chunk):
        yield [_narrow(r, shared) for r in part]


def extras(conn: sa.Connection, ids: Iterable[UUID]) -> dict[UUID, dict[str, Any]]:
    """The ``extra`` column of these instances (left out of :data:`NARROW`)."""
    wanted = sorted(set(ids))
    out: dict[UUID, dict[str, Any]] = {}
    for i in range(0, len(wanted), _ID_CHUNK):
        for r in conn.execute(sa.select(t.c.id, t.c.extra).where(
                t.c.id.in_(wanted[i:i + _ID_CHUNK]))):
            out[r.id] = dict(r.extra or {})
    return out


def cluster_ids(conn: sa.Connection, provider_ids: Iterable[str]) -> set[str]:
    """Which of these provider ids are clusters in the inventory (not missing)."""
    wanted = sorted(set(provider_ids))
    out: set[str] = set()
    for i in range(0, len(wanted), _ID_CHUNK):
        out |= set(conn.execute(sa.select(t.c.provider_id).where(
            t.c.kind == InstanceKind.CLUSTER.value, t.c.missing_since.is_(None),
            t.c.provider_id.in_(wanted[i:i + _ID_CHUNK]))).scalars())
    return out


def running_while_open(conn: sa.Connection, statuses: Iterable[str]) -> list[UUID]:
    """The instances (not missing) in one of ``statuses`` that have a stop interval not
    closed yet (one statement: only these few rows come back)."""
    si = stop_intervals.c
    q = (sa.select(t.c.id).distinct()
         .join(stop_intervals, si.instance_id == t.c.id)
         .where(si.started_at.is_(None), t.c.status.in_(sorted(statuses)),
                t.c.missing_since.is_(None)))
    return list(conn.execute(q).scalars())


def for_action(conn: sa.Connection, instance_id: UUID) -> tuple[Instance | None, bool]:
    """The instance's full row (as :func:`snoozeql.store.instances.get` reads it) and
    whether an action on it is in flight (a ``pending`` intent in the log), in one
    statement: what the reconciler reads right before acting on an instance. A gone
    instance reads as ``(None, False)``: ask :func:`snoozeql.store.actions.pending`."""
    r = conn.execute(_FOR_ACTION, {"b_id": instance_id}).first()
    if r is None:
        return None, False
    return instance_store.row_to_instance(r), bool(r.in_flight)


_FOR_ACTION = instance_store.select_full(
    sa.exists().where(actions.c.instance_id == t.c.id, actions.c.result == "pending")
    .label("in_flight"),
).where(t.c.id == sa.bindparam("b_id"))
