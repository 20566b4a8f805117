"""One agent's typed decision about one proposed release."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.envelope import Envelope
from contracts.redaction import redact
from contracts.releases import ReleaseProposed

# Bounds that keep any review small enough for a round (one KV value holds every review of a
# round): a legitimate review never needs more, and a hostile one cannot grow past them.
MAX_FINDINGS = 50
MAX_RATIONALE_CHARS = 4000
MAX_MESSAGE_CHARS = 500
MAX_PATH_CHARS = 300
MAX_ATTEMPTS = 16
_SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")


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

    rule: str = Field(max_length=64, description="Id of the rule or check that fired.", examples=["SEC001"])
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
        return self.input_tokens + self.output_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(**{name: getattr(self, name) + getattr(other, name) for name in TokenUsage.model_fields})


class AttemptStatus(StrEnum):
    ANSWERED = "answered"  # this step's answer is the review
    ESCALATED = "escalated"  # answered, but not surely enough: a stronger model was asked
    FAILED = "failed"  # requests were sent; none gave a usable answer
    SKIPPED = "skipped"  # no request was sent (circuit open, budget spent, no time left)


class ModelAttempt(BaseModel):
    """One step of a reviewer's model chain: which model was asked, or passed over, and why."""

    model: str = Field(
        max_length=200, description="Model id of this step, or `offline-rules`.", examples=["claude-sonnet-4-6"]
    )
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

    # Unknown fields are dropped, not kept: a review travels into rounds and outcomes, and
    # whatever it carries must stay within the bounds below.
    model_config = ConfigDict(extra="ignore")

    release_id: str = Field(min_length=1, max_length=200, description="The release reviewed.", examples=["rel-42"])
    reviewer: str = Field(min_length=1, max_length=100, description="Agent that reviewed it.", examples=["security"])
    verdict: Verdict = Field(description="approve, reject or needs_human.", examples=["reject"])
    confidence: float = Field(ge=0.0, le=1.0, description="0..1, how sure the reviewer is.", examples=[0.95])
    rationale: str = Field(description="Why, in a few sentences.", examples=["A live API key is committed."])
    findings: list[Finding] = Field(default_factory=list, description="What was found.")
    model: str = Field(
        max_length=200, description="Model that produced the decision, or `offline-rules`.", examples=["offline-rules"]
    )
    tokens: TokenUsage = Field(default_factory=TokenUsage, description="Tokens spent.")
    cost_usd: float = Field(default=0.0, ge=0.0, description="What the model calls cost.")
    attempts: list[ModelAttempt] = Field(
        default_factory=list,
        description="Each step of the reviewer's model chain, in order; the step with status `answered` "
        "gave the review (`offline-rules` when no model did). Empty for the offline-only reviewer.",
    )
    trace_id: str | None = Field(default=None, max_length=64, description="OpenTelemetry trace id of the flow.")
    content_digest: str = Field(
        default="",
        max_length=64,
        description="`content_digest` of the proposal reviewed: which revision of the release this "
        "review is about. A review without it counts for no round.",
        examples=["3812ed07d3c8042d4676e44249798c26e7f850fbb3e62aa9325b5082d542347a"],
    )
    findings_omitted: int = Field(
        default=0, ge=0, description=f"Findings left out beyond the first {MAX_FINDINGS} (the most severe are kept)."
    )

    @classmethod
    def answering(cls, proposal: ReleaseProposed, *, reviewer: str, **fields: Any) -> ReviewSubmitted:
        """`reviewer`'s review of `proposal`: tied to its revision and its event, as the
        coordinator requires (`release_id`, `content_digest`, `causation_id`, correlation)."""
        return cls(
            release_id=proposal.release_id,
            content_digest=proposal.content_digest,
            causation_id=proposal.event_id,
            correlation_id=proposal.correlation_id,
            producer=reviewer,
            reviewer=reviewer,
            **fields,
        )

    @model_validator(mode="after")
    def _correlate_by_release(self) -> ReviewSubmitted:
        if not self.correlation_id:
            self.correlation_id = self.release_id
        return self

    @model_validator(mode="after")
    def _bounded_and_redacted(self) -> ReviewSubmitted:
        """Cap what a review may carry and redact secrets from its words, whoever wrote them.

        A model may echo a password from the diff; a flood of findings may come from a
        minified file. Neither may reach the reviews stream, a round or an outcome as is.
        """
        if len(self.findings) > MAX_FINDINGS:
            ranked = sorted(self.findings, key=lambda f: _SEVERITY_ORDER.index(f.severity.value))  # stable
            self.findings_omitted += len(self.findings) - MAX_FINDINGS
            self.findings = ranked[:MAX_FINDINGS]
        # Copies, not edits (the findings may be shared with whoever built this review), and
        # only where something changes: a round re-reads its reviews on every change.
        self.findings = [_bounded_finding(f) for f in self.findings]
        self.rationale = redact(_clip(self.rationale, MAX_RATIONALE_CHARS))
        if len(self.attempts) > MAX_ATTEMPTS or any(_bounded_text(a.reason) != a.reason for a in self.attempts):
            self.attempts = [
                a.model_copy(update={"reason": _bounded_text(a.reason)}) for a in self.attempts[:MAX_ATTEMPTS]
            ]
        return self


def _bounded_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return redact(_clip(text, limit))


def _bounded_finding(finding: Finding) -> Finding:
    message = _bounded_text(finding.message)
    file = None if finding.file is None else _bounded_text(finding.file, MAX_PATH_CHARS)
    if message == finding.message and file == finding.file:
        return finding
    return finding.model_copy(update={"message": message, "file": file})


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
