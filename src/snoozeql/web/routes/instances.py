"""Instances: the filterable, sortable, paged table; bulk sleep/wake with a confirm
dialog; live status cells while a stop or start is under way.

The URL holds the whole table state (filters, sort, cursor, limit), so a view can be
shared and the back button works; htmx swaps only the table (hx-push-url keeps the URL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.types import Instance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.services.accounts import AccountService
from snoozeql.services.background_sync import start_sync
from snoozeql.services.bulk import MAX_REFS, BulkService, Resolution, bulk_action
from snoozeql.services.instance_table import InstanceTableService
from snoozeql.services.inventory import InventoryService
from snoozeql.services.local_databases import LocalDatabaseService, is_local
from snoozeql.services.schedules import Upcoming
from snoozeql.store.instances import SORT_KEYS, InstanceFilter
from snoozeql.web.core import (
    TRANSITIONAL,
    Operator,
    Viewer,
    WebRoute,
    csrf_protect,
    ctx_of,
    is_htmx,
    money,
    render,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE_SIZES = (25, 50, 100, 200)
REFRESH_AFTER = timedelta(seconds=5)
# The table header counts exactly as far as "select all matching" reaches; beyond it,
# "more than 1,000 matching" and a button that counts them all on request.
COUNT_CAP = MAX_REFS + 1
PREVIEW_LIMIT = 20
FILTER_KEYS = ("provider", "account", "region", "engine", "status", "kind", "tag", "q")
ACTION_WORDS = {"stop": "Sleep", "start": "Wake", "restart": "Restart"}
COLUMNS = (  # (label, sort key or None)
    ("Name", "name"), ("Provider", "provider"), ("Account", None), ("Region", "region"),
    ("Engine", "engine"), ("Class", "instance_class"), ("Status", "status"),
    ("Hourly cost", "hourly_cost"), ("Schedule", None), ("Next transition", None),
)


@dataclass
class TableQuery:
    provider: str | None
    account: str | None
    region: str | None
    engine: str | None
    status: str | None
    kind: str | None
    tag: list[str]
    q: str | None
    sort: str
    limit: int
    cursor: str | None

    def params(self) -> dict[str, Any]:
        """The URL parameters that reproduce this view (without the cursor)."""
        return {"provider": self.provider, "account": self.account, "region": self.region,
                "engine": self.engine, "status": self.status, "kind": self.kind,
                "tag": [t for t in self.tag if t], "q": self.q, "sort": self.sort,
                "limit": self.limit}

    def build(self, inventory: InventoryService) -> InstanceFilter:
        return inventory.build_filter(
            provider=self.provider, account=self.account, region=self.region,
            engine=self.engine, status=self.status, kind=self.kind,
            tags=[t for t in self.tag if t.strip()], text=self.q,
        )


def _blank(v: str | None) -> str | None:
    return v.strip() if v and v.strip() else None


async def table_query(  # async: pure checks, no reason to hop to a worker thread
    provider: str | None = None, account: str | None = None, region: str | None = None,
    engine: str | None = None, status: str | None = None, kind: str | None = None,
    tag: Annotated[list[str] | None, Query()] = None, q: str | None = None,
    sort: str = "name", limit: int = 50, cursor: str | None = None,
) -> TableQuery:
    if limit not in PAGE_SIZES:
        raise ValidationError(f"limit: use one of {', '.join(map(str, PAGE_SIZES))}")
    if sort.lstrip("-") not in SORT_KEYS:
        raise ValidationError(f"cannot sort by {sort!r}; use one of: {', '.join(SORT_KEYS)}")
    return TableQuery(_blank(provider), _blank(account), _blank(region), _blank(engine),
                      _blank(status), _blank(kind), [t.strip() for t in tag or [] if t.strip()],
                      _blank(q), sort, limit, _blank(cursor))


@dataclass(slots=True)
class Row:
    """One table row, its cells already in words: the template only places them."""

    id: str
    name: str
    cluster: bool
    missing: bool
    provider: str
    account: str
    region: str
    engine: str
    instance_class: str
    status: str
    last_error: str | None
    cost: str
    schedule: str
    next_transition: str


def table_rows(items: list[Instance], account_names: dict[UUID, str],
               upcoming: dict[UUID, Upcoming]) -> list[Row]:
    out = []
    for i in items:
        up = upcoming.get(i.id)
        nxt = up.next if up else None
        out.append(Row(
            id=str(i.id), name=i.name, cluster=i.kind is InstanceKind.CLUSTER,
            missing=i.missing_since is not None, provider=i.provider.value,
            account=account_names.get(i.account_id, "") if i.account_id else "local",
            region=i.region or "",
            engine=f"{i.engine} {i.engine_version}" if i.engine_version else i.engine,
            instance_class=i.instance_class or "", status=i.status.value,
            last_error=i.last_error, cost=money(i.hourly_cost_cents),
            schedule=up.schedule_name if up else "–",
            next_transition=(f"{nxt.state} at {nxt.at:%a %Y-%m-%d %H:%M} UTC" if nxt
                             else "none" if up else "–"),
        ))
    return out


def _table(request: Request, tq: TableQuery) -> dict[str, Any]:
    ctx = ctx_of(request)
    f = tq.build(InventoryService(ctx))
    page = InstanceTableService(ctx).page(f, sort=tq.sort, limit=tq.limit, cursor=tq.cursor,
                                          count_cap=COUNT_CAP)
    return {
        "tq": tq, "params": tq.params(), "next_cursor": page.next_cursor,
        "rows": table_rows(page.items, page.account_names, page.upcoming),
        "matching": page.matching, "count_cap": COUNT_CAP,
        "account_names": list(page.account_names.values()),
        "columns": COLUMNS, "page_sizes": PAGE_SIZES,
        "providers": [p.value for p in ProviderKind],
        "statuses": [s.value for s in InstanceStatus],
        "kinds": [k.value for k in InstanceKind], "max_bulk": MAX_REFS,
    }


@router.get("/instances")
def instances_page(request: Request, _: Viewer,
                   tq: Annotated[TableQuery, Depends(table_query)]) -> Response:
    data = _table(request, tq)
    if is_htmx(request) and request.headers.get("HX-Target") == "table-region":
        return render(request, "partials/instances_table.html", data)
    return render(request, "instances.html", data)


@router.get("/instances/count")
def matching_count(request: Request, _: Viewer,
                   tq: Annotated[TableQuery, Depends(table_query)]) -> Response:
    """Every instance the table's filters match, counted to the end: asked for by the
    header's "count all" button when there are more than the page counts by itself."""
    inventory = InventoryService(ctx_of(request))
    total = inventory.count(tq.build(inventory))
    return render(request, "partials/matching_count.html", {"matching": total})


