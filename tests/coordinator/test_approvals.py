"""coordinator/approvals.py and a round's wait for a person: who may decide, how many must, and
what each decision, refusal and deadline does to the round. Pure: no broker."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts.approvals import ApprovalDecided
from contracts.outcomes import Outcome
from contracts.reviews import Finding
from coordinator.approval_views import view_of
from coordinator.approvals import ApprovalRules, ApproverGroupsError, check_trigger, parse_groups
from coordinator.policy import Policy
from coordinator.rounds import Round, RoundState
from tests.coordinator.test_rounds import EXPECTED, FALLBACKS, LATER, NOW, fresh, proposal, review

GROUPS = "default=key:alice,key:bob;label:pci=key:carol,key:alice;critical=key:carol,key:dave;high=key:erin"


def rules(**overrides) -> ApprovalRules:
    return ApprovalRules(**{"groups": parse_groups(GROUPS), "deadline_seconds": 3600, **overrides})


def finding(severity: str) -> Finding:
    return Finding(rule="R1", severity=severity, message="Something.", file="src/app.py", line=7)


def waiting(*, labels=(), severity: str | None = "medium", **rule_overrides) -> Round:
    """A round whose compliance review asked for a human (a finding of `severity`): waiting, if anyone may decide."""
    round_ = fresh()
    round_.open(
        proposal(labels=list(labels)),
        expected=EXPECTED,
        policy=Policy.parse("all"),
        fallbacks=FALLBACKS,
        deadline_seconds=60,
        now=NOW,
        approvals=rules(**rule_overrides),
    )
    round_.record(review("security"), now=NOW)
    found = [finding(severity)] if severity else []
    round_.record(review("compliance", "needs_human", findings_list=found), now=NOW)
    return round_


def decision(round_: Round, who: str, choice: str = "approve", **fields) -> ApprovalDecided:
    return ApprovalDecided(
        approval_id=round_.approval.id if round_.approval else "x.y",
        release_id=round_.release_id,
        content_digest=round_.content_digest,
        decision=choice,
        decider=who,
        **fields,
    )


def take(round_: Round, who: str, choice: str = "approve", *, at=LATER, channel: str = "gateway"):
    changed = round_.take_decision(decision(round_, who, choice), channel=channel, at=at, now=at)
    return changed, round_.verdict


# --- the grammar -------------------------------------------------------------------------


def test_approver_groups_parse_into_ids_per_group():
    """`name=id,id;…`: default, label:<label> and severities, each a list of ids in order."""
    assert parse_groups(GROUPS) == {
        "default": ["key:alice", "key:bob"],
        "label:pci": ["key:carol", "key:alice"],
        "critical": ["key:carol", "key:dave"],
        "high": ["key:erin"],
    }
    assert parse_groups("") == {}


@pytest.mark.parametrize(
    "text",
    ["default", "pci=key:carol", "default=", "default=alice", "default=key:a b", "label:=key:a"],
    ids=["no-equals", "unknown-group", "nobody", "not-an-id", "space", "empty-label"],
)
def test_a_malformed_approver_group_is_refused_naming_it(text):
    with pytest.raises(ApproverGroupsError):
        parse_groups(text)


@pytest.mark.parametrize("trigger", ["all", "critical", "label:pci"])
def test_two_person_triggers(trigger):
    check_trigger(trigger)


def test_an_unknown_two_person_trigger_is_refused():
    with pytest.raises(ApproverGroupsError, match="two-person rule 'pci'"):
        check_trigger("pci")


# --- who may decide, how many must -------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "severity", "approvers", "groups"),
    [
        ([], "medium", ["key:alice", "key:bob"], ["default"]),
        ([], None, ["key:alice", "key:bob"], ["default"]),
        (["backend"], "low", ["key:alice", "key:bob"], ["default"]),
        (["pci"], "medium", ["key:carol", "key:alice"], ["label:pci"]),
        ([], "critical", ["key:carol", "key:dave"], ["critical"]),
        ([], "high", ["key:erin"], ["high"]),
        (["pci"], "critical", ["key:carol"], ["label:pci", "critical"]),  # in every group that applies
        (["pci"], "high", [], ["label:pci", "high"]),  # nobody is in both
    ],
    ids=["default", "no-findings", "other-label", "label", "critical", "high", "label-and-critical", "nobody"],
)
def test_the_groups_that_apply_replace_default_and_an_approver_must_be_in_each(labels, severity, approvers, groups):
    """A label group for its label, the most severe severity group the release reaches; else default."""
    assert rules().approvers_for(labels, severity) == (approvers, groups)
    assert rules().applying(labels, severity) == groups


def test_a_critical_finding_reaches_a_high_group_when_no_critical_group_exists():
    """A severity group applies to releases at least that severe: never less guarded than a milder one."""
    only_high = ApprovalRules(groups=parse_groups("default=key:a;high=key:h"))
    assert only_high.approvers_for([], "critical") == (["key:h"], ["high"])


@pytest.mark.parametrize(
    ("triggers", "labels", "severity", "needed"),
    [
        ([], ["pci"], "critical", 1),
        (["critical"], [], "critical", 2),
        (["high"], [], "critical", 2),
        (["critical"], [], "high", 1),
        (["label:pci"], ["pci"], None, 2),
        (["label:pci"], ["backend"], None, 1),
        (["all"], [], None, 2),
    ],
)
def test_the_two_person_rule_asks_for_two_when_a_trigger_matches(triggers, labels, severity, needed):
    assert rules(two_person=triggers).needed_for(labels, severity) == needed


# --- the round waits -----------------------------------------------------------------------


def test_an_escalated_round_waits_for_a_person_with_everything_they_need():
    """needs_human -> AWAITING_APPROVAL, no outcome yet; its approval names who, how many, by when."""
    round_ = waiting()

    assert round_.state == RoundState.AWAITING_APPROVAL and round_.outcome is None
    approval = round_.approval
    assert approval.approvers == ["key:alice", "key:bob"] and approval.needed == 1
    assert approval.deadline == NOW + timedelta(seconds=3600)
    assert approval.remind_at == NOW + timedelta(seconds=3600 * 0.8)
    assert "compliance asked for a human" in approval.reason
    view = view_of(round_)
    assert view.state == "pending" and view.findings[0].path == "src/app.py" and view.findings[0].line == 7
    assert view.verdicts == {"security": "approve", "compliance": "needs_human"}


def test_a_blocked_round_never_waits_for_a_person():
    """Fail closed: only an escalation waits; a reject blocks, whatever approvers exist."""
    round_ = fresh()
    round_.open(
        proposal(),
        expected=EXPECTED,
        policy=Policy.parse("all"),
        fallbacks=FALLBACKS,
        deadline_seconds=60,
        now=NOW,
        approvals=rules(),
    )
    round_.record(review("security", "reject", findings=1), now=NOW)

    assert round_.state == RoundState.DECIDED and round_.outcome.outcome == Outcome.BLOCKED
    assert round_.approval is None
    changed, verdict = take(round_, "key:alice")
    assert not changed and verdict.status == 404 and "decided without a person" in verdict.detail


@pytest.mark.parametrize(
    ("labels", "severity", "overrides", "why"),
    [
        (["pci"], "high", {}, "no approver belongs to every group"),
        ([], "medium", {"groups": {"label:pci": ["key:carol"]}}, "no approver group applies"),
        (["pci"], "critical", {"two_person": ["critical"]}, "the two-person rule needs 2 approvers"),
    ],
    ids=["nobody-in-both", "no-group-applies", "too-few-for-two"],
)
def test_an_escalation_nobody_could_decide_ends_escalated_and_says_why(labels, severity, overrides, why):
    """Nobody may decide: the round ends `escalated` at once (never approved), the reason says why."""
    round_ = waiting(labels=labels, severity=severity, **overrides)

    assert round_.state == RoundState.DECIDED and round_.outcome.outcome == Outcome.ESCALATED
    assert why in round_.outcome.reason and round_.approval is None


def test_a_review_while_waiting_is_never_counted():
    """The reviewers are done once the round waits: a stricter second review changes nothing."""
    round_ = waiting()
    round_.record(review("compliance", "reject", event_id="review-late"), now=LATER)

    assert round_.state == RoundState.AWAITING_APPROVAL
    assert round_.reviews["compliance"].verdict == "needs_human" and round_.outcome is None


# --- decisions -------------------------------------------------------------------------------


def test_an_approval_by_an_approver_approves_and_the_outcome_says_who_when_and_why():
    round_ = waiting()
    changed, verdict = take(round_, "key:bob")

    assert changed and verdict.accepted and verdict.status == 200
    outcome = round_.outcome
    assert outcome.outcome == Outcome.APPROVED and outcome.decided_by == "people"
    assert [(d.who, d.when, d.decision) for d in outcome.human_decisions] == [("key:bob", LATER, "approve")]
    assert outcome.approval.approvers == ["key:alice", "key:bob"] and not outcome.approval.expired
    assert outcome.reviews and outcome.reason.startswith("Approved by key:bob after escalation.")


def test_a_redelivered_decision_gets_its_first_answer_and_changes_nothing():
    round_ = waiting()
    event = decision(round_, "key:bob")
    round_.take_decision(event, channel="gateway", at=LATER, now=LATER)
    changed = round_.take_decision(event, channel="gateway", at=LATER, now=LATER)

    assert not changed and round_.verdict.accepted and len(round_.approval.decisions) == 1


@pytest.mark.parametrize(
    ("who", "channel", "status", "words"),
    [
        ("key:mallory", "gateway", 403, "may not decide"),
        ("operator:ops", "gateway", 403, "may speak only for its authenticated callers"),
        ("key:alice", "operator", 403, "may speak only for operators"),
        ("key:alice", "email", 403, "the email channel"),
    ],
    ids=["not-an-approver", "gateway-as-operator", "operator-as-caller", "unknown-channel"],
)
def test_a_decision_from_someone_not_allowed_is_refused_and_recorded(who, channel, status, words):
    round_ = waiting()
    changed, verdict = take(round_, who, channel=channel)

    assert changed and not verdict.accepted and verdict.status == status and words in verdict.detail
    assert round_.state == RoundState.AWAITING_APPROVAL
    assert [(r.who, r.status) for r in round_.approval.refused] == [(who, status)]


def test_a_decision_made_after_the_approval_deadline_is_refused():
    """Judged by when the bus stored it: even before the deadline's timer is handled."""
    round_ = waiting()
    changed, verdict = take(round_, "key:alice", at=round_.approval.deadline)

    assert changed and verdict.status == 409 and "expired" in verdict.detail
    assert round_.state == RoundState.AWAITING_APPROVAL


