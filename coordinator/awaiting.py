"""A round's wait for a person: the transitions of a round the reviewers escalated (mixed into
`Round`, coordinator/rounds.py). Pure, like every transition: no I/O, no clock of its own.

    OPEN --escalated, someone may decide--> AWAITING_APPROVAL --decision / deadline--> DECIDED
    OPEN --escalated, nobody may decide---> DECIDED (escalated, and the reason says why)

Who may decide and how many must: coordinator/approvals.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from contracts.approvals import ApprovalDecided, approval_id
from contracts.outcomes import Fallback, Outcome
from coordinator.approvals import SEVERITIES, Approval, joined
from coordinator.approvals import Verdict as DecisionVerdict
from coordinator.policy import Decision
from coordinator.states import RoundDecision, RoundState


class AwaitingApproval:
    """The transitions of a round's wait for a person; `Round` has the fields they use."""

    def _await_person(self, escalation: Decision, *, now: datetime) -> str | None:
        """Wait for a person instead of ending escalated; or say why nobody could decide (None: waiting)."""
        rules = self.approval_rules
        severity = self.highest_severity
        approvers, groups = rules.approvers_for(self.labels, severity)
        needed = rules.needed_for(self.labels, severity)
        if not approvers:
            applying = rules.applying(self.labels, severity)
            if len(applying) > 1:
                return f"Nobody may decide it: no approver belongs to every group that applies ({joined(applying)})."
            return "Nobody may decide it: no approver group applies to it (MESH_APPROVERS has no `default`)."
        if len(approvers) < needed:
            return (
                f"Nobody may decide it: the two-person rule needs {needed} approvers and only {joined(approvers)} "
                f"may decide ({joined(groups)})."
            )
        self.state = RoundState.AWAITING_APPROVAL
        self.escalation = RoundDecision(
            outcome=escalation.outcome,
            reason=escalation.reason,
            missing=escalation.missing,
            fallbacks_applied=escalation.fallbacks_applied,
            decided_at=now,
        )
        deadline = now + timedelta(seconds=rules.deadline_seconds)
        remind = now + timedelta(seconds=rules.deadline_seconds * rules.reminder) if rules.reminder else None
        self.approval = Approval(
            id=approval_id(self.release_id, self.content_digest),
            requested_at=now,
            deadline=deadline,
            approvers=approvers,
            needed=needed,
            groups=groups,
            fallback=rules.fallback,
            reason=escalation.reason,
            remind_at=remind,
        )
        self._note = f"awaiting approval by {joined(approvers)} until {deadline.isoformat()}"
        return None

    @property
    def highest_severity(self) -> str | None:
        """The most severe finding of the counted reviews (what picks approvers and the two-person rule)."""
        found = {finding.severity.value for review in self.reviews.values() for finding in review.findings}
        return next((severity for severity in SEVERITIES if severity in found), None)

    def take_decision(self, event: ApprovalDecided, *, channel: str, at: datetime, now: datetime) -> bool:
        """Take a person's decision, or refuse it with a reason (`verdict`); True when the round changed.

        `channel` is who published it (`gateway` or `operator`), `at` when the bus stored it."""
        approval = self.approval
        if approval is None:
            where = {
                RoundState.AWAITING_PROPOSAL: "its proposal has not arrived",
                RoundState.OPEN: "its reviewers have not concluded",
                RoundState.DECIDED: "it was decided without a person",
            }.get(self.state, "")
            self._verdict = DecisionVerdict(
                False,
                404,
                f"no approval is pending for release {self.release_id!r} revision {self.content_digest[:12]}"
                + (f": {where}" if where else ""),
            )
            self._note = "decision refused: nothing to decide"
            return False
        if (known := approval.verdict_for(event.event_id)) is not None:
            self._verdict = known
            self._note = "duplicate decision ignored"
            return False
        pending = self.state == RoundState.AWAITING_APPROVAL
        self._verdict = approval.take(event, channel=channel, at=at, pending=pending)
        self._note = ("decision taken: " if self._verdict.accepted else "decision refused: ") + self._verdict.detail
        if self._verdict.accepted and approval.settled:
            self._settle_by_people(now=now)
        return True

    def _settle_by_people(self, *, now: datetime) -> None:
        approval, escalation = self.approval, self.escalation
        rejected = [d for d in approval.decisions if d.decision == "reject"]
        if rejected:
            note = f" ({rejected[0].note})" if rejected[0].note else ""
            outcome, reason = Outcome.BLOCKED, f"Blocked: {rejected[0].who} rejected it{note}."
        else:
            outcome, reason = Outcome.APPROVED, f"Approved by {joined(approval.approved_by)} after escalation."
        self._finish(outcome, f"{reason} The reviewers had escalated: {escalation.reason}", "people", now=now)

    def expire_approval(self, *, now: datetime) -> bool:
        """The approval deadline passed with nobody deciding: its fallback decides (block or escalate)."""
        if self.state != RoundState.AWAITING_APPROVAL or self.approval is None:
            return False
        approval = self.approval
        approval.expired = True
        approval.version += 1
        partly = (
            f" ({joined(approval.approved_by)} approved; {approval.needed} were needed)" if approval.decisions else ""
        )
        if approval.fallback == Fallback.ESCALATE.value:
            outcome, effect = Outcome.ESCALATED, "escalates"
        else:
            outcome, effect = Outcome.BLOCKED, "blocks"
        reason = (
            f"{outcome.value.capitalize()}: nobody decided by the approval deadline "
            f"{approval.deadline.isoformat()}{partly}, and its fallback {effect}. "
            f"The reviewers had escalated: {self.escalation.reason}"
        )
        self._finish(outcome, reason, "approval_deadline", now=now)
        self._note = "approval expired"
        return True

    def remind_approval(self) -> bool:
        """Mark the approval as reminded (its `approval.expiring` goes once); False if not waiting."""
        if self.state != RoundState.AWAITING_APPROVAL or self.approval is None or self.approval.reminded:
            return False
        self.approval.reminded = True
        self.approval.version += 1
        self._note = "approval about to expire"
        return True

    def mark_announced(self) -> bool:
        """The approval's request is out (timers, notice, audit record): not done again."""
        if self.approval is None or self.approval.announced:
            return False
        self.approval.announced = True
        return True

    def _finish(self, outcome: Outcome, reason: str, decided_by: str, *, now: datetime) -> None:
        self.state = RoundState.DECIDED
        escalation = self.escalation
        self.decision = RoundDecision(
            outcome=outcome,
            reason=reason,
            missing=escalation.missing,
            fallbacks_applied=escalation.fallbacks_applied,
            decided_at=now,
            decided_by=decided_by,
        )
