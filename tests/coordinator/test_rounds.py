"""coordinator/rounds.py: a round's transitions, its outcome, and its stored form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.outcomes import Outcome
from contracts.releases import ReleaseProposed
from contracts.reviews import Finding, ReviewSubmitted, Verdict
from coordinator.policy import Policy
from coordinator.rounds import Round, RoundState, new_round

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=30)
EXPECTED = ["security", "compliance"]
FALLBACKS = {"security": "block", "compliance": "escalate"}
KNOWN = frozenset({"security", "compliance", "docs"})  # reviewers the mesh knows, before a round opens


def proposal(release_id: str = "rel-42", **overrides) -> ReleaseProposed:
    fields = {
        "event_id": f"proposal-{release_id}",
        "release_id": release_id,
        "service": "payments-api",
        "version": "2.4.0",
    }
    return ReleaseProposed(**{**fields, **overrides})


def digest(release_id: str = "rel-42") -> str:
    return proposal(release_id).content_digest


def fresh(release_id: str = "rel-42") -> Round:
    """A round of the revision `proposal(release_id)` proposes, before anything happened."""
    return new_round(release_id, digest(release_id))


def review(
    reviewer: str, verdict: str = "approve", *, findings: int = 0, release_id: str = "rel-42", **overrides
) -> ReviewSubmitted:
    """`reviewer`'s review of `proposal(release_id)`: its revision, answering its event id."""
    return ReviewSubmitted(
        **{
            "event_id": f"review-{reviewer}-{verdict}",
            "causation_id": f"proposal-{release_id}",
            "content_digest": digest(release_id),
            "release_id": release_id,
            "reviewer": reviewer,
            "verdict": verdict,
            "confidence": 0.9,
            "rationale": f"{reviewer} says {verdict}.",
            "model": "offline-rules",
            "findings": overrides.pop("findings_list", None)
            or [Finding(rule=f"R{i}", severity="high", message="Something.") for i in range(findings)],
            "occurred_at": NOW,
            **overrides,
        }
    )


def opened(round_: Round | None = None, *, policy: str = "all", expected: list[str] = EXPECTED) -> Round:
    round_ = round_ or fresh()
    round_.open(
        proposal(round_.release_id),
        expected=expected,
        policy=Policy.parse(policy),
        fallbacks={name: FALLBACKS.get(name, "escalate") for name in expected},
        deadline_seconds=60,
        now=NOW,
    )
    return round_


# --- open -------------------------------------------------------------------------------


def test_open_starts_the_round_with_its_reviewers_policy_fallbacks_and_deadline():
    """Opening a round records the proposal, who is expected, the policy, fallbacks and deadline."""
    round_ = fresh()
    assert round_.state == RoundState.AWAITING_PROPOSAL
    changed = round_.open(
        proposal(),
        expected=EXPECTED,
        policy=Policy.parse("quorum:2"),
        fallbacks=FALLBACKS,
        deadline_seconds=90,
        now=NOW,
    )
    assert changed is True
    assert round_.state == RoundState.OPEN
    assert round_.proposal_event_id == "proposal-rel-42"
    assert round_.expected == EXPECTED
    assert round_.policy == "quorum:2"
    assert round_.fallbacks == FALLBACKS
    assert round_.opened_at == NOW
    assert round_.deadline == NOW + timedelta(seconds=90)
    assert round_.outcome is None


def test_open_keeps_only_the_fallbacks_of_expected_reviewers():
    """Fallbacks configured for reviewers the round does not expect are not stored."""
    round_ = fresh()
    round_.open(
        proposal(), expected=["security"], policy=Policy.parse("all"), fallbacks=FALLBACKS, deadline_seconds=60, now=NOW
    )
    assert round_.fallbacks == {"security": "block"}


def test_a_duplicate_open_returns_false_and_changes_nothing():
    """The same proposal again changes nothing, even with other settings."""
    round_ = opened()
    before = round_.model_dump()
    changed = round_.open(
        proposal(),
        expected=["docs"],
        policy=Policy.parse("veto"),
        fallbacks={"docs": "block"},
        deadline_seconds=5,
        now=LATER,
    )
    assert changed is False
    assert round_.model_dump() == before


def test_the_same_content_proposed_again_under_a_new_event_id_only_adds_that_id():
    """A resend of the same content (past the dedupe window, a new event id) is the same
    revision: its reviews may count too, and nothing else about the round changes."""
    round_ = opened()
    before = round_.model_dump()
    changed = round_.open(
        proposal(event_id="another"),
        expected=["docs"],
        policy=Policy.parse("veto"),
        fallbacks={"docs": "block"},
        deadline_seconds=5,
        now=LATER,
    )
    assert changed is True
    assert round_.proposal_event_ids == ["proposal-rel-42", "another"]
    assert round_.model_dump() == {**before, "proposal_event_ids": ["proposal-rel-42", "another"]}
    assert round_.record(review("security", causation_id="another"), now=LATER) is True
    assert "security" in round_.reviews


