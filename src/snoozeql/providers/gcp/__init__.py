"""GCP: Cloud SQL instances.

* :mod:`.driver`: discovery and lifecycle through the Cloud SQL Admin API (Google's
  client library, imported only when a GCP account is used);
* :mod:`.metrics`: Cloud Monitoring ``timeSeries.list`` (collection and day-one history);
* :mod:`.config`: the account's settings (no Google import).

Prices of Cloud SQL come from the user's price table only (no price API is asked).
"""

from snoozeql.providers.base import ProviderPlugin

PLUGIN = ProviderPlugin(
    name="gcp",
    driver="snoozeql.providers.gcp.driver:GcpProvider",
    config="snoozeql.providers.gcp.config:SCHEMA",
    metrics="snoozeql.providers.gcp.metrics:GcpMetricsCollector",
    metric_history=True,
    cloud=True,
    title="GCP",
)
