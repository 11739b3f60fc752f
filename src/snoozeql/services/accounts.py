"""Cloud accounts: add, list, show, change, remove.

Each provider's plugin says which settings its accounts take and checks them
(:func:`snoozeql.providers.registry.config_schema`).

A secret setting (``ConfigField.secret``, such as an AWS role's ``external_id``, a
shared secret with the role's owner) is kept encrypted in the secrets table (scope
``account``), never in the account's config row, and shown as ``set``
(:func:`public_config`) everywhere but to an admin over the API.
Accounts returned by this service carry the real value in ``config`` for the providers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID, uuid4

from snoozeql.config import Settings, get_settings
from snoozeql.domain import validation as v
from snoozeql.domain.errors import ConflictError, NotFoundError, ValidationError
from snoozeql.domain.types import Account, AccountStatus, ProviderKind
from snoozeql.providers import registry
from snoozeql.providers.base import ConfigField
from snoozeql.services import audit
from snoozeql.services.context import Context
from snoozeql.services.secrets import SecretBox
from snoozeql.store import accounts as store
from snoozeql.store import secrets as secret_store

SECRET_SCOPE = "account"
SHOWN_AS = "set"


def public_config(account: Account, reveal: bool = False) -> dict[str, Any]:
    """The account's settings as shown: secret settings as ``set`` unless ``reveal``."""
    cfg = dict(account.config)
    if not reveal:
        for key in registry.secret_config_keys():
            if cfg.get(key):
                cfg[key] = SHOWN_AS
    return cfg


def normalize_config(
    provider: ProviderKind | str, raw: dict[str, Any], settings: Settings | None = None
) -> dict[str, Any]:
    """Validate provider settings (its plugin's schema); the result is what the store
    keeps (no secrets)."""
    settings = settings or get_settings()
    raw = {k: val for k, val in raw.items() if val not in (None, "", [])}
    schema = registry.config_schema(provider)
    if schema is None:
        raise ValidationError(
            f"accounts are for cloud providers ({', '.join(registry.cloud_names())}); "
            f"local databases are created with `snoozeql db create`"
        )
    return schema.normalize(raw, settings)


def cloud_providers() -> list[str]:
    """The names of the clouds users add accounts of (``aws``, ``gcp``)."""
    return registry.cloud_names()


@dataclass(frozen=True)
class CloudForm:
    """What the dashboard's and the CLI's "add an account" ask of one cloud."""

    name: str
    title: str
    fields: tuple[ConfigField, ...]


def cloud_forms() -> list[CloudForm]:
    """Each cloud users add accounts of, with its settings (from its plugin)."""
    out = []
    for p in registry.plugins():
        schema = registry.config_schema(p.name) if p.cloud else None
        if schema is not None:
            out.append(CloudForm(p.name, p.display_name, tuple(schema.fields)))
    return out


def setting_names(provider: ProviderKind | str) -> set[str]:
    """The settings accounts of ``provider`` take (none: it has no accounts)."""
    schema = registry.config_schema(provider)
    return {f.name for f in schema.fields} if schema is not None else set()


def _audit_json(a: Account) -> dict[str, Any]:
    return {"name": a.name, "provider": a.provider.value, "config": public_config(a)}


