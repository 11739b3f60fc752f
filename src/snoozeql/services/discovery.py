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
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import sqlalchemy as sa

from snoozeql.domain.errors import ConflictError, SnoozeError
from snoozeql.domain.types import Account, AccountStatus
from snoozeql.observability import FIELDS, task_fields
from snoozeql.services.accounts import AccountService
from snoozeql.services.context import Context
from snoozeql.services.pricing import PriceResolver
from snoozeql.store import accounts as account_store
from snoozeql.store import instances as instance_store
from snoozeql.store.tables import accounts as accounts_t

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

    def _begin(self, account: Account, *, takeover: bool = False) -> None:
        """Move the account to ``syncing`` unless another sync of it is running."""
        now = self.ctx.now()
        free = sa.or_(
            accounts_t.c.status != AccountStatus.SYNCING.value,
            accounts_t.c.updated_at < now - STALE_SYNC,
        )
        with self.ctx.engine.begin() as conn:
            res = conn.execute(
                accounts_t.update()
                .where(accounts_t.c.id == account.id, sa.true() if takeover else free)
                .values(status=AccountStatus.SYNCING.value, updated_at=now)
            )
        if res.rowcount != 1:
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
