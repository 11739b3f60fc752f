"""Prices from the AWS Price List API during a sync, cached in the store."""

from __future__ import annotations

from decimal import Decimal

import pytest

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.pricing import PriceTable, parse_price_text
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.accounts import AccountService
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.inventory import InventoryService
from tests.support.aws_stubs import rds_product


def test_price_list_prices_are_fetched_once_and_cached(ctx, aws_env, aws_pricing_stub) -> None:  # noqa: ANN001
    aws_pricing_stub.products.append(rds_product("SKU1", "0.0180000000"))
    ctx.settings = ctx.settings.model_copy(update={
        "aws_price_list": True, "aws_price_list_endpoint_url": aws_pricing_stub.url,
        "aws_max_attempts": 2,
    })
    ctx.providers = ProviderRegistry(ctx.settings)
    aws_env.create_instances("us-east-1", 3)
    aws_env.create_instances("us-east-1", 1, prefix="big", instance_class="db.m5.large")
    AccountService(ctx).add("aws", "dev", {"regions": "us-east-1",
                                           "endpoint_url": aws_env.endpoint_url})
    DiscoveryService(ctx).sync("dev")
    inv = InventoryService(ctx)
    assert inv.get("db-0001").hourly_cost_cents == Decimal("1.8")
    assert inv.get("big-0000").hourly_cost_cents is None  # no such product: unknown
    asked = len(aws_pricing_stub.requests)
    assert asked == 2  # one per distinct (class, engine, region, deployment)

    DiscoveryService(ctx).sync("dev")
    assert len(aws_pricing_stub.requests) == asked  # answered from the store's cache
    assert inv.get("db-0002").hourly_cost_cents == Decimal("1.8")


def test_price_list_failure_leaves_costs_unknown_not_the_sync(  # noqa: ANN001
    ctx, aws_env, aws_pricing_stub
) -> None:
    aws_pricing_stub.fail_next(50, "AccessDeniedException", 400)
    ctx.settings = ctx.settings.model_copy(update={
        "aws_price_list": True, "aws_price_list_endpoint_url": aws_pricing_stub.url,
        "aws_max_attempts": 1,
    })
    ctx.providers = ProviderRegistry(ctx.settings)
    aws_env.create_instances("us-east-1", 2)
    aws_env.create_instances("us-east-1", 2, prefix="my", engine="mysql")
    AccountService(ctx).add("aws", "dev", {"regions": "us-east-1",
                                           "endpoint_url": aws_env.endpoint_url})
    report = DiscoveryService(ctx).sync("dev")
    assert report.status.value == "connected"
    assert InventoryService(ctx).get("db-0000").hourly_cost_cents is None
    assert len(aws_pricing_stub.requests) == 1  # gave up on the account after one failure


@pytest.mark.parametrize("text,message", [
    ('{"price": [{"provider": "aws"}]}', "missing 'instance_class'"),
    ('{"price": [{"provider": "aws", "instance_class": "x", "usd_per_hour": "abc"}]}',
     "not a number"),
    ('{"price": [{"provider": "aws", "instance_class": "x", "usd_per_hour": 1, "cpu": 2}]}',
     "unknown field"),
    ('{"price": [{"provider": "aws", "instance_class": "x", "usd_per_hour": 1, '
     '"deployment": "tri-az"}]}', "deployment"),
    ("{not json", "cannot parse"),
])
def test_bad_price_tables_are_refused_with_the_place(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_price_text(text, "prices.json")


def test_most_specific_price_wins() -> None:
    table = PriceTable(parse_price_text(
        '[[price]]\nprovider="aws"\ninstance_class="db.t3.micro"\nusd_per_hour=1\n'
        '[[price]]\nprovider="aws"\ninstance_class="db.t3.micro"\nengine="mysql"\n'
        'usd_per_hour=2\n'
        '[[price]]\nprovider="aws"\ninstance_class="db.t3.micro"\nregion="eu-west-1"\n'
        'usd_per_hour=3\n'
        '[[price]]\nprovider="aws"\ninstance_class="db.t3.micro"\ndeployment="multi-az"\n'
        'usd_per_hour=4\n', "p.toml"))
    assert table.lookup("aws", "db.t3.micro", "postgres", "us-east-1") == Decimal(1)
    assert table.lookup("aws", "db.t3.micro", "mysql", "us-east-1") == Decimal(2)
    assert table.lookup("aws", "db.t3.micro", "mysql", "eu-west-1") == Decimal(3)
    assert table.lookup("aws", "db.t3.micro", "mysql", "eu-west-1", multi_az=True) == Decimal(4)
    assert table.lookup("aws", "db.t3.small", "mysql", "eu-west-1") is None
    assert table.lookup("gcp", "db.t3.micro", "mysql", "eu-west-1") is None
