"""What the CloudWatch benchmarks share: an AWS account on a local moto server, targets
for its instances, and a count of the GetMetricData calls made on the wire."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from snoozeql.config import Settings
from snoozeql.domain.types import Account, AccountStatus, InstanceKind, ProviderKind
from snoozeql.providers.aws import driver as aws_module
from snoozeql.providers.base import MetricTarget


def moto_setup(workdir: Path, endpoint: str, names: list[str]
               ) -> tuple[Settings, Account, list[MetricTarget]]:
    """Settings allowing the local moto, an account on it in us-east-1, and a target for
    each instance name."""
    settings = Settings(data_dir=workdir, aws_read_timeout=600, aws_max_attempts=1,
                        allowed_endpoints=["127.0.0.1", "localhost"],  # the local moto
                        _env_file=None)  # type: ignore[call-arg]
    account = Account(id=uuid.uuid4(), name="bench", provider=ProviderKind.AWS,
                      config={"regions": ["us-east-1"], "endpoint_url": endpoint},
                      status=AccountStatus.CONNECTED)
    targets = [
        MetricTarget(n, f"arn:aws:rds:us-east-1:123456789012:db:{n}", InstanceKind.INSTANCE,
                     "postgres", "us-east-1")
        for n in names
    ]
    return settings, account, targets


@contextmanager
def counting_get_metric_data() -> Iterator[list[str]]:
    """The regions of every GetMetricData call made while inside (botocore's events on
    each client the provider creates)."""
    calls: list[str] = []
    original = aws_module.AwsCredentials.client

    def client(self: Any, service: str, region: str, **kwargs: Any) -> Any:
        c = original(self, service, region, **kwargs)
        c.meta.events.register("before-call.cloudwatch.GetMetricData",
                          lambda **_kw: calls.append(region))
        return c

    aws_module.AwsCredentials.client = client  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        aws_module.AwsCredentials.client = original  # type: ignore[method-assign]
