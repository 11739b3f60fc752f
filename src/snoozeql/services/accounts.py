"""Cloud accounts: add, list, show, change, remove."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from snoozeql.domain import validation as v
from snoozeql.domain.errors import ConflictError, NotFoundError, ValidationError
from snoozeql.domain.types import Account, AccountStatus, ProviderKind
from snoozeql.services import audit
from snoozeql.services.context import Context
from snoozeql.store import accounts as store

CLOUD_PROVIDERS = (ProviderKind.AWS, ProviderKind.GCP)


def normalize_config(provider: ProviderKind, raw: dict[str, Any]) -> dict[str, Any]:
    """Validate provider settings; the result is what the store keeps (no secrets)."""
    raw = {k: val for k, val in raw.items() if val not in (None, "", [])}
    if provider == ProviderKind.AWS:
        allowed = {"regions", "profile", "role_arn", "external_id", "endpoint_url"}
        _no_unknown(raw, allowed)
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
            cfg["endpoint_url"] = v.http_url(str(raw["endpoint_url"]), "endpoint URL")
        return cfg
    if provider == ProviderKind.GCP:
        allowed = {"projects", "credentials_file", "api_endpoint"}
        _no_unknown(raw, allowed)
        projects = [v.gcp_project(p) for p in v.split_list(raw.get("projects"))]
        if not projects:
            raise ValidationError("a GCP account needs at least one project (--projects)")
        cfg = {"projects": projects}
        if "credentials_file" in raw:
            path = Path(str(raw["credentials_file"])).expanduser().resolve()
            if not path.is_file():
                raise ValidationError(f"credentials file {path} does not exist")
            cfg["credentials_file"] = str(path)  # the path only, never the key
        if "api_endpoint" in raw:
            cfg["api_endpoint"] = v.http_url(str(raw["api_endpoint"]), "API endpoint")
        return cfg
    if provider in (ProviderKind.DEMO_AWS, ProviderKind.DEMO_GCP):
        from snoozeql.providers import demo

        return demo.normalize_config(provider, raw)
    raise ValidationError(
        f"accounts are for cloud providers ({', '.join(p.value for p in CLOUD_PROVIDERS)}); "
        f"local databases are created with `snoozeql db create`"
    )


def _no_unknown(raw: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise ValidationError(
            f"unknown setting(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def _audit_json(a: Account) -> dict[str, Any]:
    return {"name": a.name, "provider": a.provider.value, "config": dict(a.config)}


class AccountService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def add(self, provider: str, name: str, config: dict[str, Any], *, actor: str = "cli"
            ) -> Account:
        try:
            kind = ProviderKind(provider)
        except ValueError:
            raise ValidationError(
                f"unknown provider {provider!r}; use one of: aws, gcp"
            ) from None
        v.dns_label(name, "account name")
        if kind in (ProviderKind.DEMO_AWS, ProviderKind.DEMO_GCP) and not self.ctx.settings.demo:
            raise ValidationError(
                f"{kind.value} is the simulated cloud of `snoozeql demo`; it lives only in "
                "the demo's own store"
            )
        account = Account(
            id=uuid4(), name=name, provider=kind, config=normalize_config(kind, config),
            status=AccountStatus.UNKNOWN,
        )
        with self.ctx.engine.begin() as conn:
            if store.get_by_name(conn, name):
                raise ConflictError(
                    f"an account named {name!r} already exists; pick another name or "
                    f"remove it first (snoozeql accounts remove {name})"
                )
            store.insert(conn, account, self.ctx.now())
            audit.record(conn, at=self.ctx.now(), actor=actor, action="create", kind="account",
                         object_id=account.id, name=name, after=_audit_json(account))
            return store.get(conn, account.id)  # type: ignore[return-value]

    def list(self, provider: str | None = None) -> list[Account]:
        with self.ctx.engine.connect() as conn:
            return store.list_all(conn, provider)

    def get(self, ref: str | UUID) -> Account:
        with self.ctx.engine.connect() as conn:
            account = None
            try:
                account = store.get(conn, UUID(str(ref)))
            except ValueError:
                pass
            if account is None:
                account = store.get_by_name(conn, str(ref))
        if account is None:
            raise NotFoundError(f"no account {str(ref)!r}")
        return account

    def update(self, ref: str | UUID, config: dict[str, Any], *, actor: str = "cli"
               ) -> Account:
        account = self.get(ref)
        merged = {**account.config, **config}
        cfg = normalize_config(account.provider, merged)
        with self.ctx.engine.begin() as conn:
            store.update(conn, account.id, self.ctx.now(), config=cfg)
            audit.record(conn, at=self.ctx.now(), actor=actor, action="update", kind="account",
                         object_id=account.id, name=account.name,
                         before=_audit_json(account),
                         after={**_audit_json(account), "config": cfg})
        return self.get(account.id)

    def remove(self, ref: str | UUID, *, actor: str = "cli") -> Account:
        """Remove the account and (by cascade) its discovered instances."""
        account = self.get(ref)
        with self.ctx.engine.begin() as conn:
            store.delete(conn, account.id)
            audit.record(conn, at=self.ctx.now(), actor=actor, action="delete", kind="account",
                         object_id=account.id, name=account.name, before=_audit_json(account))
        return account
