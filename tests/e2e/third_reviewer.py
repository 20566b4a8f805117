"""A third reviewer written outside the mesh's code: it joins new rounds just by starting.

Run: `python -m tests.e2e.third_reviewer` (with MESH_NATS_URL, MESH_NAMESPACE, MESH_HTTP_PORT).
"""

import uvicorn

from bus.ops.settings import MeshSettings
from bus.runtime import Agent, Delivery
from contracts.cards import AgentSkill
from contracts.ids import review_msg_id
from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted, Verdict

SKILL = AgentSkill(
    id="review.performance",
    name="Performance review",
    description="Flags releases whose diffs grow in loops.",
    tags=["review", "release.proposed", "performance"],
)


def build(settings: MeshSettings) -> Agent:
    agent = Agent("performance", settings=settings, description="Reviews releases for performance.", skills=[SKILL])
    subject = settings.subjects.review_submitted("performance")
    agent.publishes(subject, ReviewSubmitted)

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def review(proposal: ReleaseProposed, delivery: Delivery) -> None:
        loops = sum(line.lstrip("+ ").startswith("for ") for c in proposal.changes for line in c.diff.splitlines())
        review = ReviewSubmitted.answering(  # tied to this revision and this proposal
            proposal,
            reviewer="performance",
            verdict=Verdict.APPROVE if loops < 3 else Verdict.NEEDS_HUMAN,
            confidence=0.6,
            rationale=f"{loops} new loop(s).",
            model="loop-counter",
        )
        msg_id = review_msg_id(review)
        await delivery.publish(review, subject, msg_id=msg_id)

    return agent


if __name__ == "__main__":
    settings = MeshSettings()
    uvicorn.run(build(settings).build_app(), host=settings.http_host, port=settings.http_port, log_level="warning")
