"""The user-extensible price table: (provider, instance class, engine, region) -> USD/hour.

SnoozeQL never invents a price. A price comes from this table (entries the user
writes in a JSON or TOML file named by ``SNOOZEQL_PRICE_TABLE``) or from a provider's
price API; when neither knows, the cost is ``None`` and shown as unknown.

Matching: an entry names a provider and an instance class (AWS ``db.t3.micro``, GCP
tier ``db-custom-2-7680``); ``engine`` and ``region`` may be omitted (or ``"*"``) to
match any. ``deployment`` is ``single-az`` (default) or ``multi-az``: a Multi-AZ
instance only matches an entry that says ``multi-az``, because its price is not
always a simple multiple. When several entries match, the most specific wins
(region beats engine beats wildcard), and later files/entries beat earlier ones.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from snoozeql.domain.errors import ValidationError

DEPLOYMENTS = ("single-az", "multi-az")


@dataclass(frozen=True)
class PriceEntry:
    provider: str
    instance_class: str
    usd_per_hour: Decimal
    engine: str = "*"
    region: str = "*"
    deployment: str = "single-az"

    @property
    def specificity(self) -> int:
        return (2 if self.region != "*" else 0) + (1 if self.engine != "*" else 0)


class PriceTable:
    def __init__(self, entries: list[PriceEntry] | None = None) -> None:
        self._index: dict[tuple[str, str, str], list[PriceEntry]] = {}
        for e in entries or []:
            self._index.setdefault((e.provider, e.instance_class, e.deployment), []).append(e)

    def __len__(self) -> int:
        return sum(len(v) for v in self._index.values())

    def lookup(
        self,
        provider: str,
        instance_class: str | None,
        engine: str | None,
        region: str | None,
        multi_az: bool = False,
    ) -> Decimal | None:
        if not instance_class:
            return None
        deployment = "multi-az" if multi_az else "single-az"
        best: PriceEntry | None = None
        for e in self._index.get((provider, instance_class, deployment), []):
            if e.engine not in ("*", engine) or e.region not in ("*", region):
                continue
            if best is None or e.specificity >= best.specificity:
                best = e
        return best.usd_per_hour if best else None


def parse_entries(data: Any, source: str) -> list[PriceEntry]:
    """Entries from the parsed file: ``{"price": [ {...}, ... ]}`` or a bare list."""
    items = data.get("price", data.get("prices")) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValidationError(f"{source}: expected a list of prices under 'price'")
    out: list[PriceEntry] = []
    for i, item in enumerate(items):
        where = f"{source}: price[{i}]"
        if not isinstance(item, dict):
            raise ValidationError(f"{where}: expected a table/object")
        unknown = set(item) - {
            "provider",
            "instance_class",
            "engine",
            "region",
            "deployment",
            "usd_per_hour",
        }
        if unknown:
            raise ValidationError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        for req in ("provider", "instance_class", "usd_per_hour"):
            if req not in item:
                raise ValidationError(f"{where}: missing {req!r}")
        try:
            usd = Decimal(str(item["usd_per_hour"]))
        except InvalidOperation:
            raise ValidationError(f"{where}: usd_per_hour is not a number") from None
        if usd < 0:
            raise ValidationError(f"{where}: usd_per_hour must not be negative")
        deployment = str(item.get("deployment", "single-az"))
        if deployment not in DEPLOYMENTS:
            raise ValidationError(f"{where}: deployment must be one of {', '.join(DEPLOYMENTS)}")
        out.append(
            PriceEntry(
                provider=str(item["provider"]),
                instance_class=str(item["instance_class"]),
                engine=str(item.get("engine", "*")),
                region=str(item.get("region", "*")),
                deployment=deployment,
                usd_per_hour=usd,
            )
        )
    return out


def parse_price_text(text: str, source: str) -> list[PriceEntry]:
    """Parse a price file's text (TOML when ``source`` ends in .toml, else JSON)."""
    try:
        data = tomllib.loads(text) if source.endswith(".toml") else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"{source}: cannot parse price table: {exc}") from None
    return parse_entries(data, source)


def usd_to_cents(usd: Decimal | None) -> Decimal | None:
    return None if usd is None else (usd * 100).quantize(Decimal("0.0001"))
