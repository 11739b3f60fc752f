"""Claims on periodic jobs.

A replica runs a job only after :func:`claim` succeeds: a single conditional UPDATE
that is atomic on SQLite and PostgreSQL alike, so two replicas never both win.
A claim is a lease: if its holder dies, the job becomes claimable after ``lease``. The
holder's heartbeat (``services/leases.py``) renews it with :func:`renew` while the job
runs, so a lease can be short (no longer than the job's interval) without a slow run
losing it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from snoozeql.store.schema import metadata
from snoozeql.store.types import UTCDateTime

# Periodic jobs: one row per job; a replica runs a job only after claiming its row
# with a conditional UPDATE, so several replicas never run the same job twice.
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("next_run_at", UTCDateTime, nullable=False),
    sa.Column("locked_by", sa.String(128)),
    sa.Column("locked_until", UTCDateTime),
    sa.Column("last_started_at", UTCDateTime),
    sa.Column("last_finished_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
)



def ensure(conn: sa.Connection, name: str, first_run_at: datetime) -> None:
    exists = conn.execute(sa.select(jobs.c.name).where(jobs.c.name == name)).first()
    if not exists:
        try:
            with conn.begin_nested():
                conn.execute(jobs.insert().values(name=name, next_run_at=first_run_at))
        except sa.exc.IntegrityError:
            pass  # another replica registered it first


def last_run_failed(conn: sa.Connection, name: str) -> bool:
    """Whether the job's last run failed or was abandoned (its holder died holding it):
    the next run of it is then a retry. Read before :func:`claim`."""
    row = conn.execute(
        sa.select(jobs.c.last_error, jobs.c.locked_by).where(jobs.c.name == name)
    ).first()
    return row is not None and (row.last_error is not None or row.locked_by is not None)


def claim(conn: sa.Connection, name: str, owner: str, now: datetime, lease: timedelta) -> bool:
    res = conn.execute(
        jobs.update()
        .where(
            jobs.c.name == name,
            jobs.c.next_run_at <= now,
            sa.or_(jobs.c.locked_until.is_(None), jobs.c.locked_until < now),
        )
        .values(locked_by=owner, locked_until=now + lease, last_started_at=now)
    )
    return res.rowcount == 1


def renew(conn: sa.Connection, name: str, owner: str, until: datetime) -> bool:
    """Extend ``owner``'s lease on a running job; False if it no longer holds it."""
    res = conn.execute(
        jobs.update()
        .where(jobs.c.name == name, jobs.c.locked_by == owner)
        .values(locked_until=until)
    )
    return res.rowcount == 1


def finish(
    conn: sa.Connection, name: str, owner: str, now: datetime, next_run_at: datetime,
    error: str | None,
) -> bool:
    """Release the job and set its next run; False if ``owner`` no longer held it."""
    return conn.execute(
        jobs.update()
        .where(jobs.c.name == name, jobs.c.locked_by == owner)
        .values(
            locked_by=None, locked_until=None, last_finished_at=now, next_run_at=next_run_at,
            last_error=error,
        )
    ).rowcount == 1