@router.get("/instances/{instance}/status-cell")
def status_cell(request: Request, instance: str, _: Viewer) -> Response:
    """The status chip of one row; polls itself (htmx) while the status is in motion."""
    ctx = ctx_of(request)
    found = InventoryService(ctx).get(instance)
    if found.status.value in TRANSITIONAL:
        if is_local(found):
            found = LocalDatabaseService(ctx).status(found.id).instance  # measured now
        elif found.account_id is not None:
            # The inventory follows the cloud through syncs: while someone watches a
            # change under way, its account is re-synced (once at a time, at most
            # every REFRESH_AFTER), in the background; this cell shows the store.
            account = AccountService(ctx).get(found.account_id)
            last = account.last_sync_at
            if last is None or ctx.now() - last > REFRESH_AFTER:
                start_sync(ctx, str(account.id))
    return render(request, "partials/status_cell.html", {"i": found})


# --- bulk ----------------------------------------------------------------------------


def _resolve(request: Request, action: str, ids: list[str], all_matching: bool,
             tq: TableQuery) -> Resolution:
    ctx = ctx_of(request)
    svc = BulkService(ctx)
    if all_matching:
        found = svc.resolve_filter(tq.build(InventoryService(ctx)))
    else:
        if not ids:
            raise ValidationError("select at least one instance (or select all matching)")
        found = svc.resolve_detailed(ids, None)
    return svc.check(action, found)


async def _bulk_form(request: Request) -> tuple[str, list[str], bool, TableQuery]:
    form = await request.form()

    def one(key: str) -> str | None:
        v = form.get(key)
        return v if isinstance(v, str) else None

    tq = await table_query(
        provider=one("provider"), account=one("account"), region=one("region"),
        engine=one("engine"), status=one("status"), kind=one("kind"),
        tag=[t for t in form.getlist("tag") if isinstance(t, str)], q=one("q"),
        sort=one("sort") or "name", limit=int(one("limit") or 50),
    )
    ids = [i for i in form.getlist("ids") if isinstance(i, str) and i]
    action = one("action") or ""
    bulk_action(action)
    return action, ids, one("all_matching") == "1", tq


BulkForm = Annotated[tuple[str, list[str], bool, TableQuery], Depends(_bulk_form)]


@router.post("/instances/bulk/preview", dependencies=[Depends(csrf_protect)])
def bulk_preview(request: Request, _: Operator, form: BulkForm) -> Response:
    """The confirm dialog's content: who will be acted on, who will not and why."""
    action, ids, all_matching, tq = form
    found = _resolve(request, action, ids, all_matching, tq)
    return render(request, "partials/bulk_preview.html", {
        "action": action, "word": ACTION_WORDS[action], "affected": found.instances,
        "shown": found.instances[:PREVIEW_LIMIT],
        "beyond": max(0, len(found.instances) - PREVIEW_LIMIT),
        "refused": found.skipped, "ids": ids, "all_matching": all_matching,
        "params": tq.params(),
    })


@router.post("/instances/bulk", dependencies=[Depends(csrf_protect)])
def bulk_run(request: Request, session: Operator, form: BulkForm) -> Response:
    action, ids, all_matching, tq = form
    found = _resolve(request, action, ids, all_matching, tq)
    results = BulkService(ctx_of(request)).run(action, found.instances, session.key_name)
    data = {"action": action, "word": ACTION_WORDS[action], "results": results,
            "refused": found.skipped, "params": tq.params()}
    if is_htmx(request):
        return render(request, "partials/bulk_results.html", data)
    return render(request, "bulk_done.html", data)