def test_a_duplicate_open_of_a_decided_round_changes_nothing():
    """A redelivered proposal after the decision neither reopens the round nor touches its outcome."""
    round_ = opened()
    round_.record(review("security", "reject"), now=NOW)
    before = round_.model_dump()
    assert (
        round_.open(
            proposal(),
            expected=EXPECTED,
            policy=Policy.parse("all"),
            fallbacks=FALLBACKS,
            deadline_seconds=60,
            now=LATER,
        )
        is False
    )
    assert round_.model_dump() == before


# --- reviews before the proposal ----------------------------------------------------------


def test_a_review_before_the_proposal_waits_and_is_counted_when_the_round_opens():
    """A review that beats its proposal is kept, then counted when the round opens."""
    round_ = fresh()
    assert round_.record(review("security", "approve"), now=NOW, known=KNOWN) is True
    assert round_.state == RoundState.AWAITING_PROPOSAL
    assert round_.outcome is None
    opened(round_)
    assert round_.state == RoundState.OPEN  # compliance still pending
    round_.record(review("compliance", "approve"), now=LATER)
    assert round_.outcome is not None
    assert [r.reviewer for r in round_.outcome.reviews] == ["security", "compliance"]


def test_reviews_before_the_proposal_can_decide_the_round_as_it_opens():
    """When the early reviews already settle the outcome, opening the round decides it at once."""
    round_ = fresh()
    round_.record(review("security", "reject", findings=2), now=NOW, known=KNOWN)
    opened(round_)
    assert round_.state == RoundState.DECIDED
    assert round_.outcome is not None
    assert round_.outcome.outcome == Outcome.BLOCKED
    assert round_.outcome.missing == ["compliance"]


def test_an_early_review_from_an_unexpected_reviewer_is_not_counted():
    """A review from a known reviewer the round turns out not to expect is kept until the round
    opens, then rejected with the reason, and never counted."""
    round_ = fresh()
    round_.record(review("docs", "reject"), now=NOW, known=KNOWN)
    opened(round_)
    assert [(r.reviewer, r.reason) for r in round_.rejected] == [("docs", "docs is not expected by this round")]
    assert round_.early_reviews == {}
    assert round_.state == RoundState.OPEN
    round_.record(review("security"), now=NOW)
    round_.record(review("compliance"), now=NOW)
    assert round_.outcome is not None
    assert round_.outcome.outcome == Outcome.APPROVED
    assert [r.reviewer for r in round_.outcome.reviews] == ["security", "compliance"]


# --- record -----------------------------------------------------------------------------


def test_a_duplicate_review_changes_nothing():
    """The same review again, or a reviewer's second review that is not stricter than its
    first, returns False and the first one stays counted."""
    round_ = opened(expected=["security", "compliance", "docs"])
    assert round_.record(review("security", "needs_human"), now=NOW) is True
    before = round_.model_dump()
    assert round_.record(review("security", "needs_human"), now=LATER) is False
    assert round_.record(review("security", "approve"), now=LATER) is False
    assert round_.model_dump() == before
    assert round_.reviews["security"].verdict == Verdict.NEEDS_HUMAN


def test_of_two_fitting_reviews_from_one_reviewer_the_stricter_stands():
    """Fail closed: a forged approval that beat the real reject cannot keep it from counting."""
    round_ = opened(expected=["security", "compliance", "docs"])
    round_.record(review("security", "approve"), now=NOW)
    assert round_.record(review("security", "reject"), now=LATER) is True
    assert round_.reviews["security"].verdict == Verdict.REJECT
    assert round_.outcome.outcome == Outcome.BLOCKED


def test_a_duplicate_review_before_the_proposal_changes_nothing():
    """Dedupe also holds while the round is still waiting for its proposal; of two different
    early reviews from one reviewer, the stricter counts when the round opens."""
    round_ = fresh()
    round_.record(review("security", "approve"), now=NOW, known=KNOWN)
    assert round_.record(review("security", "approve"), now=NOW, known=KNOWN) is False
    assert round_.record(review("security", "reject"), now=NOW, known=KNOWN) is True
    opened(round_)
    assert round_.reviews["security"].verdict == Verdict.REJECT


