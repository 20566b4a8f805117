"""What a reviewer's brain concludes about a release, and the one method every brain has."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from contracts.releases import ReleaseProposed
from contracts.reviews import Finding, TokenUsage, Verdict


@dataclass(frozen=True)
class Assessment:
    """A brain's decision on one release, before it becomes a `ReviewSubmitted`.

    `model` is the model that decided (`offline-rules` for the rules engine) and `tokens`
    what that cost; a model call that fell back reports the fallback's model.
    """

    verdict: Verdict
    confidence: float
    rationale: str
    findings: list[Finding]
    model: str
    tokens: TokenUsage
    cost_usd: float = 0.0


class Brain(Protocol):
    """Turns a proposed release into an assessment; never publishes anything itself."""

    async def assess(self, proposal: ReleaseProposed) -> Assessment:
        """Review `proposal` and say approve, reject or needs_human, with findings."""
        ...
