"""An approval as people see it (`ApprovalView`), read off its round. Pure: no I/O.

The coordinator writes it into the approvals KV bucket after every change of a round that waits,
or waited, for a person; the gateway, its page and `mesh approvals` read it there. The round
stays the truth: a view is replaced only by a newer one (`version_seq`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts.approvals import ApprovalFinding, ApprovalState, ApprovalView
from contracts.outcomes import Outcome
from coordinator.approvals import SEVERITIES

if TYPE_CHECKING:
    from coordinator.rounds import Round

MAX_FINDINGS = 100  # the most severe first; a view stays far below the KV value limit


def view_of(round_: Round) -> ApprovalView | None:
    """The approval of `round_` as people see it; None when it never waited for a person."""
    approval = round_.approval
    if approval is None:
        return None
    counted = [round_.reviews[name] for name in round_.expected if name in round_.reviews]
    findings = [
        ApprovalFinding(
            reviewer=review.reviewer,
            rule=finding.rule,
            severity=finding.severity.value,
            path=finding.file,
            line=finding.line,
            message=finding.message,
        )
        for review in counted
        for finding in review.findings
    ]
    findings.sort(key=lambda f: (SEVERITIES.index(f.severity), f.path or "", f.line or 0))
    outcome = round_.outcome if round_.decision is not None else None
    return ApprovalView(
        id=approval.id,
        release_id=round_.release_id,
        revision=round_.content_digest,
        service=round_.service,
        version=round_.version,
        title=round_.title,
        labels=round_.labels,
        state=state_of(round_),
        reason=approval.reason,
        requested_at=approval.requested_at,
        deadline=approval.deadline,
        fallback=approval.fallback,
        approvers=approval.approvers,
        needed=approval.needed,
        decisions=approval.decisions,
        refused=approval.refused,
        findings=findings[:MAX_FINDINGS],
        rationales={review.reviewer: review.rationale for review in counted},
        verdicts={review.reviewer: review.verdict.value for review in counted},
        outcome=outcome,
        version_seq=approval.version,
    )


def state_of(round_: Round) -> ApprovalState:
    decision = round_.decision
    if decision is None:
        return ApprovalState.PENDING
    if decision.decided_by == "approval_deadline":
        return ApprovalState.EXPIRED
    return ApprovalState.APPROVED if decision.outcome == Outcome.APPROVED else ApprovalState.REJECTED
