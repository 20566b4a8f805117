"""The watch: a self-scheduling agent that checks the mesh's health and decides when to look again.

Each check reads dead-letter growth, the escalation backlog, reviewers without a live instance
and rounds closed by a fallback (services/watch/observe.py), publishes a `mesh.alert` per problem,
and proposes its next run: sooner when something is wrong, later while calm — by rule offline, by
the model's `schedule_next_check` tool call with a key. The runtime clamps the proposal to
[`MESH_WATCH_MIN_INTERVAL_SECONDS`, `MESH_WATCH_MAX_INTERVAL_SECONDS`] and keeps one pending run.

Run it alone with `mesh run watch` (or `faststream run services.watch.service:app`).
"""

from __future__ import annotations

from datetime import timedelta

from bus.runtime import Agent, Delivery, lazy_app
from contracts.alerts import MeshAlert
from contracts.cards import AgentSkill
from contracts.schedules import NextRun, ScheduleTick
from services.watch.advisor import make_advisor
from services.watch.job import WatchJob
from services.watch.settings import WatchSettings

SCHEDULE = "check"  # `mesh schedule show watch.check`
SKILL = AgentSkill(
    id="watch.mesh-health",
    name="Mesh health watch",
    description="Checks the mesh's health on a self-chosen schedule — dead-letter growth, escalation backlog, "
    "reviewers without a live instance, rounds closing by fallback — publishes mesh.alert for each problem, "
    "and looks again sooner when something is wrong, later when calm, within configured bounds.",
    tags=["monitoring", "self-scheduling", "mesh.alert"],
    examples=["Tell me when a required reviewer has no live instance."],
)


def build(settings: WatchSettings, *, job: WatchJob | None = None) -> Agent:
    if not isinstance(settings, WatchSettings):  # the operator tools pass every layer's settings at once
        settings = WatchSettings(**settings.model_dump())
    agent = Agent(
        "watch",
        settings=settings,
        description="Watches the mesh's health, raises mesh.alert events, and schedules its own next check.",
        skills=[SKILL],
    )
    s = settings.subjects
    agent.publishes(s.alerts_raised, MeshAlert)
    # everything it reads, by message gets and KV watches: no consumer of its own
    agent.reads_stream(s.dead_letter_stream, s.dead_letters, live=False)
    agent.reads_stream(s.outcomes_stream, s.rounds_decided, live=False)
    agent.reads_stream(s.alerts_stream, s.alerts, live=False)
    agent.reads_bucket(s.agents_bucket)
    agent.reads_bucket(s.instances_bucket)
    job = job or WatchJob(settings=settings, connection=lambda: agent.broker.connection, advisor=make_advisor(settings))

    @agent.self_scheduled(
        SCHEDULE,
        first_in=timedelta(seconds=settings.watch_first_check_seconds),
        min_interval=timedelta(seconds=settings.watch_min_interval_seconds),
        max_interval=timedelta(seconds=settings.watch_max_interval_seconds),
        description="Check the mesh's health; the check decides when the next one runs.",
    )
    async def check_mesh(tick: ScheduleTick, delivery: Delivery) -> NextRun:
        return await job.run(tick, delivery)

    return agent


__getattr__ = lazy_app(build, settings_type=WatchSettings)  # `app`, for `faststream run services.watch.service:app`
