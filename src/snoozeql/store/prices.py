"""Cache of prices fetched from provider price APIs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from snoozeql.store.schema import metadata
from snoozeql.store.types import UTCDateTime

# Prices learnt from a provider's price API, so each lookup costs one call per
# (provider, class, engine, region, deployment) and survives restarts.
price_cache = sa.Table(
    "price_cache",
    metadata,
    sa.Column("provider", sa.String(16), primary_key=True),
    sa.Column("instance_class", sa.String(64), primary_key=True),
    sa.Column("engine", sa.String(64), primary_key=True),
    sa.Column("region", sa.String(64), primary_key=True),
    sa.Column("deployment", sa.String(16), primary_key=True),
    # NULL means "asked, and the price list has no such product".
    sa.Column("usd_per_hour", sa.Numeric(14, 6)),
    sa.Column("fetched_at", UTCDateTime, nullable=False),
)


_KEY = ("provider", "instance_class", "engine", "region", "deployment")


def get(
    conn: sa.Connection, key: tuple[str, str, str, str, str]
) -> tuple[Decimal | None, datetime] | None:
    """(price or None when the API has no such product, fetched_at), or None if unknown."""
    r = conn.execute(
        sa.select(price_cache.c.usd_per_hour, price_cache.c.fetched_at).where(
            *(getattr(price_cache.c, c) == v for c, v in zip(_KEY, key, strict=True))
        )
    ).first()
    return (r.usd_per_hour, r.fetched_at) if r else None


def put(
    conn: sa.Connection, key: tuple[str, str, str, str, str], usd: Decimal | None, now: datetime
) -> None:
    where = [getattr(price_cache.c, c) == v for c, v in zip(_KEY, key, strict=True)]
    updated = conn.execute(
        price_cache.update().where(*where).values(usd_per_hour=usd, fetched_at=now)
    )
    if updated.rowcount == 0:
        try:
            with conn.begin_nested():
                conn.execute(price_cache.insert().values(**dict(zip(_KEY, key, strict=True)),
                                               usd_per_hour=usd, fetched_at=now))
        except sa.exc.IntegrityError:
            pass  # another replica cached it at the same moment
