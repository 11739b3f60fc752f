"""The settings of a GCP account (``Account.config``): checked when the account is
added or changed, read by the driver and the metrics collector.

Nothing here imports Google's client library: a user who checks or adds an AWS account
(or lists the providers) never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snoozeql.domain import validation as v
from snoozeql.domain.endpoints import check_endpoint
from snoozeql.domain.errors import SnoozeError, ValidationError
from snoozeql.domain.types import Account
from snoozeql.providers.base import ConfigField, reject_unknown

if TYPE_CHECKING:
    from snoozeql.config import Settings

__all__ = ["SCHEMA", "GcpAccountConfig", "GcpConfigSchema", "credentials_file_path"]


@dataclass(frozen=True)
class GcpAccountConfig:
    """``Account.config`` for GCP. Only the key file *path* is ever stored."""

    projects: tuple[str, ...]
    credentials_file: str | None
    api_endpoint: str | None

    @classmethod
    def from_account(cls, account: Account | None) -> GcpAccountConfig:
        config = account.config if account is not None else {}
        raw = config.get("projects") or []
        if isinstance(raw, str):
            raw = raw.split(",")
        projects = tuple(dict.fromkeys(str(p).strip() for p in raw if str(p).strip()))
        return cls(
            projects=projects,
            credentials_file=config.get("credentials_file") or None,
            api_endpoint=config.get("api_endpoint") or None,
        )


def credentials_file_path(
    value: str, settings: Any, error: type[SnoozeError] = ValidationError
) -> str:
    """The key file's resolved path when it lies in the credentials directory.

    Relative paths are read from that directory. Every refusal has the same message,
    whether the file exists or not, so the check reveals nothing about other paths.
    """
    base = settings.effective_credentials_dir
    try:
        raw = Path(str(value)).expanduser()
        path = (raw if raw.is_absolute() else base / raw).resolve()
        usable = path.is_relative_to(base) and path.is_file()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, an unknown ~user, a loop
        usable = False
    if not usable:
        raise error(
            f"credentials file {str(value)!r} is not a key file in the credentials directory "
            f"{base} (SNOOZEQL_CREDENTIALS_DIR); put the service-account key file there"
        )
    return str(path)


class GcpConfigSchema:
    """Projects (required); credentials from a key file in the credentials directory or
    Application Default Credentials; a custom API endpoint (a proxy, a test server)."""

    fields = (
        ConfigField("projects", "comma-separated projects", required=True, many=True,
                    label="Projects (comma-separated)"),
        ConfigField("credentials_file", "service-account key file (the path is stored)",
                    label="Service-account key file (path on the server)"),
        ConfigField("api_endpoint", "API endpoint", label="API endpoint"),
    )
    scope_key = "projects"

    def normalize(self, raw: dict[str, Any], settings: Settings) -> dict[str, Any]:
        """A custom endpoint must be allowed by the operator (``allowed_endpoints``) and
        a key file must lie in the credentials directory (``credentials_dir``)."""
        reject_unknown(raw, {f.name for f in self.fields})
        projects = [v.gcp_project(p) for p in v.split_list(raw.get("projects"))]
        if not projects:
            raise ValidationError("a GCP account needs at least one project (--projects)")
        cfg: dict[str, Any] = {"projects": projects}
        if "credentials_file" in raw:
            # the path only, never the key
            cfg["credentials_file"] = credentials_file_path(raw["credentials_file"], settings)
        if "api_endpoint" in raw:
            url = v.http_url(str(raw["api_endpoint"]), "API endpoint")
            cfg["api_endpoint"] = check_endpoint(url, settings.allowed_endpoints, "API endpoint")
        return cfg

    def scopes(self, account: Account) -> list[str]:
        return list(GcpAccountConfig.from_account(account).projects)


SCHEMA = GcpConfigSchema()
