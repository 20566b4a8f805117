"""services/watch/cadence.py: the offline rule for the next check — sooner when something is
wrong, backing off while calm — with no I/O and no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.alerts import AlertKind, AlertSeverity, MeshAlert
from services.watch.cadence import RULE, Bounds, next_check

BOUNDS = Bounds(min=timedelta(seconds=30), max=timedelta(hours=6))


def alert(severity: str, kind: str = "dead_letters") -> MeshAlert:
    return MeshAlert(
        kind=AlertKind(kind), severity=AlertSeverity(severity), detail="d", occurred_at=datetime(2026, 1, 1, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("alerts", "calm_for", "expected"),
    [
        ([alert("critical", "reviewer_down"), alert("warning")], timedelta(0), timedelta(seconds=30)),
        ([alert("warning", "fallback_rounds")], timedelta(0), timedelta(seconds=60)),
        ([], timedelta(seconds=5), timedelta(seconds=30)),  # just calm: no sooner than min
        ([], timedelta(minutes=3), timedelta(minutes=3)),
        ([], timedelta(hours=1), timedelta(hours=1)),
        ([], timedelta(days=3), timedelta(hours=6)),  # long calm: no later than max
    ],
    ids=["critical", "warning", "calm-briefly", "calm-3-min", "calm-1-h", "calm-3-days"],
)
def test_the_next_check_comes_sooner_when_wrong_and_later_while_calm(alerts, calm_for, expected):
    """Critical: min; a warning: twice min; calm: as long as it has been calm, within [min, max]."""
    proposal = next_check(alerts, calm_for=calm_for, bounds=BOUNDS)

    assert proposal.after == expected and proposal.by == RULE


def test_while_calm_the_pause_doubles_check_after_check():
    """Calm since the first check: each pause is as long as the calm before it, so it doubles."""
    pauses, calm = [], timedelta(seconds=30)
    for _ in range(6):
        pause = next_check([], calm_for=calm, bounds=BOUNDS).after
        pauses.append(int(pause.total_seconds()))
        calm += pause

    assert pauses == [30, 60, 120, 240, 480, 960]


def test_the_reason_says_what_was_found():
    """Reasons name the critical kinds, the warnings, or how long it has been calm."""
    assert next_check([alert("critical", "reviewer_down")], calm_for=timedelta(0), bounds=BOUNDS).reason == (
        "critical: reviewer_down; looking again as soon as allowed"
    )
    assert next_check([alert("warning")], calm_for=timedelta(0), bounds=BOUNDS).reason == (
        "warning: dead_letters; looking again soon"
    )
    assert next_check([], calm_for=timedelta(minutes=90), bounds=BOUNDS).reason == (
        "calm for 1 h 30 min; backing off to 1 h 30 min"
    )
