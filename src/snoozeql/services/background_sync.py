"""Account syncs started from a request and run in the background, with their progress.

The dashboard starts a sync and polls its row; the progress lines live in the process
(``ctx.memo``), one per account, until the sync ends. A second start of an account
already syncing in this process does nothing.

The day-one metric history of a newly added account is read here too, in a thread of
its own after the account's first successful sync (:func:`start_history`), so neither
the sync nor the request that started it waits for it.
"""

from __future__ import annotations

import logging
import threading
from uuid import UUID

from snoozeql.services.context import Context
from snoozeql.services.discovery import DiscoveryService

log = logging.getLogger(__name__)

_PROGRESS = "sync_progress"  # ctx.memo key: account id -> last progress line
_LOCK = threading.Lock()  # not ctx.memo_lock: that one is held while analyses compute


def sync_progress(ctx: Context) -> dict[str, str]:
    """Account id -> the last progress line of its sync running in this process."""
    with _LOCK:
        return ctx.memo.setdefault(_PROGRESS, {})  # type: ignore[no-any-return]


def start_sync(ctx: Context, account_id: str) -> None:
    """Sync the account in a background thread, unless one started here already runs."""
    progress = sync_progress(ctx)
    with _LOCK:
        if account_id in progress:
            return
        progress[account_id] = "starting"

    def say(message: str) -> None:
        progress[account_id] = message

    def run() -> None:
        try:
            DiscoveryService(ctx).sync(account_id, progress=say)
        finally:
            progress.pop(account_id, None)

    threading.Thread(target=run, name=f"web-sync-{account_id[:8]}", daemon=True).start()


_HISTORY = "history_threads"  # ctx.memo key: account id -> the thread reading its history


def start_history(ctx: Context, account_id: UUID) -> threading.Thread | None:
    """Read the account's day-one metric history in a background thread, once.

    Whether it runs is decided in the store (``MetricsService.first_history`` claims
    the account), so a second call, a restart or another replica does nothing."""
    from snoozeql.services.metrics import MetricsService

    def run() -> None:
        try:
            MetricsService(ctx).first_history(account_id)
        except Exception:  # noqa: BLE001 - a background thread must not die loudly
            log.exception("day-one metric history of account %s failed", account_id)

    with _LOCK:
        threads: dict[UUID, threading.Thread] = ctx.memo.setdefault(_HISTORY, {})
        running = threads.get(account_id)
        if running is not None and running.is_alive():
            return None
        thread = threading.Thread(target=run, name=f"history-{str(account_id)[:8]}",
                                  daemon=True)
        threads[account_id] = thread
    thread.start()
    return thread


def wait_for_history(ctx: Context, timeout: float = 60.0) -> None:
    """Wait for this process's history reads to end (the CLI before it exits; tests)."""
    with _LOCK:
        threads = list(ctx.memo.get(_HISTORY, {}).values())
    for thread in threads:
        thread.join(timeout)
