"""Cache of prices fetched from provider price APIs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from snoozeql.store.tables import price_cache as t

_KEY = ("provider", "instance_class", "engine", "region", "deployment")


def get(
    conn: sa.Connection, key: tuple[str, str, str, str, str]
) -> tuple[Decimal | None, datetime] | None:
    """(price or None when the API has no such product, fetched_at), or None if unknown."""
    r = conn.execute(
        sa.select(t.c.usd_per_hour, t.c.fetched_at).where(
            *(getattr(t.c, c) == v for c, v in zip(_KEY, key, strict=True))
        )
    ).first()
    return (r.usd_per_hour, r.fetched_at) if r else None


def put(
    conn: sa.Connection, key: tuple[str, str, str, str, str], usd: Decimal | None, now: datetime
) -> None:
    where = [getattr(t.c, c) == v for c, v in zip(_KEY, key, strict=True)]
    updated = conn.execute(t.update().where(*where).values(usd_per_hour=usd, fetched_at=now))
    if updated.rowcount == 0:
        try:
            with conn.begin_nested():
                conn.execute(t.insert().values(**dict(zip(_KEY, key, strict=True)),
                                               usd_per_hour=usd, fetched_at=now))
        except sa.exc.IntegrityError:
            pass  # another replica cached it at the same moment
