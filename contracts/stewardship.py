"""What the steward says about the services it follows: their risk level, their decided releases,
and the history it answers reviewers with.

The steward (services/steward) keeps, per service, the recent releases and their outcomes; it
records each decided release in its long-term history (`service.decision_recorded`) and says
when a service's risk level moves (`service.risk_changed`). A reviewer may ask it for a
service's recent history (`HistoryRequest` → `HistoryAnswer`, core NATS request-reply).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from contracts.envelope import MAX_ID_CHARS, Envelope
from contracts.outcomes import Outcome

MAX_RULES_PER_DECISION = 5  # rule ids one decided release keeps (the most severe first)
MAX_REASONS = 4
MAX_REASON_CHARS = 200
MAX_HISTORY_ANSWER = 50  # records one request-reply answer may carry


class RiskLevel(StrEnum):
    """How much attention a service's releases need now (the steward's rule, services/steward/risk.py)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class DecisionRecorded(Envelope):
    """`service.decision_recorded`: one decided release of a service, as the steward's long-term
    history keeps it (one message per decided revision)."""

    service: str = Field(max_length=MAX_ID_CHARS, description="The service released.", examples=["payments-api"])
    release_id: str = Field(max_length=200, description="The release decided on.", examples=["rel-42"])
    content_digest: str = Field(
        default="", max_length=64, description="The revision decided on (`content_digest` of its proposal)."
    )
    outcome: Outcome = Field(description="approved, blocked or escalated.", examples=["blocked"])
    decided_at: datetime = Field(description="When the round was decided (the outcome's `occurred_at`).")
    rules: list[str] = Field(
        default_factory=list,
        max_length=MAX_RULES_PER_DECISION,
        description="Rule ids of the counted reviews' findings, the most severe first.",
        examples=[["SEC001", "CMP004"]],
    )
    critical: int = Field(default=0, ge=0, description="Critical findings in the counted reviews.", examples=[1])
    findings: int = Field(default=0, ge=0, description="Findings in the counted reviews.", examples=[3])
    cost_usd: float = Field(default=0.0, ge=0.0, description="What the counted reviews' model calls cost.")
    reason: str = Field(
        default="", max_length=MAX_REASON_CHARS, description="The outcome's reason, clipped.", examples=["Blocked: …"]
    )
    risk: RiskLevel = Field(
        default=RiskLevel.LOW, description="The service's risk level once this decision was counted.", examples=["high"]
    )


class ServiceRiskChanged(Envelope):
    """`service.risk_changed`: the steward's risk level of a service moved, and why."""

    service: str = Field(max_length=MAX_ID_CHARS, description="The service.", examples=["payments-api"])
    previous: RiskLevel = Field(description="The level before.", examples=["medium"])
    level: RiskLevel = Field(description="The level now.", examples=["high"])
    reasons: list[str] = Field(
        default_factory=list,
        max_length=MAX_REASONS,
        description="Why the rule gives this level (empty for `low`).",
        examples=[["2 of the last 20 decisions had a critical finding"]],
    )
    release_id: str = Field(
        max_length=200, description="The decided release whose outcome moved the level.", examples=["rel-42"]
    )
    window: int = Field(default=0, ge=0, description="Decisions the rule looked at (the most recent ones).")
    blocked: int = Field(default=0, ge=0, description="Of those, blocked.")
    escalated: int = Field(default=0, ge=0, description="Of those, escalated.")
    critical: int = Field(default=0, ge=0, description="Of those, with a critical finding.")
    open_escalations: int = Field(default=0, ge=0, description="Escalations of the service still open.")


class HistoryRequest(BaseModel):
    """What a reviewer asks the steward for (`<ns>.steward.history.<service>`); every field optional."""

    limit: int = Field(default=10, ge=1, le=MAX_HISTORY_ANSWER, description="Most records to return, newest first.")
    rule: str | None = Field(default=None, max_length=64, description="Only decisions with this rule id.")
    since: datetime | None = Field(default=None, description="Only decisions at or after this time.")


class HistoryAnswer(BaseModel):
    """The steward's answer: the service's most recent decided releases, newest first."""

    service: str = Field(description="The service asked about (its subject token).", examples=["payments-api"])
    records: list[DecisionRecorded] = Field(default_factory=list, max_length=MAX_HISTORY_ANSWER)
    risk: RiskLevel | None = Field(default=None, description="The service's risk level now; None if never seen.")
    truncated: bool = Field(default=False, description="The search stopped at its scan limit.")
    error: str | None = Field(default=None, description="Why the request could not be answered, when it could not.")
