"""Human approval: a release the reviewers escalated waits for a person, who approves or rejects it.

    approval.requested   the coordinator: a round is waiting for a person (what was found, who may decide)
    approval.expiring    the coordinator: the approval deadline is near and nobody has decided
    approval.decided     the gateway (HTTP, the page, A2A) or the operator (`mesh approve`): one decision
    approval.verdict     the coordinator: whether it took that decision, and why not
    approval.timer       the coordinator to itself, fired by the server: the deadline, or its reminder

One approval per revision (release id and content digest); its id is `<release>.<digest[:12]>`.
An `ApprovalView` is what the approvals KV bucket keeps of each (the coordinator writes it after
every change of the round, which stays the only truth) and what the gateway and the CLI show.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from contracts.envelope import Envelope
from contracts.outcomes import HumanDecision, RoundDecided
from contracts.subjects import subject_token

MAX_NOTE_CHARS = 2000


def approval_id(release_id: str, digest: str) -> str:
    """`<release token>.<first 12 of the digest>`: safe in a URL path, a KV key and a subject token list."""
    return f"{subject_token(release_id)}.{digest[:12]}"


class ApprovalState(StrEnum):
    PENDING = "pending"  # waiting for a person
    APPROVED = "approved"  # enough people approved: the outcome is approved
    REJECTED = "rejected"  # a person rejected it: the outcome is blocked
    EXPIRED = "expired"  # nobody decided in time: the fallback decided (blocked, or escalated)


class ApprovalFinding(BaseModel):
    """One reviewer finding, pinned to its file and line where the reviewer could."""

    reviewer: str = Field(description="Who found it.", examples=["security"])
    rule: str = Field(description="The rule or check that fired.", examples=["SEC001"])
    severity: str = Field(description="critical, high, medium, low or info.", examples=["critical"])
    path: str | None = Field(default=None, description="File path.", examples=["src/config.py"])
    line: int | None = Field(default=None, description="Line in the new file.", examples=[12])
    message: str = Field(default="", description="What is wrong and what to do.")


class RefusedDecision(BaseModel):
    """A decision the coordinator did not take, and why (it changes nothing)."""

    who: str = Field(description="Who tried to decide.", examples=["key:mallory"])
    when: datetime = Field(description="When the decision was made.")
    decision: str = Field(description="approve or reject.", examples=["approve"])
    reason: str = Field(description="Why it was refused.", examples=["key:mallory may not decide this approval"])
    status: int = Field(
        default=409, description="As HTTP says it: 403 not allowed, 404 nothing to decide, 409 too late."
    )
    event_id: str = Field(default="", description="The `approval.decided` event.")


class ApprovalView(BaseModel):
    """An approval as people see it: the release, what the reviewers found, who may decide, by when."""

    id: str = Field(description="The approval's id.", examples=["rel-42.3812ed07d3c8"])
    release_id: str = Field(description="The release.", examples=["rel-42"])
    revision: str = Field(description="Its content digest.")
    service: str = Field(default="", examples=["payments-api"])
    version: str = Field(default="", examples=["2.4.0"])
    title: str = Field(default="", examples=["Add refund endpoint"])
    labels: list[str] = Field(default_factory=list, examples=[["backend", "pci"]])
    state: ApprovalState = Field(description="pending, approved, rejected or expired.", examples=["pending"])
    reason: str = Field(default="", description="Why the reviewers asked for a person.")
    requested_at: datetime = Field(description="When it started waiting.")
    deadline: datetime = Field(description="When the fallback applies if nobody decided.")
    fallback: str = Field(default="block", description="What the deadline applies: block or escalate.")
    approvers: list[str] = Field(default_factory=list, description="Who may decide.", examples=[["key:alice"]])
    needed: int = Field(default=1, ge=1, le=2, description="Distinct approvals needed (2: the two-person rule).")
    decisions: list[HumanDecision] = Field(default_factory=list, description="Decisions taken, in order.")
    refused: list[RefusedDecision] = Field(default_factory=list, description="Decisions refused, and why.")
    findings: list[ApprovalFinding] = Field(default_factory=list, description="What the reviewers found.")
    rationales: dict[str, str] = Field(default_factory=dict, description="Each reviewer's rationale.")
    verdicts: dict[str, str] = Field(default_factory=dict, description="Each reviewer's verdict.")
    outcome: RoundDecided | None = Field(default=None, description="The outcome, once there is one.")
    version_seq: int = Field(default=0, ge=0, description="Grows with every change (newer views replace older).")

    @property
    def approvals(self) -> list[str]:
        return [d.who for d in self.decisions if d.decision == "approve"]


class ApprovalDecided(Envelope):
    """`approval.decided`: one person's decision on one approval, as the gateway or the operator sent it.

    Who may speak for whom is the subject's business: the gateway publishes on
    `<ns>.approvals.decided.gateway.<release>` (for its authenticated callers), the operator CLI on
    `….operator.<release>` (for `operator:<name>`), and the coordinator takes nothing else."""

    approval_id: str = Field(max_length=300, description="The approval decided on.", examples=["rel-42.3812ed07d3c8"])
    release_id: str = Field(min_length=1, max_length=200, description="Its release.", examples=["rel-42"])
    content_digest: str = Field(max_length=64, description="Its revision.")
    decision: Literal["approve", "reject"] = Field(description="approve or reject.", examples=["approve"])
    note: str = Field(default="", max_length=MAX_NOTE_CHARS, description="Why, in the person's words.")
    decider: str = Field(min_length=1, max_length=256, description="Who decides.", examples=["key:alice"])
    via: str = Field(default="", max_length=64, description="http, page, a2a or cli.", examples=["http"])


class DecisionVerdict(Envelope):
    """`approval.verdict`: the coordinator's answer to one `approval.decided`, on
    `<ns>.approvals.verdict.<decision event id>`: the decider waits for it."""

    decision_id: str = Field(description="The `approval.decided` event answered.")
    approval_id: str = Field(description="The approval.", examples=["rel-42.3812ed07d3c8"])
    release_id: str = Field(description="Its release.", examples=["rel-42"])
    content_digest: str = Field(default="", description="Its revision.")
    accepted: bool = Field(description="True when the decision was taken.")
    status: int = Field(
        description="As HTTP says it: 200 taken (and decided), 202 taken (more approvals needed), 403 not an "
        "approver, 404 nothing to decide, 409 too late, a second decision, or expired.",
        examples=[200],
    )
    detail: str = Field(description="What happened, in one sentence.")
    state: str = Field(default="", description="The approval's state after it.", examples=["approved"])


class ApprovalRequested(Envelope):
    """`approval.requested`: a round escalated and now waits for a person (the approval as it opened)."""

    approval: ApprovalView = Field(description="The approval.")


class ApprovalExpiring(Envelope):
    """`approval.expiring`: nobody has decided and the approval deadline is near."""

    approval: ApprovalView = Field(description="The approval, as it stands.")
    seconds_left: float = Field(ge=0, description="Seconds until the fallback applies.", examples=[17280])


class ApprovalTimer(Envelope):
    """`approval.timer`: fired by the NATS server (`Nats-Schedule: @at …`) at an approval's
    deadline (`expire`) or before it (`remind`)."""

    release_id: str = Field(min_length=1, description="The round's release.", examples=["rel-42"])
    content_digest: str = Field(default="", description="Its revision.")
    kind: Literal["expire", "remind"] = Field(description="expire or remind.", examples=["expire"])