def test_a_review_after_the_decision_is_kept_as_late_and_does_not_change_the_outcome():
    """A late review lands in late_reviews; the outcome is exactly what it was."""
    round_ = opened(policy="veto")
    round_.record(review("security", "reject"), now=NOW)
    assert round_.state == RoundState.DECIDED
    outcome_before = round_.outcome.model_dump()
    assert round_.record(review("compliance", "approve"), now=LATER) is True
    assert [r.reviewer for r in round_.late_reviews] == ["compliance"]
    assert "compliance" not in round_.reviews
    assert round_.outcome.model_dump() == outcome_before
    assert round_.state == RoundState.DECIDED


def test_a_duplicate_late_review_and_a_repeat_from_a_counted_reviewer_change_nothing():
    """After the decision, a reviewer already counted or already late is a duplicate."""
    round_ = opened(policy="veto")
    round_.record(review("security", "reject"), now=NOW)
    round_.record(review("compliance", "approve"), now=LATER)
    before = round_.model_dump()
    assert round_.record(review("compliance", "reject"), now=LATER) is False
    assert round_.record(review("security", "approve"), now=LATER) is False
    assert round_.model_dump() == before


# --- expire -----------------------------------------------------------------------------


def test_expire_decides_with_the_fallbacks_of_missing_reviewers():
    """At the deadline each missing reviewer's fallback votes and is recorded on the outcome."""
    round_ = opened()
    round_.record(review("compliance", "approve"), now=NOW)
    assert round_.expire(now=LATER) is True
    assert round_.state == RoundState.DECIDED
    outcome = round_.outcome
    assert outcome.outcome == Outcome.BLOCKED  # security's fallback is block
    assert outcome.missing == ["security"]
    assert outcome.fallbacks_applied == {"security": "block"}
    assert "security did not answer by the deadline" in outcome.reason
    assert outcome.occurred_at == LATER


def test_expire_is_a_no_op_on_a_decided_round():
    """A deadline that fires after the decision changes nothing."""
    round_ = opened()
    round_.record(review("security", "reject"), now=NOW)
    before = round_.model_dump()
    assert round_.expire(now=LATER) is False
    assert round_.model_dump() == before


def test_expire_is_a_no_op_before_the_proposal():
    """A deadline for a round that never opened changes nothing."""
    round_ = fresh()
    round_.record(review("security"), now=NOW, known=KNOWN)
    before = round_.model_dump()
    assert round_.expire(now=LATER) is False
    assert round_.model_dump() == before


# --- mark_published ---------------------------------------------------------------------


def test_mark_published_succeeds_once_and_only_after_the_decision():
    """An outcome is marked published exactly once; an undecided round cannot be."""
    round_ = opened()
    assert round_.mark_published() is False
    round_.expire(now=LATER)
    assert round_.mark_published() is True
    assert round_.outcome_published is True
    assert round_.mark_published() is False


# --- the outcome ------------------------------------------------------------------------


def test_the_outcome_carries_everything_needed_to_explain_it():
    """RoundDecided holds release, every counted review, missing reviewers, policy, reason and timing."""
    round_ = opened(policy="majority", expected=["security", "compliance", "docs"])
    round_.record(review("docs", "approve"), now=NOW)
    round_.record(review("security", "approve", findings=1), now=NOW)
    outcome = round_.outcome
    assert outcome is not None
    assert outcome.release_id == "rel-42"
    assert outcome.outcome == Outcome.APPROVED
    assert [r.reviewer for r in outcome.reviews] == ["security", "docs"]  # in expected order
    assert outcome.reviews == [round_.reviews["security"], round_.reviews["docs"]]
    assert outcome.missing == ["compliance"]
    assert outcome.fallbacks_applied == {}
    assert outcome.policy == "majority"
    assert outcome.expected == ["security", "compliance", "docs"]
    assert outcome.opened_at == NOW
    assert outcome.deadline == NOW + timedelta(seconds=60)
    assert outcome.reason.startswith("Approved under policy majority:")
    assert "security and docs approved" in outcome.reason
    assert outcome.correlation_id == "rel-42"
    assert outcome.causation_id == "proposal-rel-42"
    assert outcome.producer == "coordinator"


def test_the_outcome_reason_counts_the_findings_of_a_rejecting_reviewer():
    """The reason on the outcome mentions how many findings the rejecting reviewer raised."""
    round_ = opened()
    round_.record(review("security", "reject", findings=3), now=NOW)
    assert "security rejected the release (3 findings)" in round_.outcome.reason


def test_the_outcome_event_id_is_stable_for_a_revision():
    """The outcome's event id depends only on the release and its content, so a republish
    deduplicates; the outcome names the revision it decided."""
    first, second = opened(), opened()
    first.expire(now=NOW)
    second.expire(now=LATER)
    assert first.outcome.event_id == second.outcome.event_id == f"outcome-rel-42-{digest()[:16]}"
    assert first.outcome.content_digest == digest()


