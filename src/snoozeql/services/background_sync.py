"""Account syncs started from a request and run in the background, with their progress.

The dashboard starts a sync and polls its row; the progress lines live in the process
(``ctx.memo``), one per account, until the sync ends. A second start of an account
already syncing in this process does nothing.
"""

from __future__ import annotations

import threading

from snoozeql.services.context import Context
from snoozeql.services.discovery import DiscoveryService

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
