"""The single result of a review round."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from contracts.envelope import Envelope
from contracts.reviews import ReviewSubmitted, TokenUsage


class Outcome(StrEnum):
    APPROVED = "approved"
    BLOCKED = "blocked"
    ESCALATED = "escalated"


class Fallback(StrEnum):
    """What a reviewer that has not answered by the deadline counts as (`MESH_FALLBACKS`)."""

    BLOCK = "block"  # a reject
    APPROVE_WITH_WARNING = "approve_with_warning"  # an approval, and the reason says so
    ESCALATE = "escalate"  # a needs_human


class RejectedReview(BaseModel):
    """A review the round refused to count, and why (it never decides anything)."""

    reviewer: str = Field(description="The reviewer the review claimed to come from.", examples=["security"])
    event_id: str = Field(description="The review's event id.")
    reason: str = Field(description="Why it was not counted.", examples=["security is not expected by this round"])


class HumanDecision(BaseModel):
    """One person's decision on a release the reviewers escalated (contracts/approvals.py)."""

    who: str = Field(
        max_length=256,
        description="Who decided: the gateway caller (`key:alice`, `jwt:<issuer>#<subject>`) or the operator "
        "(`operator:alice@ops-laptop`).",
        examples=["key:alice"],
    )
    when: datetime = Field(description="When the decision was made (when the bus stored it).")
    decision: Literal["approve", "reject"] = Field(description="approve or reject.", examples=["approve"])
    note: str = Field(default="", max_length=2000, description="Why, in the person's words.")
    via: str = Field(
        default="", max_length=64, description="Where it was made: http, page, a2a or cli.", examples=["http"]
    )
    event_id: str = Field(default="", max_length=256, description="The `approval.decided` event that carried it.")


class ApprovalRecord(BaseModel):
    """The wait for a person that an escalated round went through, as its outcome tells it."""

    id: str = Field(description="The approval's id (`/v1/approvals/{id}`).", examples=["rel-42.3812ed07d3c8"])
    requested_at: datetime = Field(description="When the round started waiting for a person.")
    deadline: datetime = Field(description="When its fallback would apply.")
    approvers: list[str] = Field(default_factory=list, description="Who could decide.", examples=[["key:alice"]])
    needed: int = Field(default=1, ge=1, le=2, description="Distinct approvals needed (2: the two-person rule).")
    fallback: str = Field(default="block", description="What the approval deadline applies.", examples=["block"])
    escalation_reason: str = Field(default="", description="Why the reviewers asked for a person.")
    expired: bool = Field(default=False, description="True when nobody decided in time and the fallback applied.")


class RoundDecided(Envelope):
    """`round.decided`: exactly one per release; what was decided and why."""

    release_id: str = Field(description="The release decided on.", examples=["rel-42"])
    content_digest: str = Field(
        default="",
        description="`content_digest` of the proposal decided on: the outcome belongs to this revision "
        "of the release only; changed content under the same release id gets its own round.",
        examples=["3812ed07d3c8042d4676e44249798c26e7f850fbb3e62aa9325b5082d542347a"],
    )
    outcome: Outcome = Field(description="approved, blocked or escalated.", examples=["blocked"])
    reason: str = Field(
        description="One sentence a human can read.",
        examples=["Blocked: security rejected the release (1 critical finding)."],
    )
    policy: str = Field(description="Aggregation policy applied.", examples=["all", "quorum:2"])
    reviews: list[ReviewSubmitted] = Field(default_factory=list, description="Every review counted.")
    missing: list[str] = Field(default_factory=list, description="Expected reviewers that never answered.")
    fallbacks_applied: dict[str, str] = Field(
        default_factory=dict,
        description="Fallback used for each missing reviewer.",
        examples=[{"compliance": "escalate"}],
    )
    expected: list[str] = Field(default_factory=list, description="Reviewers the round waited for.")
    required: list[str] = Field(
        default_factory=list, description="The expected reviewers that policy requires (the rest were discovered)."
    )
    rejected: list[RejectedReview] = Field(
        default_factory=list, description="Reviews refused (wrong revision, unexpected reviewer…), never counted."
    )
    opened_at: datetime | None = Field(default=None, description="When the round opened.")
    deadline: datetime | None = Field(default=None, description="When the round would time out.")
    tokens: TokenUsage = Field(default_factory=TokenUsage, description="Tokens the counted reviews spent.")
    cost_usd: float = Field(default=0.0, ge=0.0, description="What the counted reviews' model calls cost.")
    trace_id: str | None = Field(
        default=None,
        max_length=64,
        description="OpenTelemetry trace id of the flow that decided the round (None when tracing is off).",
        examples=["4bf92f3577b34da6a3ce929d0e0e4736"],
    )
    decided_by: Literal["reviewers", "people", "approval_deadline"] = Field(
        default="reviewers",
        description="Who settled it: the reviewers' policy, the people who decided an escalation, or the "
        "approval deadline's fallback when nobody did.",
        examples=["people"],
    )
    human_decisions: list[HumanDecision] = Field(
        default_factory=list, description="The people's decisions, in order (who, when, decision, note)."
    )
    approval: ApprovalRecord | None = Field(
        default=None, description="The wait for a person, when the reviewers escalated the release."
    )
