"""AwsPriceList against a stub of the Price List GetProducts call (moto has no such service).

The stub (tests/support/aws_stubs.py) serves product documents in the Price List's own
format and applies TERM_MATCH filters, so these tests check that we ask with the right
words and read the price out of the right place.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from snoozeql.domain.errors import ProviderError
from snoozeql.providers.aws.pricing import AwsPriceList
from tests.support.aws_stubs import PriceListStub, rds_product
from tests.support.moto_server import AwsTestEnv, free_port


@pytest.fixture
def prices(aws_env: AwsTestEnv, aws_pricing_stub: PriceListStub) -> AwsPriceList:
    aws_pricing_stub.products.extend([
        rds_product("PG1", "0.0180000000"),
        rds_product("PG2", "0.0360000000", deployment="Multi-AZ"),
        rds_product("PG3", "0.0200000000", region="eu-west-1"),
        rds_product("MY1", "0.0170000000", engine="MySQL"),
        rds_product("MA1", "0.0170000000", engine="MariaDB", instance_type="db.t3.small"),
        rds_product("AU1", "0.2600000000", engine="Aurora PostgreSQL",
                    instance_type="db.r6g.large"),
        rds_product("AU2", "0.3380000000", engine="Aurora PostgreSQL",
                    instance_type="db.r6g.large",
                    usagetype="InstanceUsageIOOptimized:db.r6g.large"),
        rds_product("AM1", "0.2900000000", engine="Aurora MySQL", instance_type="db.r5.large"),
    ])
    return AwsPriceList(aws_env.settings, endpoint_url=aws_pricing_stub.url)


def test_on_demand_price_of_a_postgres_instance(
    prices: AwsPriceList, aws_pricing_stub: PriceListStub
) -> None:
    assert prices.hourly_usd("us-east-1", "db.t3.micro", "postgres") == Decimal("0.018")
    [req] = aws_pricing_stub.requests
    assert req["ServiceCode"] == "AmazonRDS"
    assert req["FormatVersion"] == "aws_v1"
    filters = {f["Field"]: f["Value"] for f in req["Filters"]}
    assert all(f["Type"] == "TERM_MATCH" for f in req["Filters"])
    assert filters["instanceType"] == "db.t3.micro"
    assert filters["regionCode"] == "us-east-1"
    assert filters["databaseEngine"] == "PostgreSQL"
    assert filters["deploymentOption"] == "Single-AZ"


def test_multi_az_region_and_engine_pick_their_own_product(prices: AwsPriceList) -> None:
    assert prices.hourly_usd("us-east-1", "db.t3.micro", "postgres", True) == Decimal("0.036")
    assert prices.hourly_usd("eu-west-1", "db.t3.micro", "postgres") == Decimal("0.02")
    assert prices.hourly_usd("us-east-1", "db.t3.micro", "mysql") == Decimal("0.017")
    assert prices.hourly_usd("us-east-1", "db.t3.small", "mariadb") == Decimal("0.017")


def test_aurora_uses_the_standard_price_and_ignores_multi_az(prices: AwsPriceList) -> None:
    assert prices.hourly_usd("us-east-1", "db.r6g.large", "aurora-postgresql", True) == Decimal(
        "0.26")
    assert prices.hourly_usd("us-east-1", "db.r5.large", "aurora-mysql") == Decimal("0.29")


def test_no_product_is_none(prices: AwsPriceList, aws_pricing_stub: PriceListStub) -> None:
    assert prices.hourly_usd("ap-south-1", "db.t3.micro", "postgres") is None
    assert prices.hourly_usd("us-east-1", "db.x9.huge", "postgres") is None
    asked = len(aws_pricing_stub.requests)
    # An engine the Price List mapping does not know is never guessed, nor asked.
    assert prices.hourly_usd("us-east-1", "db.t3.micro", "neptune") is None
    assert len(aws_pricing_stub.requests) == asked


def test_answers_are_remembered(prices: AwsPriceList, aws_pricing_stub: PriceListStub) -> None:
    for _ in range(3):
        assert prices.hourly_usd("us-east-1", "db.t3.micro", "postgres") == Decimal("0.018")
        assert prices.hourly_usd("ap-south-1", "db.t3.micro", "postgres") is None
    assert len(aws_pricing_stub.requests) == 2


def test_products_on_several_pages_are_all_read(
    aws_env: AwsTestEnv, aws_pricing_stub: PriceListStub
) -> None:
    # 130 listings of one price: the paginator must follow NextToken to read them all.
    aws_pricing_stub.products.extend(
        rds_product(f"SKU{i}", "0.5000000000", instance_type="db.m5.large") for i in range(130))
    prices = AwsPriceList(aws_env.settings, endpoint_url=aws_pricing_stub.url)
    assert prices.hourly_usd("us-east-1", "db.m5.large", "postgres") == Decimal("0.5")
    assert len(aws_pricing_stub.requests) == 2
    assert aws_pricing_stub.requests[1]["NextToken"] == "100"

    aws_pricing_stub.products.append(
        rds_product("ODD", "0.9000000000", instance_type="db.m5.large"))
    fresh = AwsPriceList(aws_env.settings, endpoint_url=aws_pricing_stub.url)
    # Two different prices for one instance: unknown, never a guess.
    assert fresh.hourly_usd("us-east-1", "db.m5.large", "postgres") is None


def test_access_denied_is_a_provider_error(
    prices: AwsPriceList, aws_pricing_stub: PriceListStub
) -> None:
    aws_pricing_stub.fail_next(1, "AccessDeniedException")
    with pytest.raises(ProviderError) as err:
        prices.hourly_usd("us-east-1", "db.t3.micro", "postgres")
    assert "AccessDeniedException" in err.value.message
    assert "Price List" in err.value.message


def test_throttling_is_retried(prices: AwsPriceList, aws_pricing_stub: PriceListStub) -> None:
    aws_pricing_stub.fail_next(1, "ThrottlingException")
    assert prices.hourly_usd("us-east-1", "db.t3.micro", "postgres") == Decimal("0.018")
    assert len(aws_pricing_stub.requests) == 2


def test_uses_the_account_profile(
    aws_env: AwsTestEnv, aws_pricing_stub: PriceListStub
) -> None:
    aws_pricing_stub.products.append(rds_product("PG1", "0.0180000000"))
    prices = AwsPriceList(
        aws_env.settings, account=aws_env.account(profile="missing-profile"),
        endpoint_url=aws_pricing_stub.url,
    )
    with pytest.raises(ProviderError, match="missing-profile"):
        prices.hourly_usd("us-east-1", "db.t3.micro", "postgres")
    aws_env.write_profile("billing", "AKIABILLINGKEY000001", "billing-secret")
    prices = AwsPriceList(
        aws_env.settings, account=aws_env.account(profile="billing"),
        endpoint_url=aws_pricing_stub.url,
    )
    assert prices.hourly_usd("us-east-1", "db.t3.micro", "postgres") == Decimal("0.018")
    assert aws_pricing_stub.access_keys[-1] == "AKIABILLINGKEY000001"


def test_unreachable_price_list_is_a_provider_error(aws_env: AwsTestEnv) -> None:
    settings = aws_env.settings.model_copy(update={"aws_max_attempts": 1})
    prices = AwsPriceList(settings, endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderError, match="Could not connect"):
        prices.hourly_usd("us-east-1", "db.t3.micro", "postgres")
