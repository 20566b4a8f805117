"""services/steward/risk.py: the risk rule, as a table."""

from __future__ import annotations

import pytest

from contracts.stewardship import RiskLevel
from services.steward.risk import RiskRule, Window

LOW, MEDIUM, HIGH = RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH


@pytest.mark.parametrize(
    ("window", "level"),
    [
        (Window(), LOW),
        (Window(decisions=20), LOW),
        (Window(decisions=20, escalated=3), LOW),  # 15 % escalated: below 20 %
        (Window(decisions=20, escalated=4), MEDIUM),  # 20 %
        (Window(decisions=20, blocked=1), MEDIUM),
        (Window(decisions=20, critical=1), MEDIUM),
        (Window(decisions=20, open_escalations=1), LOW),
        (Window(decisions=20, open_escalations=2), MEDIUM),
        (Window(decisions=20, critical=2), HIGH),
        (Window(decisions=20, blocked=5), MEDIUM),  # 25 %: below 30 %
        (Window(decisions=20, blocked=6), HIGH),  # 30 %
        (Window(decisions=3, blocked=3), HIGH),
        (Window(decisions=2, blocked=2), MEDIUM),  # fewer than 3 blocked is never high by blocks
        (Window(decisions=20, open_escalations=5), HIGH),
    ],
)
def test_the_rule_gives_each_window_its_level(window, level):
    """The thresholds of the README's rule, one row each."""
    assert RiskRule().assess(window).level is level


def test_low_has_no_reasons_and_higher_levels_say_every_reason():
    """Reasons name what tipped the level, in words a person reads."""
    assert RiskRule().assess(Window(decisions=5)).reasons == []
    risk = RiskRule().assess(Window(decisions=10, critical=2, blocked=4, open_escalations=5))
    assert risk.level is HIGH
    assert risk.reasons == [
        "2 of the last 10 decisions had a critical finding",
        "4 of the last 10 decisions were blocked",
        "5 escalations are open",
    ]


def test_one_block_reads_in_the_singular():
    """`1 of the last 1 decision was blocked`."""
    assert RiskRule().assess(Window(decisions=1, blocked=1)).reasons == ["1 of the last 1 decision was blocked"]