class AccountService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._box: SecretBox | None = None

    @property
    def box(self) -> SecretBox:
        if self._box is None:
            self._box = SecretBox(self.ctx.settings)
        return self._box

    def _write_secrets(self, conn: Any, account_id: UUID, cfg: dict[str, Any]) -> dict[str, Any]:
        """Move the secret settings out of ``cfg`` into the encrypted secrets table (or
        drop the stored ones ``cfg`` no longer has); returns what the row keeps."""
        public = dict(cfg)
        for key in registry.secret_config_keys():
            value = public.pop(key, None)
            if value:
                secret_store.put(conn, SECRET_SCOPE, account_id, key,
                                 self.box.encrypt(str(value)), self.ctx.now())
            else:
                secret_store.delete(conn, SECRET_SCOPE, account_id, key)
        return public

    def _with_secrets(self, accounts: list[Account]) -> list[Account]:
        """The accounts with their secret settings decrypted into ``config``.

        A row that still holds one in plain text (stored before it was encrypted) is
        rewritten on the way."""
        secret_keys = registry.secret_config_keys()
        legacy = [a for a in accounts if any(a.config.get(k) for k in secret_keys)]
        if legacy:
            with self.ctx.engine.begin() as conn:
                for a in legacy:
                    public = self._write_secrets(conn, a.id, a.config)
                    store.update(conn, a.id, self.ctx.now(), config=public)
        legacy_ids = {a.id for a in legacy}  # these already carry their values
        with self.ctx.engine.connect() as conn:
            tokens = {k: secret_store.get_named(conn, SECRET_SCOPE, k) for k in secret_keys}
        if not any(tokens.values()):
            return accounts
        out = []
        for a in accounts:
            if a.id in legacy_ids:
                out.append(a)
                continue
            found = {k: self.box.decrypt(t[a.id]) for k, t in tokens.items() if a.id in t}
            out.append(replace(a, config={**a.config, **found}) if found else a)
        return out

    def add(self, provider: str, name: str, config: dict[str, Any], *, actor: str = "cli"
            ) -> Account:
        try:
            kind = ProviderKind(provider)
        except ValueError:
            raise ValidationError(
                f"unknown provider {provider!r}; use one of: {', '.join(registry.cloud_names())}"
            ) from None
        v.dns_label(name, "account name")
        found = registry.find(kind)
        if found is not None and found.simulated and not self.ctx.settings.demo:
            raise ValidationError(
                f"{kind.value} is the simulated cloud of `snoozeql demo`; it lives only in "
                "the demo's own store"
            )
        account = Account(
            id=uuid4(), name=name, provider=kind, config=normalize_config(
                kind, config, self.ctx.settings),
            status=AccountStatus.UNKNOWN,
        )
        with self.ctx.engine.begin() as conn:
            if store.get_by_name(conn, name):
                raise ConflictError(
                    f"an account named {name!r} already exists; pick another name or "
                    f"remove it first (snoozeql accounts remove {name})"
                )
            public = self._write_secrets(conn, account.id, account.config)
            store.insert(conn, replace(account, config=public), self.ctx.now())
            audit.record(conn, at=self.ctx.now(), actor=actor, action="create", kind="account",
                         object_id=account.id, name=name, after=_audit_json(account))
        return self.get(account.id)

    def list(self, provider: str | None = None) -> list[Account]:
        with self.ctx.engine.connect() as conn:
            found = store.list_all(conn, provider)
        return self._with_secrets(found)

    def names(self) -> dict[UUID, str]:
        """Every account's name by id, ordered by name; for lists that only show names
        (nothing is decrypted)."""
        with self.ctx.engine.connect() as conn:
            return dict(store.names(conn))

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
        return self._with_secrets([account])[0]

    def update(self, ref: str | UUID, config: dict[str, Any], *, actor: str = "cli"
               ) -> Account:
        account = self.get(ref)
        # "set" is how a secret setting is shown: sent back unchanged, it keeps the value
        config = {k: val for k, val in config.items()
                  if not (k in registry.secret_config_keys() and val == SHOWN_AS)}
        merged = {**account.config, **config}
        cfg = normalize_config(account.provider, merged, self.ctx.settings)
        with self.ctx.engine.begin() as conn:
            public = self._write_secrets(conn, account.id, cfg)
            store.update(conn, account.id, self.ctx.now(), config=public)
            audit.record(conn, at=self.ctx.now(), actor=actor, action="update", kind="account",
                         object_id=account.id, name=account.name,
                         before=_audit_json(account),
                         after=_audit_json(replace(account, config=cfg)))
        return self.get(account.id)

    def remove(self, ref: str | UUID, *, actor: str = "cli") -> Account:
        """Remove the account and (by cascade) its discovered instances."""
        account = self.get(ref)
        with self.ctx.engine.begin() as conn:
            store.delete(conn, account.id)
            secret_store.delete(conn, SECRET_SCOPE, account.id)
            audit.record(conn, at=self.ctx.now(), actor=actor, action="delete", kind="account",
                         object_id=account.id, name=account.name, before=_audit_json(account))
        return account
