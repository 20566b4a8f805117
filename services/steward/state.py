"""The steward's working memory: one pydantic model, checkpointed whole as one KV value.

A daemon's state lives for months, so everything in it is bounded, and the bounds are chosen
so that the largest state they allow (every id at its longest) stays under `MAX_STATE_BYTES`,
below the 1 MiB of one KV value (tests/services/steward/test_state_bounds.py builds that state):

    services           MAX_SERVICES services; past it, the one idle longest is forgotten
                       (its history stays in the history stream)
      recent           the last RECENT decided releases of each service
      open_escalations the last MAX_OPEN_ESCALATIONS escalations not yet decided again
      findings         counts of MAX_FINDING_RULES rule ids; rarer rules are summed in `other`
    releases           which service each of the last MAX_RELEASES proposed releases belongs to
    pending            at most MAX_PENDING reviews or outcomes that arrived before their proposal

Counts and sums (decisions, reviews, cost) are numbers, bounded by nature.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from contracts.outcomes import Outcome
from contracts.stewardship import RiskLevel

MAX_SERVICES = 32
RECENT = 20
MAX_OPEN_ESCALATIONS = 10
MAX_FINDING_RULES = 20
MAX_RELEASES = 500
MAX_PENDING = 50
MAX_NAME_CHARS = 100  # of a service's name; names alike up to there are one service
DIGEST_CHARS = 12  # enough of a content digest to tell revisions apart
MAX_STATE_BYTES = 900 * 1024


class Decision(BaseModel):
    """One decided release (one revision) of a service."""

    release_id: str
    digest: str = Field(default="", description=f"The first {DIGEST_CHARS} characters of the content digest.")
    seq: int = Field(default=0, description="Its outcome's sequence in the outcomes stream: the order of decisions.")
    outcome: Outcome
    decided_at: datetime
    rules: list[str] = Field(default_factory=list, description="Rule ids of the findings, most severe first.")
    critical: int = 0
    findings: int = 0
    cost_usd: float = 0.0


class Escalation(BaseModel):
    """A release escalated to a human and not decided again since."""

    release_id: str
    digest: str = ""
    seq: int = 0
    escalated_at: datetime


class Tally(BaseModel):
    """Decided releases of a service since the steward first saw it, by outcome."""

    approved: int = 0
    blocked: int = 0
    escalated: int = 0

    @property
    def total(self) -> int:
        return self.approved + self.blocked + self.escalated

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)


class ServiceRecord(BaseModel):
    """What the steward keeps about one service."""

    name: str = Field(description="The service's name as proposed (clipped).")
    proposed: int = 0
    reviews: int = 0
    decided: Tally = Field(default_factory=Tally)
    cost_usd: float = Field(default=0.0, description="What every review of its releases cost, counted or not.")
    tokens: int = 0
    recent: list[Decision] = Field(default_factory=list, description="In outcomes-stream order, oldest first.")
    open_escalations: list[Escalation] = Field(default_factory=list, description="In outcomes-stream order.")
    escalations_dropped: int = Field(default=0, description="Open escalations forgotten to keep the list bounded.")
    findings: dict[str, int] = Field(
        default_factory=dict, description="Reviews whose findings named each rule (a review counts a rule once)."
    )
    findings_other: int = Field(default=0, description="The same count for rules no longer in `findings`.")
    risk: RiskLevel = RiskLevel.LOW
    risk_reasons: list[str] = Field(default_factory=list)
    first_seen: datetime | None = Field(default=None, description="Stream time of its first event.")
    last_seen: datetime | None = Field(default=None, description="Stream time of its latest event.")


class ReviewFacts(BaseModel):
    """What a review adds to its service's record."""

    cost_usd: float = 0.0
    tokens: int = 0
    rules: list[str] = Field(default_factory=list, description="Distinct rule ids of its findings.")


class Pending(BaseModel):
    """A review or outcome whose release's proposal has not been applied yet (the streams are
    followed apart, so one may run ahead of another); applied when the proposal comes, as if
    it came then."""

    release_id: str
    kind: Literal["review", "outcome"]
    at: str = Field(description="Where the event is in its stream (`STREAM:seq`): the id of what it publishes.")
    time: datetime
    review: ReviewFacts | None = None
    decision: Decision | None = None
    reason: str = ""
    cause: str | None = Field(default=None, description="The outcome's event id.")


class StewardState(BaseModel):
    """Everything the steward knows, as of the last event it applied."""

    services: dict[str, ServiceRecord] = Field(default_factory=dict, description="By service subject token.")
    releases: dict[str, str] = Field(
        default_factory=dict, description="Release id -> service name, oldest first (insertion order)."
    )
    pending: list[Pending] = Field(default_factory=list, description="By stream time.")
    applied: int = Field(default=0, description="Events applied so far.")
    unattributed: int = Field(default=0, description="Reviews and outcomes dropped: their proposal never came.")
    services_forgotten: int = Field(default=0, description="Services dropped to keep `services` bounded.")
    as_of: datetime | None = Field(default=None, description="The latest stream time of the events applied.")
