"""A round: one revision of a release under review, as stored in the rounds KV bucket.

The round is the coordinator's whole memory. Every change is a pure function of the stored
round and one incoming message, written back with compare-and-set on the KV revision, so a
crash, a redelivery or a second coordinator replica can never apply a message twice or
publish two outcomes.

A round the reviewers escalate waits for a person when approvers are configured
(`AWAITING_APPROVAL`; its transitions in coordinator/awaiting.py): a decision, or the approval deadline's
fallback, then decides it, and its one outcome is published as for any other round.

A round belongs to a *revision*: a release id plus the digest of what is proposed. Only a
review that fits it counts — from an expected reviewer, about this revision, answering one of
its proposals (`causation_id`). Everything else is recorded as rejected, with a reason, and
decides nothing. A round's size is bounded: one review per expected reviewer, a few early
reviews per known reviewer, and a capped list of rejections.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field, PrivateAttr

from contracts.envelope import utc_now
from contracts.outcomes import Fallback, Outcome, RejectedReview, RoundDecided
from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted, Severity, TokenUsage, Verdict
from coordinator.approvals import Approval, ApprovalRules
from coordinator.approvals import Verdict as DecisionVerdict
from coordinator.awaiting import AwaitingApproval
from coordinator.policy import Decision, Policy, decide
from coordinator.states import RoundDecision, RoundState

# Bounds on what a round keeps besides its counted reviews (one KV value holds it all).
MAX_EARLY_PER_REVIEWER = 2  # reviews that came before the proposal, per known reviewer
MAX_REJECTED = 20  # rejected reviews listed; beyond that only counted
MAX_PROPOSAL_IDS = 8
COMPACT_FINDINGS = 5  # findings a review keeps once its round has grown large (see `compact`)
COMPACT_RATIONALE_CHARS = 500
_SEVERITIES = list(
    Severity
)  # most severe first  # event ids of proposals of this revision (a resend after the dedupe window)

_STRICTNESS = {Verdict.APPROVE: 0, Verdict.NEEDS_HUMAN: 1, Verdict.REJECT: 2}
_OTHER_PROPOSAL = "it answers no proposal of this round (its causation_id is not one of their event ids)"


class Round(AwaitingApproval, BaseModel):
    release_id: str
    content_digest: str = ""
    state: RoundState = RoundState.AWAITING_PROPOSAL
    # What a person deciding an escalation sees of the release, and what picks its approvers.
    service: str = ""
    version: str = ""
    title: str = ""
    labels: list[str] = Field(default_factory=list)
    approval_rules: ApprovalRules | None = None  # as configured when it opened; None: escalations are final
    escalation: RoundDecision | None = None  # what the reviewers concluded when they asked for a person
    approval: Approval | None = None
    proposal_event_id: str | None = None
    proposal_event_ids: list[str] = Field(default_factory=list)
    expected: list[str] = Field(default_factory=list)
    required: list[str] = Field(default_factory=list)
    policy: str = "all"
    fallbacks: dict[str, str] = Field(default_factory=dict)
    opened_at: datetime | None = None
    deadline: datetime | None = None
    reviews: dict[str, ReviewSubmitted] = Field(default_factory=dict)
    early_reviews: dict[str, list[ReviewSubmitted]] = Field(default_factory=dict)
    # When the server stored the opening proposal, and each review kept before it opened: a
    # review stored before the proposal existed cannot be an answer to it (it was forged).
    proposal_stored_at: datetime | None = None
    review_stored_at: dict[str, datetime] = Field(default_factory=dict)  # review event id -> when
    late_reviews: list[ReviewSubmitted] = Field(default_factory=list)
    # The event id of each review counted, in the order counted (a stricter second review is
    # appended too): what the gateway streams, numbered by position, so a watcher can resume exactly.
    counted_order: list[str] = Field(default_factory=list)
    rejected: list[RejectedReview] = Field(default_factory=list)
    rejected_overflow: int = 0
    decision: RoundDecision | None = None
    outcome_published: bool = False
    # Who publishes the outcome: the message (`STREAM:seq`) whose handling decided the round.
    publisher: str | None = None
    publisher_since: datetime | None = None
    # What the last transition did, in words, for the log line (never stored).
    _note: str = PrivateAttr(default="")
    # What the last decision by a person came to (never stored; the approval keeps it).
    _verdict: DecisionVerdict | None = PrivateAttr(default=None)

    @property
    def verdict(self) -> DecisionVerdict | None:
        return self._verdict

    @property
    def note(self) -> str:
        return self._note

    @property
    def outcome(self) -> RoundDecided | None:
        """The outcome message, built from the decision (the reviews are stored once)."""
        if self.decision is None:
            return None
        counted = [self.reviews[name] for name in self.expected if name in self.reviews]
        return RoundDecided(
            event_id=f"outcome-{self.release_id}-{self.content_digest[:16]}",
            correlation_id=self.release_id,
            causation_id=self.proposal_event_id,
            producer="coordinator",
            occurred_at=self.decision.decided_at,
            release_id=self.release_id,
            content_digest=self.content_digest,
            outcome=self.decision.outcome,
            reason=self.decision.reason,
            policy=self.policy,
            reviews=counted,
            missing=self.decision.missing,
            fallbacks_applied=self.decision.fallbacks_applied,
            expected=self.expected,
            required=self.required,
            rejected=self.rejected,
            opened_at=self.opened_at,
            deadline=self.deadline,
            tokens=sum((review.tokens for review in counted), TokenUsage()),
            cost_usd=round(sum(review.cost_usd for review in counted), 8),
            decided_by=self.decision.decided_by,
            human_decisions=self.approval.decisions if self.approval else [],
            approval=self.approval.record() if self.approval else None,
        )

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
        required: list[str] = (),
        stored_at: datetime | None = None,
        approvals: ApprovalRules | None = None,
    ) -> bool:
        """Open the round for a proposal; the same proposal again changes nothing.

        Reviews that came before the proposal count now if they fit it; the rest are rejected.
        """
        if self.state != RoundState.AWAITING_PROPOSAL:
            if proposal.event_id in self.proposal_event_ids or len(self.proposal_event_ids) >= MAX_PROPOSAL_IDS:
                self._note = "duplicate proposal ignored"
                return False
            # The same content proposed again (after the dedupe window): its reviews fit too.
            self.proposal_event_ids.append(proposal.event_id)
            self._note = "the same revision proposed again; its reviews count for this round"
            if self.state == RoundState.OPEN:
                self._apply_early()
                self.settle(now=now)
            return True
        self.state = RoundState.OPEN
        self.service, self.version, self.title = proposal.service, proposal.version, proposal.title[:300]
        self.labels = [label[:100] for label in proposal.labels[:50]]
        self.approval_rules = approvals
        self.proposal_event_id = proposal.event_id
        self.proposal_event_ids = [proposal.event_id]
        self.expected = list(expected)
        self.required = [name for name in required if name in expected]
        self.policy = str(policy)
        self.fallbacks = {name: fallbacks.get(name, Fallback.ESCALATE.value) for name in expected}
        self.opened_at = now
        self.proposal_stored_at = stored_at
        self.deadline = now + timedelta(seconds=deadline_seconds)
        self._apply_early()
        # Of those that still do not fit, only an expected reviewer's may yet: it may answer the
        # same content proposed again. The others were not written for this round.
        for name, kept in list(self.early_reviews.items()):
            for review in list(kept):
                problem = self._misfit(review) or ""
                if name not in self.expected or problem != _OTHER_PROPOSAL:
                    self._reject(review, problem)
                    self.review_stored_at.pop(review.event_id, None)
                    kept.remove(review)
            if not kept:
                del self.early_reviews[name]
        self._note = "round opened"
        self.settle(now=now)
        return True

    def record(
        self,
        review: ReviewSubmitted,
        *,
        now: datetime,
        known: frozenset[str] | set[str] = frozenset(),
        stored_at: datetime | None = None,
    ) -> bool:
        """Count a review that fits this round; keep an early one; reject the rest, with a reason.

        `known` names the reviewers that may hold a place in a round that has no proposal yet
        (required, pinned or live): nobody else can grow it. `stored_at` is when the server
        stored the review (its stream timestamp).
        """
        if self.state == RoundState.AWAITING_PROPOSAL:
            return self._keep_early(review, known, stored_at)
        if problem := self._misfit(review, stored_at):
            if self.state == RoundState.OPEN and problem == _OTHER_PROPOSAL and review.reviewer in self.expected:
                # Maybe the proposal it answers (the same content, sent again) is still on its way.
                return self._keep_early(review, set(self.expected), stored_at)
            return self._reject(review, problem)
        if self.state in (RoundState.DECIDED, RoundState.AWAITING_APPROVAL):  # the reviewers are done
            if review.reviewer in self.reviews or any(r.reviewer == review.reviewer for r in self.late_reviews):
                self._note = "duplicate review ignored"
                return False
            self.late_reviews.append(review)  # kept for the record, never counted
            self._note = "late review recorded; outcome unchanged"
            return True
        counted = self.reviews.get(review.reviewer)
        if counted is not None and counted.event_id == review.event_id:
            self._note = "duplicate review ignored"
            return False
        if counted is not None and _STRICTNESS[review.verdict] <= _STRICTNESS[counted.verdict]:
            self._note = f"a second review from {review.reviewer} ignored: not stricter than its first"
            return False
        self._count(review)
        self._note = "review counted" if counted is None else f"a stricter second review from {review.reviewer} counted"
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
        if self.decision is None or self.outcome_published:
            return False
        held_by_other = self.publisher not in (None, claimant)
        if held_by_other and self.publisher_since is not None and now - self.publisher_since < lease:
            return False
        self.publisher, self.publisher_since = claimant, now
        return True

    def mark_published(self) -> bool:
        if self.decision is None or self.outcome_published:
            return False
        self.outcome_published = True
        return True

    # --- what counts ------------------------------------------------------------------

    def _misfit(self, review: ReviewSubmitted, stored_at: datetime | None = None) -> str | None:
        """Why `review` cannot count in this (opened) round, or None when it fits."""
        stored_at = stored_at or self.review_stored_at.get(review.event_id)
        if stored_at and self.proposal_stored_at and stored_at < self.proposal_stored_at:
            return "it was published before the proposal it claims to answer"
        if review.release_id != self.release_id or review.content_digest != self.content_digest:
            return "it reviews another revision of the release"
        if review.reviewer not in self.expected:
            return f"{review.reviewer} is not expected by this round"
        if review.causation_id not in self.proposal_event_ids:
            return _OTHER_PROPOSAL
        return None

    def _apply_early(self) -> None:
        """Count the early reviews that now fit; the rest keep waiting."""
        waiting: dict[str, list[ReviewSubmitted]] = {}
        for review in (review for kept in self.early_reviews.values() for review in kept):
            if self._misfit(review) is None:
                self._count(review)
                self.review_stored_at.pop(review.event_id, None)
            else:
                waiting.setdefault(review.reviewer, []).append(review)
        self.early_reviews = waiting

    def _keep_early(
        self, review: ReviewSubmitted, known: frozenset[str] | set[str], stored_at: datetime | None = None
    ) -> bool:
        if review.reviewer not in known:
            self._note = (
                f"rejected: {review.reviewer} is not a reviewer of this mesh, and the round has no proposal yet"
            )
            return False
        kept = self.early_reviews.setdefault(review.reviewer, [])
        if any(r.event_id == review.event_id for r in kept):
            self._note = "duplicate review ignored"
            return False
        if len(kept) >= MAX_EARLY_PER_REVIEWER:
            self._note = f"rejected: {review.reviewer} already has {len(kept)} reviews waiting for this proposal"
            return False
        kept.append(review)
        if stored_at is not None:
            self.review_stored_at[review.event_id] = stored_at
        self._note = "review kept until its proposal arrives"
        return True

    def _count(self, review: ReviewSubmitted) -> None:
        """Count a fitting review; of two from the same reviewer the stricter stands (fail closed)."""
        counted = self.reviews.get(review.reviewer)
        if counted is None or _STRICTNESS[review.verdict] > _STRICTNESS[counted.verdict]:
            self.reviews[review.reviewer] = review
            self.counted_order.append(review.event_id)

    def _reject(self, review: ReviewSubmitted, reason: str) -> bool:
        self._note = f"review rejected: {reason}"
        if any(r.event_id == review.event_id for r in self.rejected):
            return False
        if len(self.rejected) >= MAX_REJECTED:
            self.rejected_overflow += 1
        else:
            self.rejected.append(
                RejectedReview(reviewer=review.reviewer[:100], event_id=review.event_id[:100], reason=reason[:300])
            )
        return True

    # --- decision ---------------------------------------------------------------------

    def compact(self) -> bool:
        """Trim every stored review to its verdict, a short rationale and its most severe
        findings (the rest counted in `findings_omitted`); True when anything was cut.

        What decides a round — who reviewed, and each verdict — is kept whole.
        """
        changed = False

        def trimmed(review: ReviewSubmitted) -> ReviewSubmitted:
            nonlocal changed
            if len(review.findings) <= COMPACT_FINDINGS and len(review.rationale) <= COMPACT_RATIONALE_CHARS:
                return review
            changed = True
            kept = sorted(review.findings, key=lambda f: _SEVERITIES.index(f.severity))[:COMPACT_FINDINGS]
            return review.model_copy(
                update={
                    "findings": kept,
                    "findings_omitted": review.findings_omitted + len(review.findings) - len(kept),
                    "rationale": review.rationale[:COMPACT_RATIONALE_CHARS],
                }
            )

        self.reviews = {name: trimmed(review) for name, review in self.reviews.items()}
        self.early_reviews = {name: [trimmed(r) for r in kept] for name, kept in self.early_reviews.items()}
        self.late_reviews = [trimmed(review) for review in self.late_reviews]
        return changed

    def settle(self, *, now: datetime, deadline_passed: bool = False) -> None:
        decision = decide(
            policy=Policy.parse(self.policy),
            expected=self.expected,
            verdicts={name: review.verdict for name, review in self.reviews.items()},
            fallbacks=self.fallbacks,
            deadline_passed=deadline_passed,
            finding_counts={
                name: len(review.findings) + review.findings_omitted for name, review in self.reviews.items()
            },
        )
        if decision is not None and decision.outcome == Outcome.APPROVED:
            decision = self._required_consent(decision, deadline_passed=deadline_passed)
        if decision is not None:
            self._conclude(decision, now=now)

    def _required_consent(self, approval: Decision, *, deadline_passed: bool) -> Decision | None:
        """An approval stands only with every required reviewer's consent, whatever the policy:
        under `majority` or `quorum:K` discovered reviewers (anyone who can write a card) could
        otherwise outvote security. A required reject blocks; a required reviewer still pending
        keeps the round open until the deadline, then its fallback decides (block blocks,
        escalate escalates, approve_with_warning consents)."""
        rejected = [n for n in self.required if n in self.reviews and self.reviews[n].verdict == Verdict.REJECT]
        unsure = [n for n in self.required if n in self.reviews and self.reviews[n].verdict == Verdict.NEEDS_HUMAN]
        pending = [n for n in self.required if n not in self.reviews]
        if pending and not deadline_passed and not rejected:
            return None
        blocked_by = rejected + [n for n in pending if self.fallbacks.get(n) == Fallback.BLOCK.value]
        escalated_by = unsure + [n for n in pending if self.fallbacks.get(n) == Fallback.ESCALATE.value]
        if blocked_by:
            why = (
                f"Blocked: {', '.join(blocked_by)} (required) did not consent; under policy {self.policy} "
                + approval.reason
            )
            return Decision(
                Outcome.BLOCKED, why, missing=approval.missing, fallbacks_applied=approval.fallbacks_applied
            )
        if escalated_by:
            why = (
                f"Escalated: {', '.join(escalated_by)} (required) asked for a human; under policy {self.policy} "
                + approval.reason
            )
            return Decision(
                Outcome.ESCALATED, why, missing=approval.missing, fallbacks_applied=approval.fallbacks_applied
            )
        return approval

    def _conclude(self, decision: Decision, *, now: datetime) -> None:
        if decision.outcome == Outcome.ESCALATED and self.approval_rules is not None:
            why_not = self._await_person(decision, now=now)
            if why_not is None:
                return
            decision = Decision(
                decision.outcome, f"{decision.reason} {why_not}", decision.missing, decision.fallbacks_applied
            )
        self.state = RoundState.DECIDED
        self.decision = RoundDecision(
            outcome=decision.outcome,
            reason=decision.reason,
            missing=decision.missing,
            fallbacks_applied=decision.fallbacks_applied,
            decided_at=now,
        )


def new_round(release_id: str, content_digest: str = "") -> Round:
    return Round(release_id=release_id, content_digest=content_digest)


__all__ = ["Round", "RoundDecision", "RoundState", "new_round", "utc_now"]
