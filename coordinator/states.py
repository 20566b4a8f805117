"""A round's states, and what concluded it: shared by its transitions (rounds.py) and by its wait
for a person (awaiting.py)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from contracts.outcomes import Outcome


class RoundState(StrEnum):
    AWAITING_PROPOSAL = "awaiting_proposal"  # a review arrived before its proposal
    OPEN = "open"
    AWAITING_APPROVAL = "awaiting_approval"  # the reviewers escalated; a person decides (awaiting.py)
    DECIDED = "decided"


class RoundDecision(BaseModel):
    """What concluded a round (its policy, people, or the approval deadline); the outcome message
    is built from it and the round."""

    outcome: Outcome
    reason: str
    missing: list[str] = Field(default_factory=list)
    fallbacks_applied: dict[str, str] = Field(default_factory=dict)
    decided_at: datetime
    decided_by: str = "reviewers"  # or "people", or "approval_deadline"
