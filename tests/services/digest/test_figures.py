"""services/digest/figures.py: a window's digest from known outcomes, dead letters and alerts, with no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.digests import digest_event_id
from services.digest.figures import Window, digest_of
from tests.services.digest.samples import outcome, review

END = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
WINDOW = Window.ending(END, 24 * 3600)

OUTCOMES = [
    outcome("rel-1", "approved", review("security", cost=0.01, tokens=1000), review("compliance")),
    outcome(
        "rel-2",
        "blocked",
        review("security", "SEC001", "SEC001", "SEC004", cost=0.02, tokens=2000, severity="critical"),
        review("compliance", "CMP002", severity="medium"),
    ),
    outcome("rel-3", "escalated", review("security", "SEC004"), fallbacks={"compliance": "escalate"}),
    outcome("rel-4", "escalated", review("security", "SEC001", severity="critical")),
    # rel-4's next revision was approved: no longer escalated
    outcome("rel-4", "approved", review("security", cost=0.005, tokens=500), digest="d2"),
]


def test_the_digest_counts_outcomes_findings_escalations_dead_letters_alerts_and_spend():
    """From five outcomes, three dead letters and three alerts: outcomes by kind, rules by the
    releases they fired on (once per release however often), the releases still escalated, the
    rounds closed by fallback, dead letters by service, alerts by kind, and spend per reviewer."""
    digest = digest_of(
        WINDOW,
        OUTCOMES,
        ["coordinator", "security", "coordinator"],
        ["reviewer_down", "dead_letters", "reviewer_down"],
        top=2,
        schedule="digest",
    )

    assert digest.releases == 5
    assert digest.outcomes == {"approved": 2, "blocked": 1, "escalated": 2}
    assert [(f.rule, f.releases, f.severity) for f in digest.top_findings] == [
        ("SEC001", 2, "critical"),
        ("SEC004", 2, "critical"),
    ]
    assert digest.escalated == ["rel-3"] and digest.escalated_total == 1
    assert digest.fallback_rounds == 1
    assert digest.dead_letters == {"coordinator": 2, "security": 1} and digest.dead_letters_total == 3
    assert digest.alerts == {"reviewer_down": 2, "dead_letters": 1} and digest.alerts_total == 3
    assert [(c.agent, c.reviews, c.tokens, c.cost_usd) for c in digest.costs] == [
        ("security", 5, 3500, 0.035),
        ("compliance", 2, 0, 0.0),
    ]
    assert digest.cost_usd == 0.035 and digest.tokens == 3500
    assert (digest.window_start, digest.window_end, digest.schedule) == (WINDOW.start, END, "digest")


def test_the_same_window_and_inputs_give_the_same_digest():
    """Event id and time come from the window: a redelivered tick makes the identical message."""
    first = digest_of(WINDOW, OUTCOMES, ["a"], [])
    again = digest_of(WINDOW, OUTCOMES, ["a"], [])

    assert first == again
    assert first.event_id == digest_event_id(WINDOW.start, END) and first.occurred_at == END


def test_an_empty_window_is_a_digest_of_zeros():
    """No outcomes, dead letters or alerts: every kind at zero, nothing listed."""
    digest = digest_of(WINDOW, [], [], [])

    assert digest.outcomes == {"approved": 0, "blocked": 0, "escalated": 0}
    assert (digest.releases, digest.escalated, digest.top_findings, digest.costs) == (0, [], [], [])
    assert digest.dead_letters == {} and digest.alerts == {}
