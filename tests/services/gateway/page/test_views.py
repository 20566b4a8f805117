"""What the page works out of an approval, without I/O: time left, findings by file, the tally."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.approvals import ApprovalFinding
from services.gateway.page.views import NO_FILE, as_datetime, by_file, tally, time_left, when

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("left", "says"),
    [
        (timedelta(days=1, hours=2, minutes=5), "1 d 2 h left"),
        (timedelta(hours=23, minutes=59, seconds=59), "23 h 59 min left"),
        (timedelta(minutes=5, seconds=59), "5 min left"),
        (timedelta(seconds=59), "under a minute left"),
        (timedelta(0), "deadline passed"),
        (timedelta(minutes=-3), "deadline passed"),
    ],
)
def test_time_left_rounds_down_and_never_goes_negative(left, says):
    assert time_left(NOW + left, NOW) == says


def test_a_deadline_may_come_as_iso_text_and_naive_means_utc():
    """The core may hand over text; a naive moment is read as UTC."""
    assert time_left("2026-11-27T12:30:00+00:00", NOW) == "2 h 30 min left"
    assert as_datetime("2026-11-27T12:30:00") == datetime(2026, 11, 27, 12, 30, tzinfo=UTC)
    assert time_left(None, NOW) == "no deadline"
    assert when("2026-11-27T12:30:00+01:00") == "2026-11-27 11:30 UTC"


def finding(path, line, severity="low", rule="R1"):
    return ApprovalFinding(reviewer="security", rule=rule, severity=severity, path=path, line=line, message="m")


def test_findings_are_grouped_by_file_in_name_order_then_by_line_worst_first():
    """Files by name, the findings tied to no file last; in a file by line, and on one line the
    worst first."""
    groups = by_file(
        [
            finding("b.py", 9),
            finding(None, None, "info"),
            finding("a.py", 3, "low", "L"),
            finding("b.py", 2),
            finding("a.py", 3, "critical", "C"),
            finding("a.py", None, "medium", "whole"),
        ]
    )
    assert [g.path for g in groups] == ["a.py", "b.py", NO_FILE]
    assert [f.rule for f in groups[0].findings] == ["whole", "C", "L"]
    assert [f.line for f in groups[1].findings] == [2, 9]


def test_the_tally_names_severities_worst_first():
    assert tally([finding("a", 1, "low"), finding("a", 2, "critical"), finding("a", 3, "low")]) == "1 critical, 2 low"
    assert tally([]) == "no findings"
    assert tally([finding("a", 1, "odd")]) == "1 odd"
