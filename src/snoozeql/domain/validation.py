"""Input rules shared by several services: names, regions, URLs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlparse

from snoozeql.domain.errors import ValidationError

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_AWS_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_GCP_PROJECT = re.compile(r"^(?:[a-z][a-z0-9.:-]{4,61}[a-z0-9])$")


def suggest_dns_label(value: str) -> str:
    s = re.sub(r"[^a-z0-9-]+", "-", value.strip().lower()).strip("-")
    s = re.sub(r"-{2,}", "-", s)[:63].strip("-")
    return s or "db1"


def dns_label(value: str, what: str = "name") -> str:
    """A DNS label: lower-case letters, digits and hyphens, 1-63, no leading/trailing '-'."""
    if not _DNS_LABEL.match(value or ""):
        hint = suggest_dns_label(value or "")
        raise ValidationError(
            f"{what} {value!r} is not valid: use 1-63 lower-case letters, digits and "
            f"hyphens, starting and ending with a letter or digit (for example {hint!r})"
        )
    return value


def aws_region(value: str) -> str:
    if not _AWS_REGION.match(value):
        raise ValidationError(f"{value!r} is not an AWS region name (for example us-east-1)")
    return value


def role_arn(value: str) -> str:
    if not _ROLE_ARN.match(value):
        raise ValidationError(
            f"{value!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
        )
    return value


def gcp_project(value: str) -> str:
    if not _GCP_PROJECT.match(value):
        raise ValidationError(f"{value!r} is not a GCP project id")
    return value


def http_url(value: str, what: str) -> str:
    u = urlparse(value)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ValidationError(f"{what} {value!r} must be an http:// or https:// URL")
    if u.username or u.password:
        raise ValidationError(f"{what} must not contain credentials")
    return value.rstrip("/")


def split_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    out: list[str] = []
    for item in items:
        item = item.strip()
        if item and item not in out:
            out.append(item)
    return out


def iso_instant(value: datetime | str, what: str, *, naive_is_utc: bool = False) -> datetime:
    """An ISO 8601 date or time (``Z`` accepted) as an aware datetime.

    Without a UTC offset it is UTC when ``naive_is_utc``, else refused: where an hour
    off would matter (schedules, money) the caller asks for the offset.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                f"{what}: {value!r} is not an ISO 8601 date or time such as "
                "2026-11-23T19:30:00+01:00"
            ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        if not naive_is_utc:
            raise ValidationError(
                f"{what}: {value.isoformat()} needs a UTC offset (e.g. +01:00, Z)"
            )
        value = value.replace(tzinfo=UTC)
    return value


#: The shortest id prefix accepted as an instance reference (what tables print).
MIN_ID_PREFIX = 8
_HEX = re.compile(r"^[0-9a-f]+$")


def id_prefix(ref: str) -> str | None:
    """``ref`` as the start of an id (lower-case hex, dashes dropped), or None when it
    cannot be one: fewer than :data:`MIN_ID_PREFIX` hex digits, or other characters."""
    text = ref.strip().lower()
    digits = text.replace("-", "")
    if len(digits) < MIN_ID_PREFIX or len(digits) > 32 or not _HEX.match(digits):
        return None
    if text.startswith("-") or "--" in text:
        return None
    return digits
