"""Which module implements which provider.

Providers are imported lazily, so a user who never adds a GCP account never pays for
importing Google's client library.
"""

from __future__ import annotations

import importlib
from typing import Any

from snoozeql.config import Settings
from snoozeql.domain.errors import ValidationError
from snoozeql.domain.types import ProviderKind
from snoozeql.observability import Telemetry
from snoozeql.providers.base import Provider

_IMPLEMENTATIONS: dict[ProviderKind, str] = {
    ProviderKind.AWS: "snoozeql.providers.aws:AwsProvider",
    ProviderKind.GCP: "snoozeql.providers.gcp:GcpProvider",
    ProviderKind.LOCAL: "snoozeql.providers.local.provider:LocalProvider",
    ProviderKind.DOCKER: "snoozeql.providers.local.provider:DockerProvider",
    ProviderKind.DEMO_AWS: "snoozeql.providers.demo:DemoAwsProvider",
    ProviderKind.DEMO_GCP: "snoozeql.providers.demo:DemoGcpProvider",
}

# Metrics collectors of the providers measured per account (services/metrics.py).
_COLLECTORS: dict[ProviderKind, str] = {
    ProviderKind.AWS: "snoozeql.providers.aws_metrics:AwsMetricsCollector",
    ProviderKind.GCP: "snoozeql.providers.gcp_metrics:GcpMetricsCollector",
    ProviderKind.DEMO_AWS: "snoozeql.providers.demo:DemoMetricsCollector",
    ProviderKind.DEMO_GCP: "snoozeql.providers.demo:DemoMetricsCollector",
}


def _build(target: str, settings: Settings, telemetry: Telemetry | None = None) -> Any:
    module, _, cls = target.partition(":")
    built = getattr(importlib.import_module(module), cls)(settings)
    if telemetry is not None and hasattr(built, "telemetry"):
        built.telemetry = telemetry  # a provider that counts its API calls
    return built


class ProviderRegistry:
    """Builds each provider once, on first use. Tests may inject their own."""

    def __init__(self, settings: Settings, overrides: dict[ProviderKind, Any] | None = None):
        self._settings = settings
        self._built: dict[ProviderKind, Provider] = dict(overrides or {})
        # Where providers count their API calls (the Context sets its own).
        self.telemetry: Telemetry | None = None

    def get(self, kind: ProviderKind | str) -> Provider:
        kind = ProviderKind(kind)
        if kind not in self._built:
            target = _IMPLEMENTATIONS.get(kind)
            if target is None:
                raise ValidationError(f"provider {kind.value!r} has no cloud driver")
            self._built[kind] = _build(target, self._settings, self.telemetry)
        return self._built[kind]

    def metrics_collector(self, kind: ProviderKind | str) -> Any:
        """A new metrics collector of a cloud provider (an object with ``collect``)."""
        kind = ProviderKind(kind)
        target = _COLLECTORS.get(kind)
        if target is None:
            raise ValidationError(f"no cloud metrics collector for {kind.value}")
        return _build(target, self._settings, self.telemetry)
