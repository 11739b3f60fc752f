"""The dashboard's instances table as one read.

A page of the inventory, how many instances match its filter, the account names, and
each row's governing schedule with its next transition: read in one connection with a
handful of queries, so the work follows the page (at most a few hundred rows), not the
size of the fleet:

- the page itself is the store's keyset page (``store.instances.list_page``);
- the count stops at ``count_cap`` (the header only needs to know "more than that"),
  is not asked at all when the first page already holds every match, and is kept in
  the context's memo for the inventory's data versions (store/versions.py: a sync
  that changed anything, or a status set by an action, counts again);
- schedules are resolved from the page's own assignments plus the rule-based ones
  (``services.schedules.read_for``; the rules, schedules and account names are kept
  in the context's memo until one of them changes) and each distinct schedule is
  evaluated once (its next transition is reused until it has passed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.types import Instance
from snoozeql.services.context import Context
from snoozeql.services.inventory import MAX_LIMIT
from snoozeql.services.schedules import Upcoming, read_for, upcoming_of
from snoozeql.store import instances as instance_store
from snoozeql.store import versions
from snoozeql.store.instances import InstanceFilter

if TYPE_CHECKING:
    import sqlalchemy as sa

COUNTS_KEPT = 256  # filters whose counts are kept per inventory version
_COUNTS = "instance_table.counts"


@dataclass
class _Counts:
    version: tuple[int, int]  # the inventory's and the statuses' data versions
    counts: dict[tuple[object, ...], int] = field(default_factory=dict)


@dataclass(frozen=True)
class TablePage:
    items: list[Instance]
    next_cursor: str | None
    matching: int  # exact below the cap it was counted to; equal to it means "at least"
    account_names: dict[UUID, str]  # every account, ordered by name
    upcoming: dict[UUID, Upcoming]  # rows that have a governing schedule


class InstanceTableService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def page(self, f: InstanceFilter, *, sort: str = "name", limit: int = 50,
             cursor: str | None = None, count_cap: int | None = None) -> TablePage:
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}")
        with self.ctx.engine.connect() as conn:
            # Versions are read before the data: a write landing in between leaves what
            # is kept keyed to the older version, so the next page reads again.
            seen = versions.read(conn)
            items, nxt = instance_store.list_page(conn, f, sort=sort, limit=limit,
                                                  cursor=cursor)
            if cursor is None and nxt is None:
                matching = len(items)  # the first page holds every match
            else:
                matching = self._count(conn, f, count_cap, (
                    seen.get(versions.INSTANCES, 0), seen.get(versions.STATUSES, 0)))
            found = read_for(self.ctx, conn, items, seen=seen)
        return TablePage(items, nxt, matching, found.account_names,
                         upcoming_of(items, found, self.ctx.now()))

    def _count(self, conn: sa.Connection, f: InstanceFilter, cap: int | None,
               version: tuple[int, int]) -> int:
        key = (f.provider, f.account_id, f.region, f.engine, f.status, f.kind,
               tuple(sorted(f.tags.items())), f.text, f.missing, cap)
        kept: _Counts | None = self.ctx.memo.get(_COUNTS)
        if kept is None or kept.version != version:
            kept = self.ctx.memo[_COUNTS] = _Counts(version)
        found = kept.counts.get(key)
        if found is None:
            found = instance_store.count(conn, f, cap)
            if len(kept.counts) >= COUNTS_KEPT:
                kept.counts.pop(next(iter(kept.counts)), None)  # the oldest goes
            kept.counts[key] = found
        return found
