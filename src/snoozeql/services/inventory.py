"""Reading the inventory. Always from the store, never live from a cloud."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from snoozeql.domain.errors import ConflictError, NotFoundError, ValidationError
from snoozeql.domain.types import Instance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.domain.validation import MIN_ID_PREFIX, filter_text, id_prefix
from snoozeql.services.context import Context
from snoozeql.store import db
from snoozeql.store import instances as store
from snoozeql.store.instances import InstanceFilter

MAX_LIMIT = 1000


@dataclass(frozen=True)
class FleetSummary:
    """Counts of the present (not missing) inventory, and what it costs per hour."""

    total: int
    by_provider: dict[str, int]
    by_status: dict[str, int]
    by_account: dict[UUID | None, int]
    running_cost_cents: Decimal  # per hour, instances running now
    all_running_cost_cents: Decimal  # per hour, if every instance ran


@dataclass(frozen=True)
class Page:
    items: list[Instance]
    next_cursor: str | None


@dataclass(frozen=True)
class JsonPage:
    """A page whose items are the JSON text of their API objects (what ``InstanceOut``
    serialises each to)."""

    items: list[str]
    next_cursor: str | None


def parse_tags(pairs: list[str] | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs or []:
        filter_text(pair, "tag")
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError(f"tag filter {pair!r} must look like key=value")
        tags[key] = value
    return tags


def by_id_prefix(conn: Any, ref: str, not_found: str,
                 keep: Callable[[Instance], bool] = lambda _: True) -> Instance:
    """The one instance whose id starts with ``ref``; NotFoundError(``not_found``) when
    none does (or ``ref`` cannot be an id prefix), ConflictError listing the candidates
    when several do."""
    prefix = id_prefix(ref)
    found = [i for i in store.find_by_id_prefix(conn, prefix, limit=PREFIX_CANDIDATES + 1)
             if keep(i)] if prefix else []
    if not found:
        raise NotFoundError(not_found + short_prefix_hint(ref))
    if len(found) > 1:
        shown = found[:PREFIX_CANDIDATES]
        more = " and more" if len(found) > PREFIX_CANDIDATES else ""
        raise ConflictError(
            f"id prefix {ref!r} is ambiguous: it matches "
            + ", ".join(f"{i.id} ({i.name}, {i.provider.value}"
                        + (f" {i.region})" if i.region else ")") for i in shown)
            + f"{more}; give more of the id"
        )
    return found[0]


def short_prefix_hint(ref: str) -> str:
    """Why a short run of hex digits found nothing: an id prefix needs MIN_ID_PREFIX."""
    digits = ref.strip().lower().replace("-", "")
    if digits and len(digits) < MIN_ID_PREFIX and all(c in "0123456789abcdef" for c in digits):
        return f" (an id prefix needs at least {MIN_ID_PREFIX} characters)"
    return ""


#: How many candidates an ambiguous id prefix lists.
PREFIX_CANDIDATES = 10


class InventoryService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def build_filter(
        self,
        *,
        provider: str | None = None,
        account: str | None = None,
        region: str | None = None,
        engine: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        tags: list[str] | dict[str, str] | None = None,
        text: str | None = None,
        missing: bool | None = None,
    ) -> InstanceFilter:
        for what, value in (("provider", provider), ("account", account), ("region", region),
                            ("engine", engine), ("status", status), ("kind", kind),
                            ("q", text)):
            filter_text(value, what)
        if provider and provider not in {p.value for p in ProviderKind}:
            raise ValidationError(
                f"unknown provider {provider!r}; use one of: "
                + ", ".join(p.value for p in ProviderKind)
            )
        if status and status not in {s.value for s in InstanceStatus}:
            raise ValidationError(
                f"unknown status {status!r}; use one of: "
                + ", ".join(s.value for s in InstanceStatus)
            )
        if kind and kind not in {k.value for k in InstanceKind}:
            raise ValidationError(f"unknown kind {kind!r}; use instance or cluster")
        account_id = None
        if account:
            # Only a filter by account needs the account service (and the secrets, audit
            # and provider registry it imports): a plain listing starts without them.
            from snoozeql.services.accounts import AccountService

            account_id = AccountService(self.ctx).get(account).id
        return InstanceFilter(
            provider=provider, account_id=account_id, region=region, engine=engine,
            status=status, kind=kind,
            tags=tags if isinstance(tags, dict) else parse_tags(tags),
            text=text or None, missing=missing,
        )

    def list(
        self, f: InstanceFilter, *, sort: str = "name", limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}")
        with db.read_connection(self.ctx.engine) as conn:
            items, nxt = store.list_page(conn, f, sort=sort, limit=limit, cursor=cursor)
        return Page(items, nxt)

    def list_json(
        self, f: InstanceFilter, *, sort: str = "name", limit: int = 100,
        cursor: str | None = None,
    ) -> JsonPage:
        """:meth:`list` with each instance rendered as its API JSON by the store (what
        ``GET /instances`` returns; no Python object per row)."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}")
        with db.read_connection(self.ctx.engine) as conn:
            items, nxt = store.list_page_json(conn, f, sort=sort, limit=limit, cursor=cursor)
        return JsonPage(items, nxt)

    def count(self, f: InstanceFilter, cap: int | None = None) -> int:
        """Instances matching ``f``; with ``cap``, at most ``cap`` (it then means "or
        more"), so that a big fleet is not counted to the end for a table header."""
        with self.ctx.engine.connect() as conn:
            return store.count(conn, f, cap)

    def list_all(self, f: InstanceFilter, sort: str = "name") -> builtins.list[Instance]:
        out: builtins.list[Instance] = []
        cursor = None
        while True:
            page = self.list(f, sort=sort, limit=MAX_LIMIT, cursor=cursor)
            out.extend(page.items)
            if page.next_cursor is None:
                return out
            cursor = page.next_cursor

    def summary(self) -> FleetSummary:
        with self.ctx.engine.connect() as conn:
            groups = store.summary(conn)
        by_provider: dict[str, int] = {}
        by_status: dict[str, int] = {}
        by_account: dict[UUID | None, int] = {}
        running = everything = Decimal(0)
        for provider, status, account_id, n, cost in groups:
            by_provider[provider] = by_provider.get(provider, 0) + n
            by_status[status] = by_status.get(status, 0) + n
            by_account[account_id] = by_account.get(account_id, 0) + n
            everything += cost or 0
            if status == InstanceStatus.RUNNING.value:
                running += cost or 0
        return FleetSummary(sum(by_provider.values()), by_provider, by_status, by_account,
                            running, everything)

    def get(self, ref: str | UUID) -> Instance:
        """Find by UUID, by provider id (ARN), by name (which must be unambiguous), or by
        a unique id prefix of 8 or more hex digits (the short id tables print)."""
        ref = str(ref)
        with self.ctx.engine.connect() as conn:
            try:
                found = store.get(conn, UUID(ref))
                if found:
                    return found
            except ValueError:
                pass
            matches = store.find(conn, provider_id=ref) or store.find(conn, name=ref)
            if not matches:
                return by_id_prefix(conn, ref, f"no instance {ref!r}")
        if len(matches) > 1:
            choices = ", ".join(f"{m.id} ({m.provider.value} {m.region or ''})" for m in matches)
            raise ConflictError(
                f"{len(matches)} instances are named {ref!r}; use an id instead: {choices}"
            )
        return matches[0]

    def members(self, cluster: Instance) -> builtins.list[Instance]:
        with self.ctx.engine.connect() as conn:
            return store.cluster_members(conn, cluster.provider_id)
