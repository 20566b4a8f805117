"""The messages every system under test sends: one sample release under many release ids,
and the reviews the offline rules write about it, built exactly as the reviewer service does."""

from __future__ import annotations

import json
from importlib.resources import files

from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted
from contracts.subjects import subject_token
from services.review.assessment import Assessment

# Clean, so every round needs both reviews before it is decided: the full flow every time.
SAMPLE = "release_clean.json"


def sample_proposal() -> dict:
    return json.loads((files("contracts") / "samples" / SAMPLE).read_text())


def proposal(release_id: str, template: dict | None = None) -> ReleaseProposed:
    """The sample release under a new id (and a new event id)."""
    return ReleaseProposed.model_validate({**(template or sample_proposal()), "release_id": release_id})


def proposal_msg_id(release_id: str) -> str:
    return f"proposal:{subject_token(release_id)}"  # as `MeshClient.propose` sets it


def review_msg_id(release_id: str, reviewer: str) -> str:
    return f"review:{subject_token(release_id)}:{reviewer}"  # as the reviewer service sets it


def review(proposal: ReleaseProposed, reviewer: str, assessment: Assessment) -> ReviewSubmitted:
    """The review a reviewer publishes about `proposal` (the fields services/review/reviewer.py sets)."""
    return ReviewSubmitted(
        correlation_id=proposal.correlation_id,
        causation_id=proposal.event_id,
        producer=reviewer,
        release_id=proposal.release_id,
        reviewer=reviewer,
        verdict=assessment.verdict,
        confidence=assessment.confidence,
        rationale=assessment.rationale,
        findings=assessment.findings,
        model=assessment.model,
        tokens=assessment.tokens,
        cost_usd=assessment.cost_usd,
    )
