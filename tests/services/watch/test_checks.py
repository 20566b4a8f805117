"""services/watch/checks.py: what the watch concludes from what it saw, with no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.alerts import AlertKind, AlertSeverity
from services.watch.checks import Limits, Observation, alerts_for

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
LIMITS = Limits(dead_letters=(1, 10), escalations=(3, 10), fallbacks=(1, 5))


def seen(**what) -> Observation:
    return Observation(at=NOW, window_seconds=3600, **what)


def test_a_calm_mesh_raises_nothing():
    """No dead letters, escalations, fallbacks or reviewers down: no alert."""
    assert alerts_for(seen(), LIMITS, check_id="check:1") == []


@pytest.mark.parametrize(
    ("observation", "kind", "severity"),
    [
        (seen(new_dead_letters={"coordinator": 1}), AlertKind.DEAD_LETTERS, AlertSeverity.WARNING),
        (seen(new_dead_letters={"coordinator": 7, "security": 3}), AlertKind.DEAD_LETTERS, AlertSeverity.CRITICAL),
        (seen(escalated=["a", "b", "c"]), AlertKind.ESCALATION_BACKLOG, AlertSeverity.WARNING),
        (seen(escalated=[f"r{i}" for i in range(10)]), AlertKind.ESCALATION_BACKLOG, AlertSeverity.CRITICAL),
        (seen(fallbacks={"compliance": 1}, fallback_rounds=1), AlertKind.FALLBACK_ROUNDS, AlertSeverity.WARNING),
        (seen(fallbacks={"compliance": 5}, fallback_rounds=5), AlertKind.FALLBACK_ROUNDS, AlertSeverity.CRITICAL),
        (seen(reviewers_down=["privacy"]), AlertKind.REVIEWER_DOWN, AlertSeverity.WARNING),
        (
            seen(reviewers_down=["privacy", "security"], required_down=["security"]),
            AlertKind.REVIEWER_DOWN,
            AlertSeverity.CRITICAL,
        ),
    ],
    ids=[
        "one-dead-letter",
        "ten-dead-letters",
        "three-escalations",
        "ten-escalations",
        "one-fallback",
        "five-fallbacks",
        "discovered-reviewer-down",
        "required-reviewer-down",
    ],
)
def test_each_problem_is_one_alert_of_its_kind_and_severity(observation, kind, severity):
    """At the warning threshold a warning, at the critical one critical; one alert, of that kind."""
    (alert,) = alerts_for(observation, LIMITS, check_id="check:1")

    assert (alert.kind, alert.severity) == (kind, severity)
    assert alert.check_id == "check:1" and alert.producer == "watch" and alert.occurred_at == NOW
    assert alert.detail and alert.counts["total" if "total" in alert.counts else "escalated"] > 0


def test_below_the_warning_threshold_is_calm():
    """Two escalations under a threshold of three raise nothing."""
    assert alerts_for(seen(escalated=["a", "b"]), LIMITS, check_id="c") == []


def test_the_figures_behind_each_alert_travel_with_it_critical_first():
    """Dead letters by service (and the last sequence counted), the reviewers down, most severe first."""
    observation = seen(
        new_dead_letters={"coordinator": 2, "gateway": 1},
        dead_letter_seq=118,
        reviewers_down=["security"],
        required_down=["security"],
    )

    down, dead = alerts_for(observation, LIMITS, check_id="watch:check:7")

    assert down.kind is AlertKind.REVIEWER_DOWN and down.severity is AlertSeverity.CRITICAL
    assert "security" in down.detail and "required by policy" in down.detail
    assert dead.counts == {"coordinator": 2, "gateway": 1, "total": 3} and dead.dead_letter_seq == 118
    assert "coordinator 2, gateway 1" in dead.detail and "mesh dlq list" in dead.detail


def test_an_unreadable_registry_calls_nobody_down():
    """When the registry could not be read, reviewers are not reported down (unknown is not down)."""
    assert alerts_for(seen(reviewers_down=["security"], registry_known=False), LIMITS, check_id="c") == []
