"""coordinator/policy.py: parsing policies, applying them to votes, and deciding rounds."""

from __future__ import annotations

import itertools
import random

import pytest

from contracts.outcomes import Fallback, Outcome
from contracts.reviews import Verdict
from coordinator.policy import FALLBACK_VOTES, Policy, PolicyError, decide

A, R, H = Verdict.APPROVE, Verdict.REJECT, Verdict.NEEDS_HUMAN
APPROVED, BLOCKED, ESCALATED = Outcome.APPROVED, Outcome.BLOCKED, Outcome.ESCALATED


def run(policy: str, expected: str, deadline_passed: bool = False, fallbacks: dict | None = None, **votes):
    """`decide` with terse arguments: run("veto", "a b c", a=R) -> Decision | None."""
    names = expected.split()
    return decide(
        policy=Policy.parse(policy),
        expected=names,
        verdicts=votes,
        fallbacks=fallbacks if fallbacks is not None else {name: "escalate" for name in names},
        deadline_passed=deadline_passed,
    )


# --- Policy.parse -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "quorum", "shown"),
    [
        ("all", "all", 0, "all"),
        ("veto", "veto", 0, "veto"),
        ("majority", "majority", 0, "majority"),
        ("quorum:1", "quorum", 1, "quorum:1"),
        ("quorum:3", "quorum", 3, "quorum:3"),
        ("  VeTo\n", "veto", 0, "veto"),
        (" QUORUM:2 ", "quorum", 2, "quorum:2"),
    ],
    ids=["all", "veto", "majority", "quorum-1", "quorum-3", "mixed-case-and-whitespace", "upper-quorum"],
)
def test_parse_accepts_every_policy_ignoring_case_and_surrounding_whitespace(text, kind, quorum, shown):
    """Each policy parses, case and surrounding whitespace do not matter, and str() gives it back."""
    policy = Policy.parse(text)
    assert (policy.kind, policy.quorum) == (kind, quorum)
    assert str(policy) == shown


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("quorum:0", "positive count"),
        ("quorum:x", "positive count"),
        ("quorum:-1", "positive count"),
        ("quorum", "positive count"),
        ("mostly", "use all, veto, majority or quorum:K"),
        ("all:2", "use all, veto, majority or quorum:K"),
        ("", "use all, veto, majority or quorum:K"),
    ],
    ids=["quorum-0", "quorum-x", "quorum-negative", "quorum-without-count", "unknown-name", "all-with-arg", "empty"],
)
def test_parse_rejects_bad_policies_with_a_message_that_says_what_to_use(text, hint):
    """A bad policy raises PolicyError quoting the input and saying what would be valid."""
    with pytest.raises(PolicyError) as caught:
        Policy.parse(text)
    assert repr(text) in str(caught.value)
    assert hint in str(caught.value)


def test_parse_rejects_a_non_ascii_digit_count_as_a_policy_error():
    """`quorum:²` is a PolicyError with the usual hint, not a bare int() ValueError."""
    with pytest.raises(PolicyError, match="positive count"):
        Policy.parse("quorum:²")


# --- Policy.apply -----------------------------------------------------------------------

APPLY_TABLE = [
    # all: every reviewer approves, any reject blocks, otherwise escalate
    ("all", [A, A, A], APPROVED),
    ("all", [A, A, R], BLOCKED),
    ("all", [A, H, R], BLOCKED),
    ("all", [A, A, H], ESCALATED),
    ("all", [H, H], ESCALATED),
    ("all", [], ESCALATED),
    # veto: any reject blocks, needs_human abstains
    ("veto", [A, H, H], APPROVED),
    ("veto", [A, A, R], BLOCKED),
    ("veto", [H, H, H], ESCALATED),
    ("veto", [], ESCALATED),
    # majority: strictly more than half
    ("majority", [A, A, R], APPROVED),
    ("majority", [R, R, A], BLOCKED),
    ("majority", [A, A, R, R], ESCALATED),
    ("majority", [A, R, H], ESCALATED),
    ("majority", [A, H], ESCALATED),
    # quorum:K: K approvals approve; blocked once K approvals are impossible
    ("quorum:2", [A, A, R], APPROVED),
    ("quorum:2", [A, R, R], BLOCKED),
    ("quorum:2", [A, H, R], ESCALATED),
    ("quorum:1", [R, R, A], APPROVED),
    ("quorum:3", [A, A], BLOCKED),
]


