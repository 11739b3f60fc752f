"""Outside databases: registered by hand, measured by pushed metrics, never controlled.

A database SnoozeQL cannot discover or reach (another cloud, a managed service without
an API we drive, a server in a data centre) is registered with a name, an engine and
optionally an hourly cost and tags. It is then an inventory instance of provider
``external``: its metrics come through the push API, and it gets activity analysis,
sleep recommendations and savings like any other. Start and stop are refused with the
reason (:data:`REFUSAL`), because nothing here can carry them out.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from snoozeql.domain.errors import ActionRefused, ConflictError, ValidationError
from snoozeql.domain.types import Instance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.domain.validation import dns_label
from snoozeql.services.context import Context
from snoozeql.store import instances as instance_store
from snoozeql.store.instances import InstanceFilter

__all__ = ["REFUSAL", "ExternalInstanceService", "parse_tags", "refuse_action"]

REFUSAL = (
    "{name} is an external database (registered by hand, provider 'external'): SnoozeQL "
    "cannot {action} it; {action} it where it runs, and push its metrics to keep the "
    "recommendations current"
)


def refuse_action(instance: Instance, action: str) -> None:
    """Raise ActionRefused for a lifecycle action on an external instance."""
    if instance.provider is ProviderKind.EXTERNAL:
        raise ActionRefused(REFUSAL.format(name=instance.name, action=action))


def parse_tags(items: list[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``k=v`` strings (or a mapping) as tags; a clear error for a malformed one."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ValidationError(f"tag {item!r}: use key=value")
            pairs.append((key, value))
    tags: dict[str, str] = {}
    for key, value in pairs:
        if not isinstance(key, str) or not isinstance(value, str) or not key.strip():
            raise ValidationError(f"tag {key!r}: keys and values are text, keys not empty")
        if len(key) > 128 or len(value) > 256:
            raise ValidationError(f"tag {key!r}: key up to 128, value up to 256 characters")
        tags[key.strip()] = value
    return tags


def _engine(value: str) -> str:
    engine = (value or "").strip().lower()
    if not engine or len(engine) > 64 or not all(c.isalnum() or c in "-_." for c in engine):
        raise ValidationError(
            f"engine {value!r}: give the database engine, e.g. postgres, mysql, sqlserver"
        )
    return engine


def _cost(value: float | str | Decimal | None) -> Decimal | None:
    if value is None:
        return None
    try:
        usd = Decimal(str(value))
    except InvalidOperation:
        raise ValidationError(f"hourly cost {value!r} is not a number (USD per hour)") from None
    if not usd.is_finite() or usd < 0 or usd > 100_000:
        raise ValidationError(f"hourly cost {value!r}: USD per hour, from 0 to 100000")
    return (usd * 100).quantize(Decimal("0.0001"))


class ExternalInstanceService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def register(
        self,
        name: str,
        engine: str,
        hourly_cost_usd: float | str | Decimal | None = None,
        tags: list[str] | Mapping[str, str] | None = None,
    ) -> Instance:
        """Add an external database to the inventory; ConflictError if the name is taken
        by another external one. Nothing is written on bad input."""
        label = dns_label(name, "name")
        engine_name = _engine(engine)
        cents = _cost(hourly_cost_usd)
        parsed_tags = parse_tags(tags)
        now = self.ctx.now()
        instance_id = uuid.uuid4()
        with self.ctx.engine.begin() as conn:
            clash = [
                i for i in instance_store.iter_all(
                    conn, InstanceFilter(provider=ProviderKind.EXTERNAL.value)
                ) if i.provider_id == label
            ]
            if clash:
                raise ConflictError(f"an external database named {label!r} is already registered")
            instance_store.add(conn, Instance(
                id=instance_id, account_id=None, provider=ProviderKind.EXTERNAL,
                provider_id=label, kind=InstanceKind.INSTANCE, name=label, engine=engine_name,
                engine_version=None, instance_class=None, region=None,
                status=InstanceStatus.UNKNOWN, raw_status="external: not measured by SnoozeQL",
                tags=parsed_tags, endpoint_host=None, endpoint_port=None, multi_az=False,
                node_count=1, cluster_provider_id=None, hourly_cost_cents=cents,
                first_seen_at=now, last_seen_at=now, missing_since=None,
                extra={"registered": True},
            ))
            found = instance_store.get(conn, instance_id)
        assert found is not None
        return found
