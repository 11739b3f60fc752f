"""Hourly cost of discovered instances.

Order of sources: the user's price table (``SNOOZEQL_PRICE_TABLE``), then prices
cached in the store from a provider's price API, then the price API itself (AWS
Price List) when enabled. A price the API does not know is cached as unknown too, so
a sync asks at most once per (class, engine, region, deployment) per TTL. A failing
price API never fails a sync: the cost stays unknown and the failure is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from snoozeql.domain.errors import SnoozeError, ValidationError
from snoozeql.domain.pricing import PriceTable, parse_price_text, usd_to_cents
from snoozeql.domain.types import Account, DiscoveredInstance, InstanceKind
from snoozeql.services.context import Context
from snoozeql.store import prices as cache

log = logging.getLogger(__name__)

PriceKey = tuple[str, str, str, str, str]  # provider, class, engine, region, deployment
# Asks a provider's price API; None means "no such product".
PriceFetcher = Callable[[Account, PriceKey], Decimal | None]

KNOWN_TTL = timedelta(days=30)
UNKNOWN_TTL = timedelta(days=7)


def load_price_table(path: Path | None) -> PriceTable:
    if path is None:
        return PriceTable()
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValidationError(f"cannot read price table {path}: {exc.strerror}") from None
    return PriceTable(parse_price_text(text, str(path)))


def _aws_fetcher(ctx: Context) -> PriceFetcher:
    """The AWS Price List, with the account's credentials (and endpoint, if it has one)."""
    from snoozeql.providers.aws_pricing import AwsPriceList

    clients: dict[object, AwsPriceList] = {}

    def fetch(account: Account, key: PriceKey) -> Decimal | None:
        _, instance_class, engine, region, deployment = key
        if account.id not in clients:
            endpoint = ctx.settings.aws_price_list_endpoint_url or account.config.get(
                "endpoint_url"
            )
            clients[account.id] = AwsPriceList(ctx.settings, account=account,
                                               endpoint_url=endpoint)
        return clients[account.id].hourly_usd(
            region, instance_class, engine, deployment == "multi-az"
        )

    return fetch


def _demo_fetchers() -> dict[str, PriceFetcher]:
    """The simulated price list of the demo clouds (``snoozeql demo``)."""
    from snoozeql.providers.demo import DEMO_KINDS, price_fetcher

    return {kind.value: price_fetcher for kind in DEMO_KINDS}


class PriceResolver:
    def __init__(self, ctx: Context, fetchers: dict[str, PriceFetcher] | None = None) -> None:
        self.ctx = ctx
        self.table = load_price_table(ctx.settings.price_table)
        if fetchers is None:
            fetchers = {"aws": _aws_fetcher(ctx)} if ctx.settings.aws_price_list else {}
            fetchers.update(_demo_fetchers())
        self.fetchers = fetchers
        self._failed_accounts: set[object] = set()

    def costs_cents(
        self, account: Account | None, items: Iterable[DiscoveredInstance]
    ) -> dict[str, Decimal | None]:
        """provider_id -> hourly cost in cents (per node) or None when unknown."""
        items = list(items)
        out: dict[str, Decimal | None] = {}
        api_cache: dict[PriceKey, Decimal | None] = {}
        for d in items:
            if d.kind == InstanceKind.CLUSTER:
                continue
            out[d.provider_id] = usd_to_cents(self._usd(account, d, api_cache))
        # A cluster's cost per node is the mean of its members' costs; unknown if any is.
        members: dict[str, list[Decimal | None]] = {}
        for d in items:
            if d.cluster_provider_id:
                members.setdefault(d.cluster_provider_id, []).append(out.get(d.provider_id))
        for d in items:
            if d.kind != InstanceKind.CLUSTER:
                continue
            costs = members.get(d.provider_id, [])
            if costs and all(c is not None for c in costs):
                total = sum((c for c in costs if c is not None), Decimal(0))
                out[d.provider_id] = (total / len(costs)).quantize(Decimal("0.0001"))
            else:
                out[d.provider_id] = None
        return out

    def _usd(
        self, account: Account | None, d: DiscoveredInstance,
        api_cache: dict[PriceKey, Decimal | None],
    ) -> Decimal | None:
        usd = self.table.lookup(
            d.provider.value, d.instance_class, d.engine, d.region, d.multi_az
        )
        if usd is not None or not d.instance_class or not d.region or account is None:
            return usd
        fetch = self.fetchers.get(d.provider.value)
        if fetch is None:
            return None
        key: PriceKey = (
            d.provider.value, d.instance_class, d.engine, d.region,
            "multi-az" if d.multi_az else "single-az",
        )
        if key in api_cache:
            return api_cache[key]
        if account.id in self._failed_accounts:
            return None
        now = self.ctx.now()
        with self.ctx.engine.connect() as conn:
            hit = cache.get(conn, key)
        if hit is not None:
            price, fetched_at = hit
            if now - fetched_at < (KNOWN_TTL if price is not None else UNKNOWN_TTL):
                api_cache[key] = price
                return price
        try:
            price = fetch(account, key)
        except SnoozeError as exc:
            # One failure per account and run is enough: the price API is down or not
            # allowed, and asking again for each class would only slow the sync down.
            log.warning("price lookup failed for %s: %s", key, exc.message)
            self._failed_accounts.add(account.id)
            return None
        with self.ctx.engine.begin() as conn:
            cache.put(conn, key, price, now)
        api_cache[key] = price
        return price
