"""bus/scheduling/clamp.py: a self-scheduled agent's next run stays within [min_interval, max_interval]."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bus.scheduling.clamp import clamp_next_run
from contracts.schedules import NextRun

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LOW, HIGH = timedelta(seconds=30), timedelta(hours=6)


@pytest.mark.parametrize(
    ("proposal", "used", "clamped"),
    [
        (NextRun(after=timedelta(seconds=1)), NOW + LOW, "min"),
        (NextRun(after=timedelta(days=10)), NOW + HIGH, "max"),
        (NextRun(after=timedelta(minutes=5)), NOW + timedelta(minutes=5), None),
        (NextRun(after=LOW), NOW + LOW, None),  # the bounds themselves are allowed
        (NextRun(after=HIGH), NOW + HIGH, None),
        (NextRun(at=NOW - timedelta(hours=1)), NOW + LOW, "min"),  # a time in the past
        (NextRun(at=NOW + timedelta(hours=1)), NOW + timedelta(hours=1), None),
        (NextRun(at=datetime(2026, 11, 27, 13, 0)), NOW + timedelta(hours=1), None),  # no zone: UTC
        (NextRun(after=-timedelta(minutes=1)), NOW + LOW, "min"),
    ],
)
def test_a_proposal_is_clamped_to_the_interval_after_now(proposal, used, clamped):
    """What the handler proposes is used when within the bounds, else the nearer bound (recorded)."""
    decision = clamp_next_run(proposal, now=NOW, min_interval=LOW, max_interval=HIGH)
    assert decision.used == used
    assert decision.clamped == clamped
    assert decision.proposed is not None


def test_the_clamp_is_explained_in_one_line():
    """The note says what was proposed, what is used and why."""
    decision = clamp_next_run(
        NextRun(after=timedelta(days=10), reason="calm"), now=NOW, min_interval=LOW, max_interval=HIGH
    )
    assert decision.note == "proposed in 10 days, 0:00:00, later than max_interval (6:00:00): clamped to 6:00:00"
    assert decision.reason == "calm"
    soon = clamp_next_run(NextRun(after=timedelta(seconds=1)), now=NOW, min_interval=LOW, max_interval=HIGH)
    assert soon.note == "proposed in 0:00:01, sooner than min_interval (0:00:30): clamped to 0:00:30"


@pytest.mark.parametrize("proposal", [None, NextRun(), NextRun(reason="nothing to say")])
def test_no_proposal_waits_the_longest_allowed(proposal):
    """A handler with no preference backs off fully: the next run comes after max_interval."""
    decision = clamp_next_run(proposal, now=NOW, min_interval=LOW, max_interval=HIGH)
    assert decision.used == NOW + HIGH
    assert decision.proposed is None and decision.clamped is None
    assert "no proposal" in decision.note


def test_a_proposal_gives_a_time_or_a_delay_not_both():
    """`NextRun(at=..., after=...)` is refused: which one would win is not obvious."""
    with pytest.raises(ValueError, match="either `at` or `after`"):
        NextRun(at=NOW, after=timedelta(seconds=5))
