"""A reviewer agent: reads each proposed release, assesses it with its brain, publishes a review.

The brain is Anthropic's API when a key is configured, the offline rules otherwise; the
service around it is the same either way.
"""

from __future__ import annotations

from bus.runtime import Agent, Delivery
from bus.settings import MeshSettings
from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted
from contracts.subjects import subject_token
from services.review.assessment import Brain
from services.review.brain import make_brain


def build_reviewer(name: str, *, settings: MeshSettings, description: str, brain: Brain | None = None) -> Agent:
    """An Agent that reviews `release.proposed` events from the `name` point of view."""
    if brain is None:
        key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
        brain = make_brain(
            name,
            api_key=key,
            base_url=settings.anthropic_base_url,
            model=settings.model,
            max_tokens=settings.max_tokens,
            timeout=settings.llm_timeout_seconds,
        )
    agent = Agent(name, settings=settings, description=description)
    subjects = settings.subjects

    @agent.consumes(stream=subjects.events_stream, subject=subjects.release_proposed, model=ReleaseProposed)
    async def review_release(proposal: ReleaseProposed, delivery: Delivery) -> None:
        assessment = await brain.assess(proposal)
        review = ReviewSubmitted(
            correlation_id=proposal.correlation_id,
            causation_id=proposal.event_id,
            producer=name,
            release_id=proposal.release_id,
            reviewer=name,
            verdict=assessment.verdict,
            confidence=assessment.confidence,
            rationale=assessment.rationale,
            findings=assessment.findings,
            model=assessment.model,
            tokens=assessment.tokens,
            cost_usd=assessment.cost_usd,
        )
        # One review per (release, reviewer): a redelivered proposal republishes the same id.
        await delivery.publish(
            review,
            subjects.review_submitted(name),
            msg_id=f"review:{subject_token(proposal.release_id)}:{name}",
        )
        delivery.log.info("reviewed", verdict=review.verdict.value, findings=len(review.findings), model=review.model)

    return agent