@pytest.mark.parametrize(
    ("policy", "votes", "outcome"),
    APPLY_TABLE,
    ids=[f"{p}:{'-'.join(v.value for v in votes) or 'none'}->{o.value}" for p, votes, o in APPLY_TABLE],
)
def test_apply_follows_each_policys_truth_table(policy, votes, outcome):
    """Policy.apply maps a complete set of votes to the outcome the policy defines."""
    assert Policy.parse(policy).apply(votes) == outcome


# --- decide: early decisions ------------------------------------------------------------

EARLY = [
    ("veto", {"a": R}, BLOCKED),
    ("all", {"b": R}, BLOCKED),
    ("quorum:1", {"c": A}, APPROVED),
    ("majority", {"a": A, "c": A}, APPROVED),
    ("majority", {"a": R, "b": R}, BLOCKED),
    ("quorum:2", {"a": R, "b": R}, BLOCKED),
]


@pytest.mark.parametrize(
    ("policy", "votes", "outcome"),
    EARLY,
    ids=[
        "veto-first-reject",
        "all-first-reject",
        "quorum1-first-approve",
        "majority-2-approve",
        "majority-2-reject",
        "quorum2-impossible",
    ],
)
def test_decide_early_when_pending_reviewers_cannot_change_the_outcome(policy, votes, outcome):
    """Before the deadline, a round decides as soon as no pending answer could change its outcome."""
    decision = run(policy, "a b c", **votes)
    assert decision is not None
    assert decision.outcome == outcome
    assert decision.missing == [name for name in "abc" if name not in votes]
    assert decision.fallbacks_applied == {}


WAITING = [
    ("all", {"a": A, "b": A}),
    ("all", {"a": H}),
    ("veto", {"a": A, "b": A}),
    ("veto", {"a": H, "b": H}),
    ("majority", {"a": A, "b": R}),
    ("majority", {"a": A}),
    ("quorum:2", {"a": A, "b": R}),
    ("quorum:1", {"a": R, "b": H}),
    ("all", {}),
]


@pytest.mark.parametrize(
    ("policy", "votes"),
    WAITING,
    ids=[
        "all-approval-still-possible",
        "all-human-then-reject-or-human",
        "veto-late-reject-possible",
        "veto-all-abstaining-so-far",
        "majority-split",
        "majority-one-vote",
        "quorum2-split",
        "quorum1-no-approval-yet",
        "all-nothing-yet",
    ],
)
def test_decide_waits_while_the_outcome_depends_on_pending_reviewers(policy, votes):
    """decide returns None before the deadline while a pending answer could still change the outcome."""
    assert run(policy, "a b c", **votes) is None


def test_decide_with_every_vote_in_uses_the_policy_without_a_deadline():
    """Once every expected reviewer has voted, the round decides with nobody missing."""
    decision = run("all", "a b", a=A, b=A)
    assert decision is not None
    assert decision.outcome == APPROVED
    assert decision.missing == []
    assert decision.fallbacks_applied == {}


# --- decide: the deadline ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fallback", "outcome"),
    [("block", BLOCKED), ("approve_with_warning", APPROVED), ("escalate", ESCALATED)],
    ids=["block-rejects", "approve_with_warning-approves", "escalate-needs-human"],
)
def test_deadline_passed_votes_each_missing_reviewers_fallback(fallback, outcome):
    """At the deadline a missing reviewer's fallback votes for it: block, approve_with_warning, escalate."""
    decision = run("all", "security compliance", True, {"security": "block", "compliance": fallback}, security=A)
    assert decision is not None
    assert decision.outcome == outcome
    assert decision.missing == ["compliance"]
    assert decision.fallbacks_applied == {"compliance": fallback}


