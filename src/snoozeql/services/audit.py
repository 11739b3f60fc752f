"""The audit trail: who changed which object, when, from what to what.

Audit entries are rows of the append-only action log (``actions``) with an
``object_kind``; a service writes one with :func:`record` on the *same connection*
as the change, so either both are committed or neither is. ``before`` and ``after`` are
the object's JSON form, passed through :func:`redact` first: secrets never reach the
log, whatever a caller hands in.

Redaction rule (written down because it is a promise): a value is replaced by ``***``
when its key is named like a secret (contains password, passwd, secret, token,
credential, private, or is ``key``/ends in ``_key``/``-key``/``apikey``); in a
name/value pair (``{"key": "DB_PASSWORD", "value": ...}``, the shape of env vars and
tags) the value is redacted when the name is named like a secret or the pair says
``"secret": true``. Booleans and nulls are kept (``"secret": true`` is no secret).
"""

from __future__ import annotations

import builtins
import csv
import io
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.validation import iso_instant
from snoozeql.services.context import Context
from snoozeql.store import actions as action_log
from snoozeql.store.actions import ActionRecord

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = [
    "ACTIONS", "CSV_COLUMNS", "KINDS", "REDACTED", "AuditService", "record", "redact",
]

REDACTED = "***"
KINDS = (
    "account", "schedule", "assignment", "override", "apikey", "stack", "stack_instance",
    "stack_override", "recommendation",
)
ACTIONS = ("create", "update", "delete", "restore", "assign", "unassign", "revoke", "dismiss")

_SECRET_WORDS = re.compile(r"password|passwd|secret|token|credential|private|apikey",
                           re.IGNORECASE)
_KEYISH = re.compile(r"(^|[_\-.])key$", re.IGNORECASE)
# Keys that end in "key" but name no secret: they hold identifiers we want to keep.
_NOT_SECRET = {"tag_key", "key_regex", "object_kind"}
_PAIR_NAMES = ("key", "name")


def _secret_name(name: str) -> bool:
    if name.lower() in _NOT_SECRET:
        return False
    return bool(_SECRET_WORDS.search(name) or _KEYISH.search(name))


def redact(value: Any) -> Any:
    """A deep copy of ``value`` (JSON-like) with every secret replaced by ``***``."""
    if isinstance(value, Mapping):
        pair_name = next((value[k] for k in _PAIR_NAMES
                          if isinstance(value.get(k), str) and "value" in value), None)
        secret_pair = pair_name is not None and (
            _secret_name(pair_name) or value.get("secret") is True)
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = str(k)
            if v is None or isinstance(v, bool):
                out[name] = v
            elif name == "value" and secret_pair:
                out[name] = REDACTED
            elif pair_name is not None and name in _PAIR_NAMES:
                out[name] = v  # the name of a name/value pair is not itself a secret
            elif _secret_name(name):
                out[name] = REDACTED
            else:
                out[name] = redact(v)
        return out
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str | int | float) or value is None:
        return value
    return str(value)


def record(
    conn: sa.Connection,
    *,
    at: datetime,
    actor: str,
    action: str,
    kind: str,
    object_id: object | None,
    name: str | None,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
) -> None:
    """Append one audit entry on ``conn`` (inside the caller's transaction)."""
    label = f"{kind} {name}" if name else kind
    action_log.append(
        conn, at=at, finished_at=at, actor=actor or "cli", action=action,
        reason=(reason or f"{action} {label}")[:255], result="ok",
        object_kind=kind, object_id=None if object_id is None else str(object_id)[:64],
        object_name=None if name is None else name[:255],
        before=None if before is None else redact(before),
        after=None if after is None else redact(after),
    )


# --------------------------------------------------------------------------- reading

CSV_COLUMNS = ("at", "actor", "action", "object_kind", "object_name", "object_id", "reason",
               "before", "after")


def _when(value: datetime | str | None, what: str) -> datetime | None:
    # Documented: a time without a zone is UTC.
    return None if value in (None, "") else iso_instant(value, what, naive_is_utc=True)


class AuditService:
    """Filtered reads of the audit trail, as records or CSV."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def list(
        self, *, kind: str | None = None, obj: str | None = None, actor: str | None = None,
        since: datetime | str | None = None, until: datetime | str | None = None,
        limit: int = 1000,
    ) -> builtins.list[ActionRecord]:
        if kind is not None and kind not in KINDS:
            raise ValidationError(f"kind: {kind!r}; use one of {', '.join(KINDS)}")
        if not 1 <= limit <= 10000:
            raise ValidationError("limit: must be between 1 and 10000")
        s, u = _when(since, "since"), _when(until, "until")
        if s and u and u <= s:
            raise ValidationError("until: must be after since")
        with self.ctx.engine.connect() as conn:
            return action_log.list_audit(conn, kind=kind, obj=obj, actor=actor, since=s,
                                         until=u, limit=limit)

    @staticmethod
    def to_csv(records: builtins.list[ActionRecord]) -> str:
        """A header row, then one row per entry; before/after as compact JSON."""
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\n")
        out.writerow(CSV_COLUMNS)
        for r in records:
            out.writerow([
                r.at.isoformat(), r.actor, r.action, r.object_kind or "", r.object_name or "",
                r.object_id or "", r.reason,
                "" if r.before is None else json.dumps(r.before, sort_keys=True),
                "" if r.after is None else json.dumps(r.after, sort_keys=True),
            ])
        return buf.getvalue()
