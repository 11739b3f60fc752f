"""Picking a deleted stack by its deletion time: matched at the precision written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from snoozeql.domain.errors import ValidationError
from snoozeql.services.stacks import _same_time

STORED = datetime(2026, 12, 2, 4, 17, 5, 123456, tzinfo=UTC)


@pytest.mark.parametrize(("given", "same"), [
    ("2026-12-02", True),
    ("2026-12-01", False),
    ("2026-12-02T04:17", True),
    ("2026-12-02 04:17", True),
    ("2026-12-02T04:18", False),
    ("2026-12-02T04:17:05", True),
    ("2026-12-02T04:17:05Z", True),
    ("2026-12-02T04:17:05+00:00", True),
    ("2026-12-02T04:17:06", False),
    ("2026-12-02T04:17:05.123456", True),
    ("2026-12-02T04:17:05.123457", False),
    ("2026-12-02 04:17 UTC", True),
])
def test_matches_at_the_precision_written(given: str, same: bool) -> None:
    assert _same_time(STORED, given) is same


def test_a_datetime_matches_to_the_microsecond() -> None:
    assert _same_time(STORED, STORED)
    assert not _same_time(STORED, STORED.replace(microsecond=0))


def test_not_a_time_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="not a time; write it like"):
        _same_time(STORED, "yesterday")