def test_deadline_passed_records_every_missing_reviewer_and_its_fallback_in_expected_order():
    """missing and fallbacks_applied list exactly the reviewers that never answered."""
    fallbacks = {"a": "block", "b": "escalate", "c": "approve_with_warning"}
    decision = run("majority", "c a b", True, fallbacks, a=A)
    assert decision is not None
    assert decision.missing == ["c", "b"]
    assert decision.fallbacks_applied == {"c": "approve_with_warning", "b": "escalate"}
    assert decision.outcome == APPROVED  # a approves, c's fallback approves: 2 of 3


def test_deadline_passed_with_a_reviewer_missing_from_fallbacks_escalates_for_it():
    """A missing reviewer with no configured fallback escalates."""
    decision = run("all", "a b", True, {}, a=A)
    assert decision is not None
    assert decision.fallbacks_applied == {"b": "escalate"}
    assert decision.outcome == ESCALATED


def test_deadline_passed_with_everyone_answered_applies_no_fallback():
    """A round whose reviewers all answered decides the same at the deadline, with no fallbacks."""
    decision = run("veto", "a b", True, a=A, b=H)
    assert decision is not None
    assert decision.outcome == APPROVED
    assert decision.missing == []
    assert decision.fallbacks_applied == {}


def test_reviewers_outside_expected_are_ignored():
    """Votes from reviewers the round did not expect neither count nor appear in the reason."""
    assert run("veto", "a b", stranger=R, a=A) is None
    decision = run("veto", "a", True, stranger=R, a=A)
    assert decision is not None
    assert decision.outcome == APPROVED
    assert "stranger" not in decision.reason


def test_no_expected_reviewers_escalates():
    """A round that expects nobody escalates, before or after its deadline."""
    for deadline_passed in (False, True):
        decision = decide(
            policy=Policy.parse("all"), expected=[], verdicts={"a": A}, fallbacks={}, deadline_passed=deadline_passed
        )
        assert decision is not None
        assert decision.outcome == ESCALATED
        assert decision.reason.endswith(".")


# --- decide: the reason -----------------------------------------------------------------


def test_reason_is_one_sentence_naming_reviewers_fallbacks_and_findings():
    """The reason names who voted how, each fallback used, the policy, and the finding count."""
    decision = decide(
        policy=Policy.parse("all"),
        expected=["security", "compliance", "docs"],
        verdicts={"security": R, "docs": A},
        fallbacks={"compliance": "block"},
        deadline_passed=True,
        finding_counts={"security": 2, "docs": 5},
    )
    assert decision is not None
    reason = decision.reason
    assert reason.startswith("Blocked under policy all: ")
    assert reason.endswith(".") and reason.count(".") == 1
    assert "security rejected the release (2 findings)" in reason
    assert "docs approved" in reason
    assert "compliance did not answer by the deadline and its fallback blocks" in reason


def test_reason_for_an_early_decision_names_the_pending_reviewers():
    """An early reason says which pending reviewers could not change the outcome."""
    decision = decide(
        policy=Policy.parse("veto"),
        expected=["security", "compliance", "docs"],
        verdicts={"security": R},
        fallbacks={},
        deadline_passed=False,
        finding_counts={"security": 1},
    )
    assert decision is not None
    assert decision.reason == (
        "Blocked under policy veto: security rejected the release (1 finding); "
        "no answer from compliance and docs could change that."
    )


@pytest.mark.parametrize(
    ("fallback", "wording"),
    [("block", "blocks"), ("approve_with_warning", "approves with a warning"), ("escalate", "escalates")],
)
def test_reason_says_what_each_fallback_did(fallback, wording):
    """Each fallback is spelled out in the reason, so approve_with_warning is visibly a warning."""
    decision = run("veto", "a b", True, {"b": fallback}, a=A)
    assert decision is not None
    assert f"b did not answer by the deadline and its fallback {wording}" in decision.reason