def test_the_two_person_rule_needs_two_different_approvers():
    """One approval of two keeps it waiting (202); the same person again is refused; a second, different one approves."""
    round_ = waiting(labels=["pci"], two_person=["label:pci"])
    assert round_.approval.needed == 2 and round_.approval.approvers == ["key:carol", "key:alice"]

    _, first = take(round_, "key:carol")
    _, again = take(round_, "key:carol")
    assert (first.accepted, first.status, round_.state) == (True, 202, RoundState.AWAITING_APPROVAL)
    assert (again.accepted, again.status) == (False, 409)

    _, second = take(round_, "key:alice")
    assert (second.accepted, second.status) == (True, 200)
    assert round_.outcome.outcome == Outcome.APPROVED
    assert [d.who for d in round_.outcome.human_decisions] == ["key:carol", "key:alice"]


def test_under_the_two_person_rule_one_reject_blocks():
    round_ = waiting(labels=["pci"], two_person=["label:pci"])
    take(round_, "key:carol")
    _, verdict = take(round_, "key:alice", "reject")

    assert verdict.accepted and round_.outcome.outcome == Outcome.BLOCKED
    assert round_.outcome.reason.startswith("Blocked: key:alice rejected it")


def test_a_decision_after_the_outcome_is_refused_and_recorded():
    round_ = waiting()
    take(round_, "key:alice")
    changed, verdict = take(round_, "key:bob", "reject")

    assert changed and verdict.status == 409 and round_.outcome.outcome == Outcome.APPROVED
    assert round_.approval.refused[-1].who == "key:bob"


