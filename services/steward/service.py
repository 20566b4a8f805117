"""The steward: a daemon agent that follows every proposal, review and outcome and keeps, per
service, its recent releases, block and escalation rates, open escalations, most frequent
findings, cost to date and risk level — served over HTTP, searchable in its history stream, and
announced (`service.risk_changed`) when the level moves.

Its state is the runtime's (bus/stateful): in memory, checkpointed to KV with the stream
positions applied, one active instance and hot standbys. The pure parts: services/steward/apply.py
(events -> state, effects), risk.py (the rule), views.py (state -> JSON).

Run it with `mesh run steward` (or `uvicorn services.steward.service:app`).
"""

from __future__ import annotations

import contextlib

from fastapi import FastAPI
from nats.aio.subscription import Subscription

from bus.api import service_api
from bus.runtime import Agent, lazy_app
from bus.stateful import Effect, Position, StateHandle
from contracts.cards import AgentSkill
from contracts.envelope import Envelope
from contracts.outcomes import RoundDecided
from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted
from contracts.stewardship import DecisionRecorded, RiskLevel, ServiceRiskChanged
from contracts.subjects import Subjects
from services.steward.answering import serve_history
from services.steward.apply import apply_outcome, apply_proposal, apply_review
from services.steward.history import History, HistoryPage, HistoryQuery
from services.steward.routes import steward_routes
from services.steward.settings import StewardSettings
from services.steward.state import StewardState

NAME = "steward"
SKILL = AgentSkill(
    id="steward.services",
    name="Service stewardship",
    description="Keeps, per service, the recent releases and their outcomes, block and escalation rates, open "
    "escalations, the most frequent findings, the cost of reviews and a risk level (GET /services, "
    "GET /services/{name}); searches each service's history of decisions by rule and time "
    "(GET /services/{name}/history); publishes service.risk_changed when a level moves.",
    tags=["stewardship", "risk", "history", "service.risk_changed"],  # never "review": it is no reviewer
    examples=["Which services are at high risk, and why?", "Which releases of payments-api hit SEC001 this month?"],
)


def build(settings: StewardSettings) -> Agent:
    if not isinstance(settings, StewardSettings):  # the operator tools pass every layer's settings at once
        settings = StewardSettings(**settings.model_dump())
    agent = Agent(
        NAME,
        settings=settings,
        description="Follows every release, review and outcome; keeps each service's record and risk level, "
        "and its history of decisions.",
        skills=[SKILL],
    )
    s = settings.subjects
    handle = agent.stateful(
        StewardState,
        checkpoint_every=settings.steward_checkpoint_every,
        checkpoint_seconds=settings.steward_checkpoint_seconds,
    )
    agent.publishes(s.decisions_recorded, DecisionRecorded)
    agent.publishes(s.risks_changed, ServiceRiskChanged)
    # It searches the history stream by direct gets and answers history requests on core NATS:
    # a stream read declares both (the get, and a subscription), until the runtime can declare
    # a request-reply endpoint of its own.
    agent.reads_stream(s.history_stream, s.steward_history_requests)

    answer_history_requests(agent, handle)

    @agent.applies(stream=s.events_stream, subject=s.release_proposed, model=ReleaseProposed)
    def on_proposal(state: StewardState, event: ReleaseProposed, at: Position) -> list[Effect]:
        return effects(s, apply_proposal(state, event, at))

    @agent.applies(stream=s.reviews_stream, subject=s.reviews, model=ReviewSubmitted)
    def on_review(state: StewardState, event: ReviewSubmitted, at: Position) -> list[Effect]:
        return effects(s, apply_review(state, event, at))

    @agent.applies(stream=s.outcomes_stream, subject=s.rounds_decided, model=RoundDecided)
    def on_outcome(state: StewardState, event: RoundDecided, at: Position) -> list[Effect]:
        return effects(s, apply_outcome(state, event, at))

    return agent


def effects(s: Subjects, published: list[Envelope]) -> list[Effect]:
    """What apply.py returned, as the runtime's effects: each on its service's history subject,
    its event id (derived from the event's position) as its message id."""
    found = []
    for message in published:
        subject = s.risk_changed if isinstance(message, ServiceRiskChanged) else s.decision_recorded
        found.append(Effect(message, subject(message.service), message.event_id))
    return found


def history_of(agent: Agent) -> History:
    settings: StewardSettings = agent.settings  # type: ignore[assignment]
    return History(lambda: agent.broker.connection, settings.subjects, max_scan=settings.steward_history_max_scan)


def answer_history_requests(agent: Agent, handle: StateHandle[StewardState]) -> None:
    """Every instance, active or standby, answers `<ns>.steward.history.<service>` while it runs
    (services/steward/answering.py): the records come from the stream, the level from its state."""
    history = history_of(agent)
    serving: list[Subscription] = []

    async def search(token: str, query: HistoryQuery) -> HistoryPage:
        record = handle.current.services.get(token)  # a token names the service; the history wants its name
        return await history.search(record.name if record else token, query)

    def risk_of(token: str) -> RiskLevel | None:
        record = handle.current.services.get(token)
        return record.risk if record else None

    async def start() -> None:
        subject = agent.settings.subjects.steward_history_requests
        serving.append(
            await serve_history(agent.broker.connection, subject, search=search, risk_of=risk_of, log=agent.log)
        )

    async def stop() -> None:
        while serving:
            with contextlib.suppress(Exception):
                await serving.pop().unsubscribe()

    agent.on_start.append(start)
    agent.on_stop.append(stop)


def http_app(agent: Agent) -> FastAPI:
    """The steward's HTTP API: the runtime's routes and its own (services/steward/routes.py)."""
    settings: StewardSettings = agent.settings  # type: ignore[assignment]
    api = service_api(
        agent,
        title="agent-mesh steward",
        description="Each service's record and risk level, kept by the steward from every release, review and "
        "outcome, and its history of decisions. On a standby replica the views come from the last checkpoint "
        "(`source`, `as_of`, `age_seconds` say so).",
    )
    routes = steward_routes(
        state=agent.daemon, search=history_of(agent).search, max_limit=settings.steward_history_max_limit
    )
    api.include_router(routes)
    return api


__all__ = ["build", "http_app"]
__getattr__ = lazy_app(build, settings_type=StewardSettings, serve=http_app)  # `app`, for uvicorn