def test_reason_groups_several_reviewers_with_the_same_verdict():
    """Reviewers with the same verdict are joined with commas and 'and'."""
    decision = run("all", "a b c", a=H, b=H, c=H)
    assert decision is not None
    assert decision.reason == "Escalated under policy all: a, b and c asked for a human."


# --- decide: properties over random small rounds ----------------------------------------

POLICIES = ["all", "veto", "majority", "quorum:1", "quorum:2", "quorum:3"]


def random_cases(seed: int, count: int):
    """Small rounds: a policy, up to 4 expected reviewers, some of them (and a stranger) voted."""
    rng = random.Random(seed)
    for _ in range(count):
        expected = [f"r{i}" for i in range(rng.randint(1, 4))]
        verdicts = {name: rng.choice(list(Verdict)) for name in expected if rng.random() < 0.5}
        if rng.random() < 0.2:
            verdicts["stranger"] = rng.choice(list(Verdict))
        fallbacks = {name: rng.choice(["block", "approve_with_warning", "escalate"]) for name in expected}
        yield Policy.parse(rng.choice(POLICIES)), expected, verdicts, fallbacks


def completions(expected, verdicts):
    """Every complete vote list the pending reviewers could still produce."""
    pending = [name for name in expected if name not in verdicts]
    for answers in itertools.product(list(Verdict), repeat=len(pending)):
        votes = {**verdicts, **dict(zip(pending, answers, strict=True))}
        yield [votes[name] for name in expected]


def test_an_early_decision_holds_for_every_way_the_pending_reviewers_could_answer():
    """Whenever decide answers before the deadline, every completion of the votes gives that outcome."""
    decided = 0
    for policy, expected, verdicts, fallbacks in random_cases(seed=7, count=400):
        decision = decide(
            policy=policy, expected=expected, verdicts=verdicts, fallbacks=fallbacks, deadline_passed=False
        )
        if decision is None:
            continue
        decided += 1
        for votes in completions(expected, {n: v for n, v in verdicts.items() if n in expected}):
            assert policy.apply(votes) == decision.outcome, (policy, expected, verdicts, votes)
    assert decided > 50  # the property was exercised, not vacuously true


def test_no_early_decision_is_withheld_when_the_outcome_is_already_settled():
    """Before the deadline, decide returns None only when two completions of the votes disagree."""
    for policy, expected, verdicts, fallbacks in random_cases(seed=11, count=400):
        decision = decide(
            policy=policy, expected=expected, verdicts=verdicts, fallbacks=fallbacks, deadline_passed=False
        )
        counted = {n: v for n, v in verdicts.items() if n in expected}
        outcomes = {policy.apply(votes) for votes in completions(expected, counted)}
        assert (decision is None) == (len(outcomes) > 1), (policy, expected, verdicts)


def test_a_deadline_decision_is_the_policy_applied_to_votes_and_fallbacks():
    """At the deadline the outcome is exactly Policy.apply over answers plus fallback votes."""
    fallback_vote = {"block": R, "approve_with_warning": A, "escalate": H}
    for policy, expected, verdicts, fallbacks in random_cases(seed=23, count=300):
        decision = decide(
            policy=policy, expected=expected, verdicts=verdicts, fallbacks=fallbacks, deadline_passed=True
        )
        assert decision is not None
        votes = [verdicts[n] if n in verdicts else fallback_vote[fallbacks[n]] for n in expected]
        assert decision.outcome == policy.apply(votes)
        assert decision.missing == [n for n in expected if n not in verdicts]
        assert decision.fallbacks_applied == {n: fallbacks[n] for n in decision.missing}
        assert decision.reason.endswith(".")


def test_every_fallback_votes():
    """Each fallback stands for one verdict, looked up by its plain (configured) string too."""
    assert set(FALLBACK_VOTES) == set(Fallback)
    assert FALLBACK_VOTES["approve_with_warning"] is FALLBACK_VOTES[Fallback.APPROVE_WITH_WARNING] is A
