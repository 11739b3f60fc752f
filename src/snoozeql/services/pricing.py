"""Hourly cost of discovered instances.

Order of sources: the user's price table (``SNOOZEQL_PRICE_TABLE``), then prices
cached in the store from a provider's price API, then the price API itself: the
provider plugin's price source (the AWS Price List when enabled, the demo's simulated
prices), built on the first price it is asked for. A price the API does not know is
cached as unknown too, so a sync asks at most once per (class, engine, region,
deployment) per TTL. A failing price API never fails a sync: the cost stays unknown and
the failure is logged.
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
from snoozeql.providers.base import PriceKey
from snoozeql.services.context import Context
from snoozeql.store import prices as cache

log = logging.getLogger(__name__)

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


class PriceResolver:
    def __init__(self, ctx: Context, fetchers: dict[str, PriceFetcher] | None = None) -> None:
        """``fetchers`` (provider name -> price API) replaces the plugins' price sources."""
        self.ctx = ctx
        self.table = load_price_table(ctx.settings.price_table)
        self._given = fetchers is not None
        self.fetchers: dict[str, PriceFetcher | None] = dict(fetchers or {})
        self._failed_accounts: set[object] = set()

    def _fetcher(self, provider: str) -> PriceFetcher | None:
        if provider not in self.fetchers and not self._given:
            source = self.ctx.providers.price_source(provider)
            self.fetchers[provider] = source.hourly_usd if source is not None else None
        return self.fetchers.get(provider)

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
        fetch = self._fetcher(d.provider.value)
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
