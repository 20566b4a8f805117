"""bus/ops/chaos/proposals.py: a seeded mix of clean and risky releases, and what each deserves."""

from __future__ import annotations

import random
from collections import Counter

from bus.ops.chaos.proposals import deserved, proposals, release
from contracts.outcomes import Outcome
from coordinator.policy import Policy
from services.review.offline import OfflineReviewer
from services.review.rules import load_rules


def test_proposals_are_unique_seeded_and_one_in_four_is_risky():
    """N distinct release ids; the same seed gives the same releases; a quarter (rounded up)
    is risky, at places the seed picks."""
    made = proposals(30, seed=4)
    assert len({p.release_id for p in made}) == 30
    assert made[0].release_id == "chaos-4-00000"
    assert [p.model_dump(exclude={"event_id", "occurred_at"}) for p in made] == [
        p.model_dump(exclude={"event_id", "occurred_at"}) for p in proposals(30, seed=4)
    ]
    truth = deserved(made, policy=Policy.parse("all"))
    assert Counter(truth.values())[Outcome.APPROVED] == 30 - 8
    assert {p.release_id for p in made} == set(truth)


def test_what_each_kind_deserves_under_policy_all():
    """Clean is approved; a committed key is blocked; a customer-facing release without a
    changelog entry is escalated to a human."""
    policy = Policy.parse("all")
    expected = {
        "clean": Outcome.APPROVED,
        "secret": Outcome.BLOCKED,
        "aws-key": Outcome.BLOCKED,
        "unlogged": Outcome.ESCALATED,
    }
    for kind, outcome in expected.items():
        proposal = release(kind, f"r-{kind}", random.Random(1))
        assert deserved([proposal], policy=policy) == {f"r-{kind}": outcome}, kind


def test_the_planted_aws_key_is_one_the_security_rules_catch():
    """The drawn key has the AKIA format and is not AWS's EXAMPLE key, which the rules ignore."""
    proposal = release("aws-key", "r", random.Random(7))
    found = OfflineReviewer(load_rules("security"), name="security").review(proposal).findings
    assert [f.rule for f in found] == ["SEC001"]
    assert "EXAMPLE" not in proposal.changes[-1].diff
