"""AWS: RDS DB instances and Aurora / Multi-AZ DB clusters.

* :mod:`.driver`: discovery and lifecycle through boto3 (and the credentials, client
  settings and error wording the other modules share);
* :mod:`.metrics`: CloudWatch ``GetMetricData`` (collection and day-one history);
* :mod:`.pricing`: on-demand prices from the AWS Price List;
* :mod:`.config`: the account's settings (no boto3 import).
"""

from snoozeql.providers.base import ProviderPlugin

PLUGIN = ProviderPlugin(
    name="aws",
    driver="snoozeql.providers.aws.driver:AwsProvider",
    config="snoozeql.providers.aws.config:SCHEMA",
    metrics="snoozeql.providers.aws.metrics:AwsMetricsCollector",
    metric_history=True,
    pricing="snoozeql.providers.aws.pricing:price_source",
    cloud=True,
    title="AWS",
)
