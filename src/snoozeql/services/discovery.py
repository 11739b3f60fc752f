"""Discovery: bring an account's stored inventory in line with what the cloud reports.

A sync moves the account to ``syncing``, asks the provider for the complete list,
prices it, and then in one transaction upserts every instance (batched), flags the
ones that were not seen (``missing_since``; never deleted) and marks the account
``connected``. If the provider fails, the account becomes ``failed`` with a readable
``last_error`` and no instance of it is touched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from snoozeql.domain.errors import ConflictError, SnoozeError, ValidationError
from snoozeql.domain.types import Account, AccountStatus, DiscoveredInstance
from snoozeql.observability import FIELDS, task_fields
from snoozeql.providers import registry
from snoozeql.services.accounts import AccountService
from snoozeql.services.context import Context
from snoozeql.services.pricing import PriceResolver
from snoozeql.store import accounts as account_store
from snoozeql.store import instances as instance_store
from snoozeql.store import sync_parts as part_store

log = logging.getLogger(__name__)

# A sync that has said "syncing" for longer than this is taken to have died.
STALE_SYNC = timedelta(minutes=30)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SyncReport:
    account_id: UUID
    account_name: str
    status: AccountStatus
    found: int = 0
    new: int = 0
    changed: int = 0
    missing: int = 0
    seconds: float = 0.0
    error: str | None = None


class DiscoveryService:
    def __init__(self, ctx: Context, prices: PriceResolver | None = None) -> None:
        self.ctx = ctx
        self.accounts = AccountService(ctx)
        self.prices = prices or PriceResolver(ctx)

    def sync(self, ref: str | UUID, progress: Progress | None = None, *,
             takeover: bool = False) -> SyncReport:
        """Sync one account. ``takeover``: the caller knows the sync that marked the
        account ``syncing`` is dead (the queue hands a dead worker's task on), so the
        mark does not stop this one."""
        account = self.accounts.get(ref)
        say = progress or (lambda _msg: None)
        started = time.monotonic()
        seen_at = self.ctx.now()
        self._begin(account, takeover=takeover)
        try:
            say(f"asking {account.provider.value} for the databases of {account.name}")
            provider = self.ctx.providers.get(account.provider)
            found = provider.discover(account)
            say(f"found {len(found)} databases; pricing them")
            costs = self.prices.costs_cents(account, found)
            say(f"saving {len(found)} databases")
            with self.ctx.engine.begin() as conn:
                written = instance_store.sync_account(conn, account.id, found, seen_at, costs)
                # Same transaction: unchanged instances' last_seen_at is derived from it.
                account_store.update(
                    conn, account.id, self.ctx.now(), status=AccountStatus.CONNECTED,
                    last_sync_at=seen_at, last_error=None,
                )
        except Exception as exc:  # noqa: BLE001 - every failure must land on the account
            message = _describe(exc)
            fields = _sync_fields(account, "failed", started) | {"error": message}
            if not isinstance(exc, SnoozeError):
                log.exception("sync of account %s failed unexpectedly", account.name,
                              extra={FIELDS: fields})
            else:
                log.warning("sync of account %s failed: %s", account.name, message,
                            extra={FIELDS: fields})
            with self.ctx.engine.begin() as conn:
                account_store.update(
                    conn, account.id, self.ctx.now(), status=AccountStatus.FAILED,
                    last_error=message,
                )
            return SyncReport(
                account.id, account.name, AccountStatus.FAILED,
                seconds=time.monotonic() - started, error=message,
            )
        log.info(
            "synced account %s: %d databases (%d new, %d changed, %d missing)",
            account.name, len(found), written.new, written.changed, written.missing,
            extra={FIELDS: _sync_fields(account, "connected", started) | {
                "found": len(found), "new": written.new, "changed": written.changed,
                "missing": written.missing}},
        )
        if account.history_read_at is None and self.ctx.settings.metrics_enabled:
            # The first successful sync of a new account: read the metric history the
            # provider keeps, in the background (once; the store decides).
            from snoozeql.services.background_sync import start_history

            start_history(self.ctx, account.id)
        return SyncReport(
            account.id, account.name, AccountStatus.CONNECTED, found=len(found),
            new=written.new, changed=written.changed, missing=written.missing,
            seconds=time.monotonic() - started,
        )

    def sync_all(self, progress: Progress | None = None) -> list[SyncReport]:
        reports = []
        for account in self.accounts.list():
            try:
                reports.append(self.sync(account.id, progress))
            except ConflictError as exc:
                log.info("skipping %s: %s", account.name, exc.message)
        return reports

    # ------------------------------------------------------------ sync in parts

    def scopes(self, account: Account) -> list[str]:
        """What a sync of the account can be split into: the values of its plugin's
        scope setting, such as AWS regions or GCP projects (empty: synced whole)."""
        try:
            schema = registry.config_schema(account.provider)
            if schema is None or schema.scope_key is None:
                return []
            return schema.scopes(account)
        except SnoozeError:
            return []  # a bad config: synced whole, which records the error

    def sync_scope(self, ref: str | UUID, scope: str, round_id: str, scopes: list[str],
                   started_at: datetime, *, throttled: Callable[[], bool] | None = None
                   ) -> SyncReport | None:
        """Discover one region or project of the account (one task of a sync split per
        scope), keep what it found as a part of ``round_id``, and if every scope of the
        round has its part, write them all in one transaction exactly as :meth:`sync`
        does (instances upserted, the unseen ones of the whole account flagged missing,
        the account ``connected``; or, if a part failed, the account ``failed`` with
        every part's error and no instance touched). Returns the report of that write,
        or None when other parts are still missing.

        ``throttled()`` says whether the provider was still throttling: then the error
        is raised (ProviderError) instead of kept, so that the queue retries the scope.
        A round older than the account's last sync is dropped, never written."""
        account = self.accounts.get(ref)
        begun = time.monotonic()
        schema = registry.config_schema(account.provider)
        key = schema.scope_key if schema is not None else None
        if key is None:
            raise ValidationError(f"{account.provider.value} accounts are synced whole, "
                                  "not per scope")
        scoped = replace(account, config={**account.config, key: [scope]})
        items: list[DiscoveredInstance] = []
        costs: dict[str, Decimal | None] = {}
        error = None
        try:
            found = self.ctx.providers.get(account.provider).discover(scoped)
            costs = self.prices.costs_cents(account, found)
            items = found
        except Exception as exc:  # noqa: BLE001 - every failure lands on the account
            if throttled is not None and throttled():
                raise
            error = _describe(exc)
            if not isinstance(exc, SnoozeError):
                log.exception("sync of %s of account %s failed unexpectedly", scope,
                              account.name)
        # One transaction: the account's row locked, and either this part kept and the
        # account marked syncing (parts missing) or every part written (the last). The
        # last part is not kept: it is written with the others read back (an account of
        # one region, the usual case, never turns its instances into JSON and back).
        with self.ctx.engine.begin() as conn:
            last_sync = part_store.lock_account(conn, account.id)
            if last_sync is False:
                return None  # deleted meanwhile (its parts went with it)
            now = self.ctx.now()
            if not set(scopes) <= part_store.scopes(conn, account.id, round_id) | {scope}:
                part_store.put(conn, account.id, round_id, scope, items, costs, error, now)
                account_store.mark_syncing(conn, account.id, now)
                return None
            got = [*part_store.parts(conn, account.id, round_id, exclude=scope),
                   part_store.SyncPart(scope, items, costs, error)]
            part_store.clear(conn, account.id, round_id, self.ctx.now())
            if isinstance(last_sync, datetime) and last_sync >= started_at:
                log.info("sync round %s of %s is older than its last sync: dropped",
                         round_id, account.name)
                return None
            errors = [p.error for p in sorted(got, key=lambda p: scopes.index(p.scope)
                                              if p.scope in scopes else 0) if p.error]
            if errors:
                message = "; ".join(errors)
                account_store.update(conn, account.id, self.ctx.now(),
                                     status=AccountStatus.FAILED, last_error=message)
                report = SyncReport(account.id, account.name, AccountStatus.FAILED,
                                    seconds=time.monotonic() - begun, error=message)
            else:
                discovered = [d for p in got if p.scope in scopes for d in p.found]
                costs = {pid: c for p in got for pid, c in p.costs.items()}
                written = instance_store.sync_account(conn, account.id, discovered,
                                                      started_at, costs)
                account_store.update(conn, account.id, self.ctx.now(),
                                     status=AccountStatus.CONNECTED,
                                     last_sync_at=started_at, last_error=None)
                report = SyncReport(
                    account.id, account.name, AccountStatus.CONNECTED,
                    found=len(discovered), new=written.new, changed=written.changed,
                    missing=written.missing, seconds=time.monotonic() - begun)
        fields = _sync_fields(account, report.status.value, begun) | {
            "scopes": len(scopes), "found": report.found, "error": report.error}
        log.log(logging.WARNING if report.error else logging.INFO,
                "synced account %s in %d parts: %s", account.name, len(scopes),
                report.error or f"{report.found} databases ({report.new} new, "
                f"{report.changed} changed, {report.missing} missing)",
                extra={FIELDS: fields})
        if report.error is None and account.history_read_at is None \
                and self.ctx.settings.metrics_enabled:
            from snoozeql.services.background_sync import start_history

            start_history(self.ctx, account.id)
        return report

    def _begin(self, account: Account, *, takeover: bool = False) -> None:
        """Move the account to ``syncing`` unless another sync of it is running."""
        with self.ctx.engine.begin() as conn:
            claimed = account_store.claim_sync(conn, account.id, self.ctx.now(),
                                               None if takeover else STALE_SYNC)
        if not claimed:
            raise ConflictError(f"account {account.name!r} is already being synced")


def _sync_fields(account: Account, result: str, started: float) -> dict[str, object]:
    """The structured fields of a sync's log line (one per account and sync)."""
    return {"event": "sync", "account": account.name, "account_id": str(account.id),
            "provider": account.provider.value, "result": result,
            "duration_s": round(time.monotonic() - started, 3), **task_fields()}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SnoozeError):
        return exc.message
    return f"internal error ({type(exc).__name__}); see the server log"
