"""Leases and the heartbeat that keeps them while their work runs.

Everything a replica does that another replica must not do at the same time is held
under a lease in the store: a periodic job (``jobs.locked_until``), a reconciler claim
on (instance, transition) (``reconcile_claims.lease_until``) and an action's intent in
the log (``actions.lease_until``). A lease is short, so that the work of a replica that
died (kill -9, a lost VM) is taken over soon after; while the holder lives, this
module's :class:`LeaseKeeper` (one daemon thread per process, running only while
something is held) renews each held lease several times per lease period, so a slow
run never loses its lease to another replica.

Lease lengths:

* a job: ``min(half the job's interval, SNOOZEQL_LEASE_SECONDS)``; a replica that dies
  while it runs a job is taken over within one lease plus one poll, so the survivor's
  run starts within about half an interval and has the rest of two to finish;
* a claim and an intent: half the reconciler's job lease
  (:func:`action_lease`), so they have run out by the time a surviving replica has
  taken over the reconcile job, and that run finishes the transition.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from snoozeql.config import Settings
from snoozeql.store import actions as action_store
from snoozeql.store import jobs as job_store
from snoozeql.store import schedules as schedule_store

if TYPE_CHECKING:
    import sqlalchemy as sa

    from snoozeql.services.context import Context

log = logging.getLogger(__name__)

__all__ = ["LeaseKeeper", "action_lease", "job_lease", "keeper", "new_owner"]

#: Renewals per lease period: a holder misses its lease only if its heartbeat stalls
#: for most of a period.
RENEWALS_PER_LEASE = 6


def new_owner() -> str:
    """A holder name that says which process holds a lease: host:pid:random."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def job_lease(settings: Settings, interval: timedelta) -> timedelta:
    """A job's lease: half its interval, at most SNOOZEQL_LEASE_SECONDS."""
    return min(interval / 2, timedelta(seconds=settings.lease_seconds))


def action_lease(settings: Settings) -> timedelta:
    """The lease of a reconciler claim and of an action's intent in the log."""
    return job_lease(settings, timedelta(seconds=settings.reconcile_interval_seconds)) / 2


@dataclass(frozen=True)
class _Held:
    what: str
    lease: timedelta
    renew: Callable[[sa.Connection, datetime], bool]


class LeaseKeeper:
    """Renews the leases this process holds, from a background thread."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._held: dict[int, _Held] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next = 0

    # ----------------------------------------------------------- what can be held

    def job(self, name: str, owner: str, lease: timedelta) -> _Held:
        return _Held(f"job {name}", lease,
                     lambda conn, until: job_store.renew(conn, name, owner, until))

    def claim(self, instance_id: UUID, kind: str, at: datetime, owner: str,
              lease: timedelta) -> _Held:
        return _Held(
            f"claim {kind} {instance_id} {at.isoformat()}", lease,
            lambda conn, until: schedule_store.renew_claim(conn, instance_id, kind, at,
                                                           owner=owner, until=until),
        )

    def claims(self, keys: list[tuple[UUID, str, datetime]], owner: str, lease: timedelta
               ) -> _Held:
        """A chunk of claims, renewed together (a few statements, not one per claim)."""
        return _Held(
            f"{len(keys)} claims", lease,
            lambda conn, until: schedule_store.renew_claims(conn, keys, owner=owner,
                                                            until=until),
        )

    def intent(self, action_id: UUID, lease: timedelta) -> _Held:
        return _Held(f"intent {action_id}", lease,
                     lambda conn, until: action_store.renew(conn, action_id, until))

    # ----------------------------------------------------------- holding

    @contextmanager
    def hold(self, *items: _Held) -> Iterator[None]:
        """Keep ``items`` renewed until the block ends (however it ends)."""
        with self._lock:
            shortest = min((h.lease for h in self._held.values()), default=None)
            tokens = []
            for item in items:
                self._next += 1
                self._held[self._next] = item
                tokens.append(self._next)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="snoozeql-leases",
                                                daemon=True)
                self._thread.start()
            elif items and shortest is not None and min(i.lease for i in items) < shortest:
                self._wake.set()  # the shorter lease needs an earlier renewal
        try:
            yield
        finally:
            with self._lock:
                for token in tokens:
                    self._held.pop(token, None)

    def renew_all(self) -> int:
        """Renew every held lease now; returns how many are still held."""
        with self._lock:
            items = list(self._held.items())
        kept = 0
        now = self.ctx.now()
        for token, item in items:
            try:
                with self.ctx.engine.begin() as conn:
                    ok = item.renew(conn, now + item.lease)
            except Exception:  # noqa: BLE001 - e.g. the store briefly unreachable
                log.exception("could not renew the lease on %s", item.what)
                continue
            if ok:
                kept += 1
            elif token in self._held:  # finished just now, or taken over (said at the end)
                log.debug("the lease on %s is no longer held", item.what)
        return kept

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._held:
                    self._thread = None
                    return
                period = min(h.lease for h in self._held.values()) / RENEWALS_PER_LEASE
            self._wake.wait(max(period.total_seconds(), 0.05))
            self._wake.clear()
            self.renew_all()


_KEEPERS_LOCK = threading.Lock()


def keeper(ctx: Context) -> LeaseKeeper:
    """The process's keeper for this context (made on first use)."""
    with _KEEPERS_LOCK:
        if ctx.lease_keeper is None:
            ctx.lease_keeper = LeaseKeeper(ctx)
        return ctx.lease_keeper  # type: ignore[no-any-return]
