"""On-demand RDS prices from the AWS Price List API (service ``pricing``).

The price table in configuration is the first source of a price; this module is the
second, used when an account can reach the Price List API. It answers one question:
what does one (region, instance class, engine, Multi-AZ) database instance cost per
hour on demand, in USD? It returns ``None`` when AWS lists no such product, and never
guesses: when the filters leave several products with different prices, the answer is
``None`` too.

Notes on the Price List's vocabulary (it is not the RDS API's):

* engines are words such as ``PostgreSQL`` or ``Aurora MySQL`` (see ``ENGINE_WORDS``);
  SQL Server and Oracle also need an edition and a license model;
* ``deploymentOption`` is ``Single-AZ`` or ``Multi-AZ``. Aurora bills each instance of
  a cluster separately and lists them as ``Single-AZ``, so Aurora ignores ``multi_az``;
* Aurora's I/O-Optimized products share the filters of the standard ones; the standard
  price is preferred when both are listed.

The Price List API is only served from a few regions; ``us-east-1`` is used.

:func:`price_source` is the plugin's pricing capability: a :class:`AwsPricing` when the
operator turned the Price List on (``SNOOZEQL_AWS_PRICE_LIST``), asking it with each
account's credentials (and endpoint, unless the operator set one for the Price List).
"""

from __future__ import annotations

import json
import threading
from decimal import Decimal, InvalidOperation
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from snoozeql.config import Settings
from snoozeql.domain.errors import ProviderError
from snoozeql.domain.types import Account
from snoozeql.providers.aws.config import AwsAccountConfig
from snoozeql.providers.aws.driver import (
    AwsCredentials,
    client_config,
    describe_error,
    resolve_credentials,
)
from snoozeql.providers.base import PriceKey, allowed_endpoint

PRICING_REGION = "us-east-1"

# Our engine name (RDS's Engine field) -> Price List filters beyond the engine word.
ENGINE_WORDS: dict[str, dict[str, str]] = {
    "postgres": {"databaseEngine": "PostgreSQL"},
    "mysql": {"databaseEngine": "MySQL"},
    "mariadb": {"databaseEngine": "MariaDB"},
    "aurora-postgresql": {"databaseEngine": "Aurora PostgreSQL"},
    "aurora-mysql": {"databaseEngine": "Aurora MySQL"},
    "aurora": {"databaseEngine": "Aurora MySQL"},
    "sqlserver-ee": {"databaseEngine": "SQL Server", "databaseEdition": "Enterprise",
                     "licenseModel": "License included"},
    "sqlserver-se": {"databaseEngine": "SQL Server", "databaseEdition": "Standard",
                     "licenseModel": "License included"},
    "sqlserver-web": {"databaseEngine": "SQL Server", "databaseEdition": "Web",
                      "licenseModel": "License included"},
    "sqlserver-ex": {"databaseEngine": "SQL Server", "databaseEdition": "Express",
                     "licenseModel": "License included"},
    "oracle-se2": {"databaseEngine": "Oracle", "databaseEdition": "Standard Two",
                   "licenseModel": "License included"},
    "oracle-ee": {"databaseEngine": "Oracle", "databaseEdition": "Enterprise",
                  "licenseModel": "Bring your own license"},
}


def price_filters(
    region: str, instance_class: str, engine: str, multi_az: bool
) -> list[dict[str, str]] | None:
    """GetProducts filters for one instance, or None when the engine is not priced here."""
    words = ENGINE_WORDS.get(engine.lower())
    if words is None:
        return None
    deployment = "Multi-AZ" if multi_az and not engine.startswith("aurora") else "Single-AZ"
    fields = {
        "productFamily": "Database Instance",
        "locationType": "AWS Region",
        "regionCode": region,
        "instanceType": instance_class,
        "deploymentOption": deployment,
        **words,
    }
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in fields.items()]


def on_demand_usd_per_hour(product: dict[str, Any]) -> Decimal | None:
    """The hourly USD price in one Price List product document, if it has one."""
    prices: set[Decimal] = set()
    for term in (product.get("terms", {}).get("OnDemand") or {}).values():
        for dim in (term.get("priceDimensions") or {}).values():
            unit = str(dim.get("unit", "")).lower()
            usd = (dim.get("pricePerUnit") or {}).get("USD")
            if usd is None or unit not in ("hrs", "hours", "hour"):
                continue
            try:
                prices.add(Decimal(str(usd)))
            except InvalidOperation:
                continue
    return prices.pop() if len(prices) == 1 else None


