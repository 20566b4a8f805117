"""bus/scheduling/cron.py: schedule expressions checked, and their next firing found, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bus.scheduling.cron import Cron, ScheduleSyntaxError, every_text, next_every, parse_every, zone

BERLIN = ZoneInfo("Europe/Berlin")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "tz", "after", "expected"),
    [
        ("0 0 9 * * *", BERLIN, "2026-11-27T10:00:00", "2026-11-28T08:00:00"),  # 09:00 CET is 08:00 UTC
        ("0 0 9 * * *", BERLIN, "2026-07-01T06:59:59", "2026-07-01T07:00:00"),  # 09:00 CEST is 07:00 UTC
        ("0 0 9 * * *", None, "2026-11-27T09:00:00", "2026-11-28T09:00:00"),  # strictly after
        ("*/15 * * * * *", None, "2026-11-27T12:00:07", "2026-11-27T12:00:15"),
        ("@hourly", None, "2026-11-27T12:30:00", "2026-11-27T13:00:00"),
        ("@daily", None, "2026-12-31T23:59:59", "2027-01-01T00:00:00"),
        ("0 0 0 1,15 * mon", None, "2026-11-27T00:00:00", "2026-11-30T00:00:00"),  # day or weekday: Monday first
        ("0 0 0 * * mon-fri", None, "2026-11-27T12:00:00", "2026-11-30T00:00:00"),  # Friday noon: next is Monday
        ("0 0 12 * jan,jul sun", None, "2026-11-27T00:00:00", "2027-01-03T12:00:00"),
        ("30 5-10/5 * * * ?", None, "2026-11-27T12:05:30", "2026-11-27T12:10:30"),
        ("0 30 2 * * *", BERLIN, "2026-03-28T12:00:00", "2026-03-30T00:30:00"),  # 02:30 skipped on 29 March
        ("0 30 2 * * *", BERLIN, "2026-10-24T12:00:00", "2026-10-25T00:30:00"),  # 02:30 twice: the first
        ("0 30 2 * * *", BERLIN, "2026-10-25T00:30:00", "2026-10-26T01:30:00"),  # ... and only once
    ],
)
def test_the_next_firing_is_the_first_match_strictly_after(spec, tz, after, expected):
    """A cron expression fires at the first matching local second after the given moment, in UTC."""
    assert Cron.parse(spec).next_after(utc(after), tz) == utc(expected)


def test_a_date_that_never_comes_has_no_next_firing():
    """30 February never comes: no next firing, rather than a loop."""
    assert Cron.parse("0 0 0 30 2 *").next_after(utc("2026-11-27T00:00:00")) is None


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("* * * * *", "has 5 field(s); NATS takes 6"),
        ("61 * * * * *", "second field '61' is outside 0-59"),
        ("0 0 25 * * *", "hour field '25' is outside 0-23"),
        ("0 0 0 * foo *", "month field 'foo' is not a number"),
        ("0 0 0 * * 7", "day of week field '7' is outside 0-6"),
        ("0 0 0 5-1 * *", "day of month field '5-1' is outside 1-31"),
        ("*/0 * * * * *", "second field '*/0' is outside 0-59"),
    ],
)
def test_a_bad_cron_expression_says_which_field_is_wrong(spec, says):
    """The error names the field and what it may hold."""
    with pytest.raises(ScheduleSyntaxError) as error:
        Cron.parse(spec)
    assert says in str(error.value)


@pytest.mark.parametrize(
    ("text", "seconds", "shown"),
    [("1s", 1, "1s"), ("90s", 90, "1m30s"), ("6h", 21600, "6h"), ("1h30m", 5400, "1h30m"), (" 2M ", 120, "2m")],
)
def test_intervals_read_like_the_servers(text, seconds, shown):
    """`@every` intervals: whole seconds in h/m/s, written back in the server's form."""
    delta = parse_every(text)
    assert delta == timedelta(seconds=seconds)
    assert every_text(delta) == shown


@pytest.mark.parametrize("text", ["500ms", "0s", "1.5s", "soon", "", "1d"])
def test_an_interval_below_a_second_or_unreadable_is_refused(text):
    """The server takes no interval below 1 s; days are not a Go duration unit."""
    with pytest.raises(ScheduleSyntaxError):
        parse_every(text)


def test_a_time_zone_must_be_an_iana_name():
    """`Europe/Berlin` is a zone; `CEST` and `Mars/Olympus` are not."""
    assert zone("Europe/Berlin") == BERLIN
    assert zone(None) is None
    for bad in ("Mars/Olympus", "../etc/passwd"):
        with pytest.raises(ScheduleSyntaxError, match="IANA"):
            zone(bad)


def test_an_interval_schedule_next_firing_steps_from_its_anchor():
    """From an anchor, the next firing after now is a whole number of intervals on."""
    anchor = utc("2026-11-27T12:00:00")
    assert next_every(anchor, timedelta(seconds=10), utc("2026-11-27T12:00:35")) == utc("2026-11-27T12:00:40")
    assert next_every(anchor, timedelta(seconds=10), utc("2026-11-27T11:00:00")) == anchor
