"""What a reviewer's brain concludes about a release, and the one method every brain has."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from contracts.releases import ReleaseProposed
from contracts.reviews import Finding, ModelAttempt, TokenUsage, Verdict


@dataclass(frozen=True)
class Assessment:
    """A brain's decision on one release, before it becomes a `ReviewSubmitted`.

    `model` is the model that decided (`offline-rules` for the rules engine); `tokens` and
    `cost_usd` are what the whole review spent, failed calls included; `attempts` records each
    step of the model chain (empty for the offline-only brain).
    """

    verdict: Verdict
    confidence: float
    rationale: str
    findings: list[Finding]
    model: str
    tokens: TokenUsage
    cost_usd: float = 0.0
    attempts: list[ModelAttempt] = field(default_factory=list)


class Brain(Protocol):
    """Turns a proposed release into an assessment; never publishes anything itself."""

    async def assess(self, proposal: ReleaseProposed) -> Assessment:
        """Review `proposal` and say approve, reject or needs_human, with findings."""
        ...
