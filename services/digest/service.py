"""The digest: a scheduled agent that sums up the mesh's work and posts it to a webhook.

On its schedule (`MESH_DIGEST_CRON`, daily 09:00 in `MESH_DIGEST_TIME_ZONE`, or
`MESH_DIGEST_EVERY`) it reads the window ending at the tick's scheduled time from the streams —
outcomes, dead letters, the watch's alerts — publishes a `digest.published` event, posts it to
`MESH_DIGEST_WEBHOOK_URL` (Slack-compatible) and records the delivery (services/digest/job.py).

Run it alone with `mesh run digest` (or `faststream run services.digest.service:app`).
"""

from __future__ import annotations

from bus.runtime import Agent, Delivery, lazy_app
from contracts.cards import AgentSkill
from contracts.digests import DigestDelivered, DigestPublished
from contracts.schedules import ScheduleTick
from services.digest.job import DigestJob
from services.digest.settings import DigestSettings
from services.digest.summary import make_writer

SCHEDULE = "digest"  # `mesh schedule show digest.digest`
SKILL = AgentSkill(
    id="digest.mesh",
    name="Digest of the mesh's work",
    description="On a schedule, sums up a window of the mesh's work — outcomes by kind, the most frequent "
    "findings, releases still escalated, dead letters by service, the watch's alerts, cost and tokens per "
    "reviewer — publishes it as digest.published and posts it to a Slack-compatible webhook.",
    tags=["digest", "scheduled", "digest.published"],
    examples=["Post yesterday's releases, findings, dead letters and spend to #release-ops at 09:00."],
)


def build(settings: DigestSettings, *, job: DigestJob | None = None) -> Agent:
    if not isinstance(settings, DigestSettings):  # the operator tools pass every layer's settings at once
        settings = DigestSettings(**settings.model_dump())
    agent = Agent(
        "digest",
        settings=settings,
        description="Sums up the mesh's releases, findings, dead letters, alerts and spend on a schedule, "
        "and posts the digest to a webhook.",
        skills=[SKILL],
    )
    s = settings.subjects
    agent.publishes(s.digest_published, DigestPublished)
    agent.publishes(s.digests_delivered, DigestDelivered)
    # everything it reads, by message gets (bus/stream_reads.py): no consumer of its own
    agent.reads_stream(s.outcomes_stream, s.rounds_decided, live=False)
    agent.reads_stream(s.dead_letter_stream, s.dead_letters, live=False)
    agent.reads_stream(s.alerts_stream, s.alerts, live=False)
    agent.reads_stream(s.digests_stream, s.digests, live=False)
    job = job or DigestJob(settings=settings, connection=lambda: agent.broker.connection, writer=make_writer(settings))
    every = settings.digest_every.strip()
    when = {"every": every} if every else {"cron": settings.digest_cron, "tz": settings.digest_time_zone}

    @agent.scheduled(SCHEDULE, description="The digest of the window ending at each firing.", **when)
    async def publish_digest(tick: ScheduleTick, delivery: Delivery) -> str:
        return await job.run(tick, delivery)

    return agent


__getattr__ = lazy_app(build, settings_type=DigestSettings)  # `app`, for `faststream run services.digest.service:app`