# --- the approval deadline -------------------------------------------------------------------


@pytest.mark.parametrize(("fallback", "outcome"), [("block", Outcome.BLOCKED), ("escalate", Outcome.ESCALATED)])
def test_nobody_deciding_by_the_deadline_applies_the_fallback(fallback, outcome):
    """Never approve: the fallback blocks (or ends escalated); a partial two-person approval does not count."""
    round_ = waiting(labels=["pci"], two_person=["label:pci"], fallback=fallback)
    take(round_, "key:carol")
    assert round_.expire_approval(now=round_.approval.deadline)

    decided = round_.outcome
    assert decided.outcome == outcome and decided.decided_by == "approval_deadline" and decided.approval.expired
    assert "key:carol approved; 2 were needed" in decided.reason
    assert view_of(round_).state == "expired"
    assert not round_.expire_approval(now=LATER)  # once


def test_the_reminder_is_marked_once_and_only_while_waiting():
    round_ = waiting()
    assert round_.remind_approval() and not round_.remind_approval()
    take(round_, "key:alice")
    assert not round_.remind_approval() and not round_.expire_approval(now=LATER)


def test_a_round_without_approval_rules_escalates_as_it_always_did():
    """No approvers configured (the rules are None): `escalated` is final."""
    round_ = fresh()
    round_.open(
        proposal(), expected=EXPECTED, policy=Policy.parse("all"), fallbacks=FALLBACKS, deadline_seconds=60, now=NOW
    )
    round_.record(review("security"), now=NOW)
    round_.record(review("compliance", "needs_human"), now=NOW)

    assert round_.outcome.outcome == Outcome.ESCALATED and round_.approval is None


def test_a_waiting_round_survives_its_stored_form():
    """What the KV bucket holds comes back as the same waiting round."""
    round_ = waiting()
    take(round_, "key:mallory")
    again = Round.model_validate_json(round_.model_dump_json())

    assert again.state == RoundState.AWAITING_APPROVAL and again.approval == round_.approval
    assert again.approval_rules == round_.approval_rules and again.escalation == round_.escalation
