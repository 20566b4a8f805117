"""The single result of a review round."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from contracts.envelope import Envelope
from contracts.reviews import ReviewSubmitted, TokenUsage


class Outcome(StrEnum):
    APPROVED = "approved"
    BLOCKED = "blocked"
    ESCALATED = "escalated"


class RoundDecided(Envelope):
    """`round.decided`: exactly one per release; what was decided and why."""

    release_id: str = Field(description="The release decided on.", examples=["rel-42"])
    outcome: Outcome = Field(description="approved, blocked or escalated.", examples=["blocked"])
    reason: str = Field(
        description="One sentence a human can read.",
        examples=["Blocked: security rejected the release (1 critical finding)."],
    )
    policy: str = Field(description="Aggregation policy applied.", examples=["all", "quorum:2"])
    reviews: list[ReviewSubmitted] = Field(default_factory=list, description="Every review counted.")
    missing: list[str] = Field(default_factory=list, description="Expected reviewers that never answered.")
    fallbacks_applied: dict[str, str] = Field(
        default_factory=dict, description="Fallback used for each missing reviewer.", examples=[{"compliance": "escalate"}]
    )
    expected: list[str] = Field(default_factory=list, description="Reviewers the round waited for.")
    opened_at: datetime | None = Field(default=None, description="When the round opened.")
    deadline: datetime | None = Field(default=None, description="When the round would time out.")
    tokens: TokenUsage = Field(default_factory=TokenUsage, description="Tokens the counted reviews spent.")
    cost_usd: float = Field(default=0.0, ge=0.0, description="What the counted reviews' model calls cost.")
