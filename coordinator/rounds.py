"""A round: one release under review, as stored in the rounds KV bucket.

The round is the coordinator's whole memory. Every change is a pure function of the stored
round and one incoming message, written back with compare-and-set on the KV revision, so a
crash, a redelivery or a second coordinator replica can never apply a message twice or
publish two outcomes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from contracts.envelope import utc_now
from contracts.outcomes import RoundDecided
from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted, TokenUsage
from coordinator.policy import Decision, Policy, decide


class RoundState(StrEnum):
    AWAITING_PROPOSAL = "awaiting_proposal"  # a review arrived before its proposal
    OPEN = "open"
    DECIDED = "decided"


class Round(BaseModel):
    release_id: str
    state: RoundState = RoundState.AWAITING_PROPOSAL
    proposal_event_id: str | None = None
    expected: list[str] = Field(default_factory=list)
    policy: str = "all"
    fallbacks: dict[str, str] = Field(default_factory=dict)
    opened_at: datetime | None = None
    deadline: datetime | None = None
    reviews: dict[str, ReviewSubmitted] = Field(default_factory=dict)
    late_reviews: list[ReviewSubmitted] = Field(default_factory=list)
    outcome: RoundDecided | None = None
    outcome_published: bool = False
    # Who publishes the outcome: the message (`STREAM:seq`) whose handling decided the round.
    publisher: str | None = None
    publisher_since: datetime | None = None

    # --- transitions: each returns True when the round changed -------------------------

    def open(
        self,
        proposal: ReleaseProposed,
        *,
        expected: list[str],
        policy: Policy,
        fallbacks: dict[str, str],
        deadline_seconds: float,
        now: datetime,
    ) -> bool:
        """Open the round for a proposal; a duplicate proposal changes nothing."""
        if self.state != RoundState.AWAITING_PROPOSAL:
            return False
        self.state = RoundState.OPEN
        self.proposal_event_id = proposal.event_id
        self.expected = list(expected)
        self.policy = str(policy)
        self.fallbacks = {name: fallbacks.get(name, "escalate") for name in expected}
        self.opened_at = now
        self.deadline = now + timedelta(seconds=deadline_seconds)
        self.settle(now=now)
        return True

    def record(self, review: ReviewSubmitted, *, now: datetime) -> bool:
        """Count a review; a reviewer's second review (a duplicate) changes nothing."""
        if review.reviewer in self.reviews or any(r.reviewer == review.reviewer for r in self.late_reviews):
            return False
        if self.state == RoundState.DECIDED:
            self.late_reviews.append(review)  # kept for the record, never counted
            return True
        self.reviews[review.reviewer] = review
        if self.state == RoundState.OPEN:
            self.settle(now=now)
        return True

    def expire(self, *, now: datetime) -> bool:
        """The deadline passed: apply fallbacks for whoever is missing and decide."""
        if self.state != RoundState.OPEN:
            return False
        self.settle(now=now, deadline_passed=True)
        return True

    def claim_outcome(self, claimant: str, *, now: datetime, lease: timedelta) -> bool:
        """Make `claimant` the one that publishes the outcome; False when someone else is.

        The claim goes to the first to ask (the message that decided the round), stays with it
        (its redelivery after a crash asks again), and passes to another only once it is older
        than `lease`: its holder died and its message will not come back (dead-lettered).
        """
        if self.outcome is None or self.outcome_published:
            return False
        held_by_other = self.publisher not in (None, claimant)
        if held_by_other and self.publisher_since is not None and now - self.publisher_since < lease:
            return False
        self.publisher, self.publisher_since = claimant, now
        return True

    def mark_published(self) -> bool:
        if self.outcome is None or self.outcome_published:
            return False
        self.outcome_published = True
        return True

    # --- decision ---------------------------------------------------------------------

    def settle(self, *, now: datetime, deadline_passed: bool = False) -> None:
        decision = decide(
            policy=Policy.parse(self.policy),
            expected=self.expected,
            verdicts={name: review.verdict for name, review in self.reviews.items()},
            fallbacks=self.fallbacks,
            deadline_passed=deadline_passed,
            finding_counts={name: len(review.findings) for name, review in self.reviews.items()},
        )
        if decision is not None:
            self._conclude(decision, now=now)

    def _conclude(self, decision: Decision, *, now: datetime) -> None:
        self.state = RoundState.DECIDED
        counted = [self.reviews[name] for name in self.expected if name in self.reviews]
        self.outcome = RoundDecided(
            event_id=f"outcome-{self.release_id}",
            correlation_id=self.release_id,
            causation_id=self.proposal_event_id,
            producer="coordinator",
            occurred_at=now,
            release_id=self.release_id,
            outcome=decision.outcome,
            reason=decision.reason,
            policy=self.policy,
            reviews=counted,
            missing=decision.missing,
            fallbacks_applied=decision.fallbacks_applied,
            expected=self.expected,
            opened_at=self.opened_at,
            deadline=self.deadline,
            tokens=sum((review.tokens for review in counted), TokenUsage()),
            cost_usd=round(sum(review.cost_usd for review in counted), 8),
        )


def new_round(release_id: str) -> Round:
    return Round(release_id=release_id)


__all__ = ["Round", "RoundState", "new_round", "utc_now"]
