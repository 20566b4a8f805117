"""A reviewer agent: reads each proposed release, assesses it with its brain, publishes a review.

The brain is Anthropic's API when a key is configured, the offline rules otherwise; the
service around it is the same either way.
"""

from __future__ import annotations

from bus.runtime import Agent, Delivery
from contracts.cards import AgentSkill
from contracts.ids import review_msg_id
from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted
from services.review.assessment import Assessment, Brain
from services.review.brain import make_brain
from services.review.settings import ReviewerSettings
from services.steward.client import history_context, recent_history

# How much of a service's history goes into a model's context, at most.
HISTORY_CHARS = 2000


def build_reviewer(
    name: str, *, settings: ReviewerSettings, description: str, skill: AgentSkill, brain: Brain | None = None
) -> Agent:
    """An Agent that reviews `release.proposed` events from the `name` point of view.

    The coordinator asks every live agent whose card has a skill tagged `review` and
    `release.proposed`, so a reviewer joins new rounds just by starting.
    """
    agent = Agent(name, settings=settings, description=description, skills=[skill])
    subjects = settings.subjects
    if brain is None:
        brain = make_brain(name, settings=settings, context=lambda proposal: service_history(agent, proposal))
    agent.publishes(subjects.review_submitted(name), ReviewSubmitted)
    # asks the steward for a service's history (core NATS request; only a model ever reads it)
    agent.asks(subjects.steward_history_requests)

    @agent.consumes(stream=subjects.events_stream, subject=subjects.release_proposed, model=ReleaseProposed)
    async def review_release(proposal: ReleaseProposed, delivery: Delivery) -> None:
        review = review_of(proposal, name, await brain.assess(proposal), trace_id=delivery.trace_id)
        # One review per (revision, reviewer): a redelivered proposal republishes the same id.
        msg_id = review_msg_id(review)
        await delivery.publish(review, subjects.review_submitted(name), msg_id=msg_id)
        agent.metrics.reviewed(name, review.verdict.value)
        delivery.log.info(
            "reviewed",
            verdict=review.verdict.value,
            findings=len(review.findings),
            model=review.model,
            cost_usd=review.cost_usd,
            tokens=review.tokens.total,
        )

    return agent


async def service_history(agent: Agent, proposal: ReleaseProposed) -> str:
    """The steward's recent decisions on the proposal's service, as a bounded block of data for
    the model's context; "" when no steward answers within a second (reviewing never waits on it)."""
    answer = await recent_history(agent.broker.connection, agent.settings.subjects, proposal.service, limit=10)
    return history_context(answer, max_chars=HISTORY_CHARS)


def review_of(
    proposal: ReleaseProposed, reviewer: str, assessment: Assessment, *, trace_id: str | None = None
) -> ReviewSubmitted:
    """The review `reviewer` publishes about `proposal` (also what `mesh bench`'s floor sends);
    `trace_id`: the trace of the flow, when tracing is on."""
    return ReviewSubmitted.answering(
        proposal,
        reviewer=reviewer,
        verdict=assessment.verdict,
        confidence=assessment.confidence,
        rationale=assessment.rationale,
        findings=assessment.findings,
        model=assessment.model,
        tokens=assessment.tokens,
        cost_usd=assessment.cost_usd,
        attempts=assessment.attempts,
        trace_id=trace_id,
    )