# --- stored form ------------------------------------------------------------------------


def test_a_decided_round_survives_a_json_round_trip_unchanged():
    """A round written to and read back from the KV bucket is equal to the original."""
    round_ = fresh("rel.42 beta")
    round_.record(review("security", "reject", findings=2, release_id="rel.42 beta"), now=NOW, known=KNOWN)
    opened(round_)
    round_.record(review("compliance", "approve", release_id="rel.42 beta"), now=LATER)
    round_.mark_published()
    assert round_.late_reviews and round_.outcome is not None

    restored = Round.model_validate_json(round_.model_dump_json())
    assert restored.model_dump() == round_.model_dump()  # (the transient note is not stored)
    assert restored.model_dump_json() == round_.model_dump_json()


def test_an_awaiting_and_an_open_round_survive_a_json_round_trip_unchanged():
    """Rounds that are still waiting or open also read back equal."""
    waiting = fresh()
    waiting.record(review("security"), now=NOW, known=KNOWN)
    open_ = opened()
    for round_ in (waiting, open_):
        assert Round.model_validate_json(round_.model_dump_json()).model_dump() == round_.model_dump()


def test_a_review_stored_before_its_proposal_is_rejected_when_the_round_opens():
    """Server timestamps: a review stored before the proposal it claims to answer was not
    written by anyone who read that proposal; it is rejected, never counted."""
    round_ = fresh()
    round_.record(review("security", "approve"), now=NOW, known=KNOWN, stored_at=NOW)
    round_.record(review("compliance", "approve"), now=NOW, known=KNOWN, stored_at=LATER)
    round_.open(
        proposal(),
        expected=EXPECTED,
        policy=Policy.parse("all"),
        fallbacks=FALLBACKS,
        deadline_seconds=60,
        now=LATER,
        stored_at=NOW + timedelta(seconds=1),
    )
    assert set(round_.reviews) == {"compliance"}
    assert [(r.reviewer, r.reason) for r in round_.rejected] == [
        ("security", "it was published before the proposal it claims to answer")
    ]
    assert round_.record(review("security", "approve", event_id="too-early"), now=LATER, stored_at=NOW) is True
    assert "security" not in round_.reviews


def test_compact_keeps_every_verdict_and_the_most_severe_findings():
    """A large round trims its reviews to a short rationale and their most severe findings,
    counting the rest; verdicts, reviewers and the outcome do not change."""
    round_ = opened()
    many = [Finding(rule=f"L{i:03d}", severity="low", message="m") for i in range(20)]
    many.append(Finding(rule="C001", severity="critical", message="key"))
    round_.record(review("security", "reject", findings=0, findings_list=many, rationale="x" * 4000), now=NOW)
    before = round_.outcome.outcome
    assert round_.compact() is True
    kept = round_.reviews["security"]
    assert kept.verdict == Verdict.REJECT and kept.findings[0].rule == "C001"
    assert len(kept.findings) == 5 and kept.findings_omitted == 16 and len(kept.rationale) == 500
    assert round_.outcome.outcome == before
    assert round_.compact() is False


def opened_under_majority(*discovered: str) -> Round:
    """A majority round: security and compliance required, `discovered` reviewers added."""
    names = ["security", "compliance", *discovered]
    round_ = fresh()
    round_.open(
        proposal(),
        expected=names,
        required=["compliance", "security"],
        policy=Policy.parse("majority"),
        fallbacks={n: FALLBACKS.get(n, "escalate") for n in names},
        deadline_seconds=60,
        now=NOW,
    )
    return round_


def test_discovered_reviewers_cannot_outvote_a_required_reject():
    """Under majority, five discovered approvals against security's reject would approve; a
    required reviewer's reject blocks whatever the policy (it is the required one's consent)."""
    round_ = opened_under_majority("a", "b", "c", "d", "e")
    for name in ["a", "b", "c", "d", "e"]:
        round_.record(review(name, "approve"), now=NOW)
    assert round_.state == RoundState.OPEN  # a majority, but the required ones have not answered
    round_.record(review("security", "reject"), now=NOW)
    assert round_.outcome.outcome == Outcome.BLOCKED
    assert "security (required) did not consent" in round_.outcome.reason


def test_a_required_reviewer_missing_at_the_deadline_gets_its_fallback_even_under_majority():
    """Majority approves with the discovered reviewers, but security never answered: its
    `block` fallback blocks; compliance's `escalate` alone would escalate."""
    round_ = opened_under_majority("a", "b", "c")
    for name in ["a", "b", "c", "compliance"]:
        round_.record(review(name, "approve"), now=NOW)
    round_.expire(now=LATER)
    assert round_.outcome.outcome == Outcome.BLOCKED
