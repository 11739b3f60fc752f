"""The settings of an AWS account (``Account.config``): checked when the account is
added or changed, read by the driver, the metrics collector and the price list.

Nothing here imports boto3: checking an account's settings costs no client library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from snoozeql.domain import validation as v
from snoozeql.domain.endpoints import check_endpoint
from snoozeql.domain.errors import ProviderError, ValidationError
from snoozeql.domain.types import Account
from snoozeql.providers.base import ConfigField, reject_unknown

if TYPE_CHECKING:
    from snoozeql.config import Settings

__all__ = ["SCHEMA", "AwsAccountConfig", "AwsConfigSchema"]


@dataclass(frozen=True)
class AwsAccountConfig:
    """The AWS part of ``Account.config``; holds no secret."""

    regions: tuple[str, ...]
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    endpoint_url: str | None = None

    @classmethod
    def from_account(cls, account: Account) -> AwsAccountConfig:
        cfg = account.config or {}
        regions = cfg.get("regions") or []
        if isinstance(regions, str):
            regions = [r for r in regions.split(",")]
        regions = [str(r).strip() for r in regions if str(r).strip()]
        if not regions:
            raise ProviderError(f"AWS account {account.name!r} has no regions configured")

        def opt(key: str) -> str | None:
            value = cfg.get(key)
            return str(value) if value not in (None, "") else None

        return cls(
            regions=tuple(dict.fromkeys(regions)),
            profile=opt("profile"),
            role_arn=opt("role_arn"),
            external_id=opt("external_id"),
            endpoint_url=opt("endpoint_url"),
        )


class AwsConfigSchema:
    """Regions (required), then how to get credentials: a named profile or the default
    chain, optionally a role to assume; a custom endpoint (LocalStack, moto)."""

    fields = (
        ConfigField("regions", "comma-separated regions", required=True, many=True,
                    label="Regions (comma-separated)", placeholder="eu-west-1,us-east-1"),
        ConfigField("profile", "named profile", label="Profile"),
        ConfigField("role_arn", "role to assume", label="Role ARN"),
        ConfigField("external_id", "external id for the role", secret=True,
                    label="External id"),
        ConfigField("endpoint_url", "endpoint (LocalStack, moto)",
                    label="Endpoint URL (LocalStack, moto)"),
    )
    scope_key = "regions"

    def normalize(self, raw: dict[str, Any], settings: Settings) -> dict[str, Any]:
        """A custom endpoint must be allowed by the operator (``allowed_endpoints``)."""
        reject_unknown(raw, {f.name for f in self.fields})
        regions = [v.aws_region(r) for r in v.split_list(raw.get("regions"))]
        if not regions:
            raise ValidationError("an AWS account needs at least one region (--regions)")
        cfg: dict[str, Any] = {"regions": regions}
        if "profile" in raw:
            cfg["profile"] = str(raw["profile"])
        if "role_arn" in raw:
            cfg["role_arn"] = v.role_arn(str(raw["role_arn"]))
        if "external_id" in raw:
            if "role_arn" not in cfg:
                raise ValidationError("--external-id only makes sense with --role-arn")
            cfg["external_id"] = str(raw["external_id"])
        if "endpoint_url" in raw:
            url = v.http_url(str(raw["endpoint_url"]), "endpoint URL")
            cfg["endpoint_url"] = check_endpoint(url, settings.allowed_endpoints, "endpoint URL")
        return cfg

    def scopes(self, account: Account) -> list[str]:
        return list(AwsAccountConfig.from_account(account).regions)


SCHEMA = AwsConfigSchema()
