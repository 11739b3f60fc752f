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
from snoozeql.providers.base import Provider

_IMPLEMENTATIONS: dict[ProviderKind, str] = {
    ProviderKind.AWS: "snoozeql.providers.aws:AwsProvider",
    ProviderKind.GCP: "snoozeql.providers.gcp:GcpProvider",
    ProviderKind.LOCAL: "snoozeql.providers.local_provider:LocalProvider",
    ProviderKind.DOCKER: "snoozeql.providers.local_provider:DockerProvider",
}


class ProviderRegistry:
    """Builds each provider once, on first use. Tests may inject their own."""

    def __init__(self, settings: Settings, overrides: dict[ProviderKind, Any] | None = None):
        self._settings = settings
        self._built: dict[ProviderKind, Provider] = dict(overrides or {})

    def get(self, kind: ProviderKind | str) -> Provider:
        kind = ProviderKind(kind)
        if kind not in self._built:
            target = _IMPLEMENTATIONS.get(kind)
            if target is None:
                raise ValidationError(f"provider {kind.value!r} has no cloud driver")
            module, _, cls = target.partition(":")
            self._built[kind] = getattr(importlib.import_module(module), cls)(self._settings)
        return self._built[kind]