def choose_price(products: list[dict[str, Any]]) -> Decimal | None:
    """One price from the products the filters matched, or None if none or ambiguous."""
    def usage(p: dict[str, Any]) -> str:
        return str(p.get("product", {}).get("attributes", {}).get("usagetype", ""))

    standard = [p for p in products if "iooptimized" not in usage(p).lower()]
    candidates = standard or products
    prices = {price for p in candidates if (price := on_demand_usd_per_hour(p)) is not None}
    return prices.pop() if len(prices) == 1 else None


class AwsPriceList:
    """Asks GetProducts for on-demand RDS prices; remembers answers for its lifetime.

    ``account`` (optional) supplies the credentials (profile, role) the same way
    discovery does; without it the default AWS chain is used. ``endpoint_url``
    overrides the Price List endpoint (LocalStack, a test stub).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        account: Account | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        self._settings = settings or Settings()
        self._account = account
        self._endpoint_url = endpoint_url
        self._creds: AwsCredentials | None = None
        self._memo: dict[tuple[str, str, str, bool], Decimal | None] = {}
        self._lock = threading.Lock()

    def _credentials(self) -> AwsCredentials:
        if self._creds is None:
            if self._account is not None:
                cfg = AwsAccountConfig.from_account(self._account)
            else:
                cfg = AwsAccountConfig(regions=(PRICING_REGION,))
            self._creds = resolve_credentials(cfg, self._settings)
        return self._creds

    def hourly_usd(
        self, region: str, instance_class: str, engine: str, multi_az: bool = False
    ) -> Decimal | None:
        """On-demand USD per hour, or None when the Price List has no such product."""
        key = (region, instance_class, engine.lower(), multi_az)
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        filters = price_filters(region, instance_class, engine, multi_az)
        price = None if filters is None else choose_price(self._products(filters))
        with self._lock:
            self._memo[key] = price
        return price

    def _products(self, filters: list[dict[str, str]]) -> list[dict[str, Any]]:
        if self._endpoint_url != getattr(self._settings, "aws_price_list_endpoint_url", None):
            # an account's endpoint (the operator's own setting is trusted as is)
            allowed_endpoint(self._endpoint_url, self._settings, "AWS Price List endpoint")
        creds = self._credentials()
        try:
            client = creds.client("pricing", PRICING_REGION, endpoint_url=self._endpoint_url,
                                  config=client_config(self._settings))
            out: list[dict[str, Any]] = []
            paginator = client.get_paginator("get_products")
            for page in paginator.paginate(
                ServiceCode="AmazonRDS", Filters=filters, FormatVersion="aws_v1",
                PaginationConfig={"PageSize": 100},
            ):
                for item in page.get("PriceList") or []:
                    out.append(json.loads(item) if isinstance(item, str | bytes) else item)
            return out
        except (BotoCoreError, ClientError) as exc:
            msg = describe_error(exc, creds.secrets())
            raise ProviderError(f"AWS Price List ({PRICING_REGION}): {msg}") from None
        except (ValueError, TypeError) as exc:
            raise ProviderError(f"AWS Price List ({PRICING_REGION}): bad answer: {exc}") from None


class AwsPricing:
    """The Price List as a :class:`~snoozeql.providers.base.PriceSource`: one
    :class:`AwsPriceList` per account, with that account's credentials."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[object, AwsPriceList] = {}
        self._lock = threading.Lock()

    def hourly_usd(self, account: Account, key: PriceKey) -> Decimal | None:
        _, instance_class, engine, region, deployment = key
        with self._lock:
            client = self._clients.get(account.id)
            if client is None:
                endpoint = self._settings.aws_price_list_endpoint_url or account.config.get(
                    "endpoint_url"
                )
                client = self._clients[account.id] = AwsPriceList(
                    self._settings, account=account, endpoint_url=endpoint)
        return client.hourly_usd(region, instance_class, engine, deployment == "multi-az")


def price_source(settings: Settings) -> AwsPricing | None:
    """The AWS Price List, or None when the operator did not turn it on."""
    return AwsPricing(settings) if settings.aws_price_list else None
