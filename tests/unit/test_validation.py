"""Instants from users (CLI flags, query strings, JSON bodies): one parser, clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.validation import iso_instant

PLUS_ONE = timezone(timedelta(hours=1))


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-23T19:30:00+01:00", datetime(2026, 11, 23, 19, 30, tzinfo=PLUS_ONE)),
    (" 2026-11-23T18:30:00Z ", datetime(2026, 11, 23, 18, 30, tzinfo=UTC)),
    ("2026-11-23T18:30:00.250000+00:00", datetime(2026, 11, 23, 18, 30, 0, 250000, tzinfo=UTC)),
])
def test_instants_with_an_offset(text: str, expected: datetime) -> None:
    assert iso_instant(text, "at") == expected
    assert iso_instant(text, "at", naive_is_utc=True) == expected


def test_an_instant_without_offset_is_refused_unless_utc_is_the_documented_default() -> None:
    with pytest.raises(ValidationError, match=r"^at: 2026-11-23T19:30:00 needs a UTC offset"):
        iso_instant("2026-11-23T19:30", "at")
    with pytest.raises(ValidationError, match="needs a UTC offset"):
        iso_instant(datetime(2026, 11, 23, 19, 30), "at")
    assert iso_instant("2026-11-23", "since", naive_is_utc=True) == datetime(
        2026, 11, 23, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "", "19:30+01:00x"])
def test_not_an_instant_names_the_field_and_shows_an_example(text: str) -> None:
    with pytest.raises(ValidationError, match=r"^until: .* is not an ISO 8601 date or time"):
        iso_instant(text, "until", naive_is_utc=True)
