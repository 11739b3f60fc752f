"""The settings of a demo account (``demo-aws``, ``demo-gcp``): how big the simulated
fleet is, where it lives, and how long a simulated stop or start takes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snoozeql.domain import validation as v
from snoozeql.domain.errors import ValidationError
from snoozeql.domain.types import Account, ProviderKind
from snoozeql.providers.base import ConfigField, reject_unknown

if TYPE_CHECKING:
    from snoozeql.config import Settings

__all__ = ["AWS_SCHEMA", "GCP_SCHEMA", "DemoConfigSchema", "normalize_config"]

MAX_INSTANCES = 200_000
DEFAULT_TRANSITION_SECONDS = 8.0
DEFAULT_REGIONS = {
    ProviderKind.DEMO_AWS: ["us-east-1", "eu-west-1"],
    ProviderKind.DEMO_GCP: ["europe-west1", "us-central1"],
}
_FIELDS = (
    ConfigField("regions", "comma-separated regions", many=True),
    ConfigField("instances", "how many databases the simulation holds"),
    ConfigField("seed", "the simulation's seed: the same seed, the same fleet"),
    ConfigField("transition_seconds", "how long a simulated stop or start takes"),
)


def normalize_config(kind: ProviderKind, raw: dict[str, Any]) -> dict[str, Any]:
    """A demo account's settings: regions, instances, seed, transition_seconds."""
    shown = {f.name for f in _FIELDS}
    reject_unknown(raw, shown | {"simulated"}, shown)
    regions = v.split_list(raw.get("regions")) or list(DEFAULT_REGIONS[kind])
    for r in regions:
        if kind is ProviderKind.DEMO_AWS:
            v.aws_region(r)
        elif not r.replace("-", "").isalnum() or not r[:1].isalpha():
            raise ValidationError(f"{r!r} is not a GCP region name like europe-west1")
    try:
        count = int(raw.get("instances", 100))
        seed = int(raw.get("seed", 1))
        transition = float(raw.get("transition_seconds", DEFAULT_TRANSITION_SECONDS))
    except (TypeError, ValueError):
        raise ValidationError("instances and seed must be integers, transition_seconds "
                              "a number") from None
    if not 0 <= count <= MAX_INSTANCES:
        raise ValidationError(f"instances must be between 0 and {MAX_INSTANCES}")
    if not 0 <= transition <= 3600:
        raise ValidationError("transition_seconds must be between 0 and 3600")
    return {"simulated": True, "regions": regions, "instances": count, "seed": seed,
            "transition_seconds": transition}


class DemoConfigSchema:
    """The settings of one simulated cloud's accounts (synced whole, not per region)."""

    fields = _FIELDS
    scope_key = None

    def __init__(self, kind: ProviderKind) -> None:
        self.kind = kind

    def normalize(self, raw: dict[str, Any], settings: Settings) -> dict[str, Any]:
        return normalize_config(self.kind, raw)

    def scopes(self, account: Account) -> list[str]:
        return []


AWS_SCHEMA = DemoConfigSchema(ProviderKind.DEMO_AWS)
GCP_SCHEMA = DemoConfigSchema(ProviderKind.DEMO_GCP)
