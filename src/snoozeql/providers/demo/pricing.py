"""The demo clouds' prices: a small table near list prices, labelled as simulated.

They exist so that costs and savings are populated, not to quote anyone's bill.
"""

from __future__ import annotations

from decimal import Decimal

from snoozeql.config import Settings
from snoozeql.domain.types import Account
from snoozeql.providers.base import PriceKey

__all__ = ["DemoPrices", "price_source", "simulated_usd"]

# Simulated on-demand USD per hour (single zone), near public list prices in 2024.
_USD: dict[str, float] = {
    "db.t3.micro": 0.018, "db.t3.medium": 0.072, "db.t4g.medium": 0.065,
    "db.m6g.large": 0.152, "db.m6g.xlarge": 0.304, "db.r6g.large": 0.225,
    "db.r6g.2xlarge": 0.90,
    "db-f1-micro": 0.015, "db-g1-small": 0.050, "db-custom-2-7680": 0.137,
    "db-custom-4-15360": 0.274, "db-custom-8-30720": 0.548,
}
_REGION_FACTOR = {"eu-west-1": 1.1, "europe-west1": 1.1}


def simulated_usd(instance_class: str | None, engine: str | None, region: str | None,
                  multi_az: bool) -> Decimal | None:
    """The simulation's hourly price (None for a class it does not know)."""
    base = _USD.get(instance_class or "")
    if base is None:
        return None
    factor = _REGION_FACTOR.get(region or "", 1.0) * (2 if multi_az else 1)
    if (engine or "").startswith("aurora"):
        factor *= 1.15
    return Decimal(str(round(base * factor, 4)))


class DemoPrices:
    """The simulated price list as a :class:`~snoozeql.providers.base.PriceSource`."""

    def hourly_usd(self, account: Account, key: PriceKey) -> Decimal | None:
        _, instance_class, engine, region, deployment = key
        return simulated_usd(instance_class, engine, region, deployment == "multi-az")


def price_source(settings: Settings) -> DemoPrices:
    return DemoPrices()
