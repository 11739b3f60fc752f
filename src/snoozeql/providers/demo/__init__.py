"""The simulated clouds of ``snoozeql demo``: a fleet that exists only in this package.

Two providers, ``demo-aws`` and ``demo-gcp``, plug in like the real ones (a driver, a
metrics collector, a price list and account settings each), so discovery, lifecycle,
metrics collection, the reconciler, the API and the dashboard run their ordinary code
paths against the simulation. Their accounts live only in the demo's own store.

* :mod:`.simulation`: the fleet, its activity and its lifecycle state;
* :mod:`.driver`: discovery and lifecycle against the simulation;
* :mod:`.metrics`: live samples of the running simulated instances;
* :mod:`.pricing`: simulated prices (so costs and savings are populated);
* :mod:`.config`: a demo account's settings.
"""

from snoozeql.providers.base import ProviderPlugin

AWS_PLUGIN = ProviderPlugin(
    name="demo-aws",
    driver="snoozeql.providers.demo.driver:DemoAwsProvider",
    config="snoozeql.providers.demo.config:AWS_SCHEMA",
    metrics="snoozeql.providers.demo.metrics:DemoMetricsCollector",
    pricing="snoozeql.providers.demo.pricing:price_source",
    simulated=True,
)
GCP_PLUGIN = ProviderPlugin(
    name="demo-gcp",
    driver="snoozeql.providers.demo.driver:DemoGcpProvider",
    config="snoozeql.providers.demo.config:GCP_SCHEMA",
    metrics="snoozeql.providers.demo.metrics:DemoMetricsCollector",
    pricing="snoozeql.providers.demo.pricing:price_source",
    simulated=True,
)
