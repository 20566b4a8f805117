"""One agent's typed decision about one proposed release."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from contracts.envelope import Envelope


class Verdict(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    NEEDS_HUMAN = "needs_human"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class Finding(BaseModel):
    """Something a reviewer found, pinned to a file and line where it can be."""

    rule: str = Field(description="Id of the rule or check that fired.", examples=["SEC001"])
    severity: Severity = Field(description="How bad it is.", examples=["critical"])
    message: str = Field(description="What is wrong and what to do.", examples=["Hard-coded credential."])
    file: str | None = Field(default=None, description="File path.", examples=["src/config.py"])
    line: int | None = Field(default=None, ge=1, description="Line in the new file.", examples=[12])


class TokenUsage(BaseModel):
    """Tokens a model call spent; all zero for the offline reviewer."""

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_read_input_tokens: int = Field(default=0, ge=0)
    cache_creation_input_tokens: int = Field(default=0, ge=0)

    @property
    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_input_tokens
            + self.cache_creation_input_tokens
        )

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(**{name: getattr(self, name) + getattr(other, name) for name in TokenUsage.model_fields})


class AttemptStatus(StrEnum):
    ANSWERED = "answered"  # this step's answer is the review
    ESCALATED = "escalated"  # answered, but not surely enough: a stronger model was asked
    FAILED = "failed"  # requests were sent; none gave a usable answer
    SKIPPED = "skipped"  # no request was sent (circuit open, budget spent, no time left)


class ModelAttempt(BaseModel):
    """One step of a reviewer's model chain: which model was asked, or passed over, and why."""

    model: str = Field(description="Model id of this step, or `offline-rules`.", examples=["claude-sonnet-4-6"])
    status: AttemptStatus = Field(description="answered, escalated, failed or skipped.", examples=["failed"])
    reason: str = Field(
        default="",
        description="Why the chain moved on from this step; empty for the step that answered.",
        examples=["the API answered HTTP 529 (OverloadedError)"],
    )
    requests: int = Field(default=0, ge=0, description="HTTP requests sent in this step (retries and repair included).")
    tokens: TokenUsage = Field(default_factory=TokenUsage, description="Tokens this step spent.")
    cost_usd: float = Field(default=0.0, ge=0.0, description="What this step cost.")
    seconds: float = Field(default=0.0, ge=0.0, description="Wall time of this step.")


class ReviewSubmitted(Envelope):
    """`review.submitted`: a reviewer's decision on one release."""

    release_id: str = Field(min_length=1, description="The release reviewed.", examples=["rel-42"])
    reviewer: str = Field(min_length=1, description="Agent that reviewed it.", examples=["security"])
    verdict: Verdict = Field(description="approve, reject or needs_human.", examples=["reject"])
    confidence: float = Field(ge=0.0, le=1.0, description="0..1, how sure the reviewer is.", examples=[0.95])
    rationale: str = Field(description="Why, in a few sentences.", examples=["A live API key is committed."])
    findings: list[Finding] = Field(default_factory=list, description="What was found.")
    model: str = Field(description="Model that produced the decision, or `offline-rules`.", examples=["offline-rules"])
    tokens: TokenUsage = Field(default_factory=TokenUsage, description="Tokens spent.")
    cost_usd: float = Field(default=0.0, ge=0.0, description="What the model calls cost.")
    attempts: list[ModelAttempt] = Field(
        default_factory=list,
        description="Each step of the reviewer's model chain, in order; the step with status `answered` "
        "gave the review (`offline-rules` when no model did). Empty for the offline-only reviewer.",
    )
    trace_id: str | None = Field(default=None, description="OpenTelemetry trace id of the flow.")

    @model_validator(mode="after")
    def _correlate_by_release(self) -> ReviewSubmitted:
        if not self.correlation_id:
            self.correlation_id = self.release_id
        return self
