"""Outcomes and dead letters as the mesh writes them, for the digest's and the watch's tests."""

from __future__ import annotations

from contracts.deadletters import DeadLetter
from contracts.outcomes import Outcome, RoundDecided
from contracts.reviews import Finding, ReviewSubmitted, Severity, TokenUsage, Verdict


def review(reviewer: str, *rules: str, cost: float = 0.0, tokens: int = 0, severity: str = "high") -> ReviewSubmitted:
    """`reviewer`'s review finding `rules` (each once), having spent `tokens` and `cost`."""
    return ReviewSubmitted(
        release_id="x",
        reviewer=reviewer,
        verdict=Verdict.REJECT if rules else Verdict.APPROVE,
        confidence=0.9,
        rationale="r",
        findings=[Finding(rule=rule, severity=Severity(severity), message="m", file="a.py", line=1) for rule in rules],
        model="claude-sonnet-4-6" if cost else "offline-rules",
        tokens=TokenUsage(input_tokens=tokens),
        cost_usd=cost,
    )


def outcome(
    release_id: str,
    kind: str = "approved",
    *reviews: ReviewSubmitted,
    digest: str = "d1",
    fallbacks: dict[str, str] | None = None,
) -> RoundDecided:
    return RoundDecided(
        release_id=release_id,
        content_digest=digest,
        outcome=Outcome(kind),
        reason="because",
        policy="all",
        reviews=list(reviews),
        fallbacks_applied=fallbacks or {},
    )


def dead_letter(service: str, seq: int = 1) -> DeadLetter:
    return DeadLetter(
        subject="mesh.events.release.proposed",
        payload="{",
        error="bad json",
        error_type="invalid",
        service=service,
        stream="MESH_EVENTS",
        stream_seq=seq,
        consumer=service,
    )
