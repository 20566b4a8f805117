"""Tiny factories for the steward's tests: proposals, reviews and outcomes, and where they sit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bus.stateful import Position
from contracts.outcomes import Outcome, RoundDecided
from contracts.releases import ReleaseProposed
from contracts.reviews import Finding, ReviewSubmitted, Severity, Verdict

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(stream: str, seq: int) -> Position:
    """Where an event sits: `seq` in `stream`, stored `seq` seconds after T0."""
    return Position(stream, seq, T0 + timedelta(seconds=seq))


def proposal(release: str, service: str = "payments-api") -> ReleaseProposed:
    return ReleaseProposed(release_id=release, service=service, version="1.0.0", occurred_at=T0)


def finding(rule: str, severity: str = "high") -> Finding:
    return Finding(rule=rule, severity=Severity(severity), message="found")


def review(release: str, *rules: str, reviewer: str = "security", cost: float = 0.0, critical: bool = False):
    findings = [finding(rule, "critical" if critical else "high") for rule in rules]
    return ReviewSubmitted(
        release_id=release,
        reviewer=reviewer,
        verdict=Verdict.REJECT if findings else Verdict.APPROVE,
        confidence=0.9,
        rationale="why",
        findings=findings,
        model="offline-rules",
        cost_usd=cost,
        content_digest="d" * 64,
    )


def outcome(
    release: str, result: str = "approved", *rules: str, critical: bool = False, digest: str = "d" * 64, seq: int = 0
) -> RoundDecided:
    reviews = [review(release, *rules, critical=critical)] if rules else []
    return RoundDecided(
        event_id=f"outcome-{release}-{digest[:8]}",  # the same event each time it is built
        release_id=release,
        content_digest=digest,
        outcome=Outcome(result),
        reason=f"{result} by policy",
        policy="all",
        reviews=reviews,
        cost_usd=0.01,
        occurred_at=T0 + timedelta(seconds=seq),
    )
