"""contracts/deadlines.py: a round deadline's moment as the server schedules it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from contracts.deadlines import rfc3339_ceil


def test_a_moment_is_written_in_utc_milliseconds_rounded_up():
    """A deadline may fire a little late, never early: a part of a millisecond counts as a whole one."""
    assert rfc3339_ceil(datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)) == "2025-01-02T03:04:05.678Z"
    assert rfc3339_ceil(datetime(2025, 1, 2, 3, 4, 5, 678001, tzinfo=UTC)) == "2025-01-02T03:04:05.679Z"
    assert rfc3339_ceil(datetime(2025, 1, 2, 3, 4, 59, 999500, tzinfo=UTC)) == "2025-01-02T03:05:00.000Z"


def test_another_zone_is_written_in_utc():
    """The same instant in another zone is the same string."""
    assert (
        rfc3339_ceil(datetime(2025, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))) == "2025-01-02T03:04:05.000Z"
    )
