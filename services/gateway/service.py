"""The gateway service: the agent (its card, its NATS identity's needs) and its HTTP app."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bus.api import problem_json, service_api
from bus.runtime import Agent, lazy_app
from contracts.approvals import ApprovalDecided
from contracts.cards import AgentInterface, AgentSkill
from contracts.catalog import CONTRACTS
from services.gateway.a2a import mount_a2a
from services.gateway.approvals import Approvals
from services.gateway.approvals_routes import approvals_routes
from services.gateway.door import Door, Refusal
from services.gateway.front import Front
from services.gateway.page import approval_page
from services.gateway.routes import gateway_routes
from services.gateway.settings import GatewaySettings
from services.gateway.webhooks import WebhookSources

NAME = "gateway"
A2A_PATH = "/a2a"
SKILL = AgentSkill(
    id="release.propose",
    name="Propose a release for review",
    description="Takes a release proposal (the release.proposed contract as a JSON data part) and follows its "
    "security and compliance review to the one outcome: approved, blocked or escalated.",
    tags=["gateway", "a2a", "release.proposed"],  # never "review": it is no reviewer
    examples=['{"release_id": "rel-42", "service": "payments-api", "version": "2.4.0", "changes": []}'],
)


def build(settings: GatewaySettings) -> Agent:
    agent = Agent(
        NAME,
        settings=settings,
        description="The mesh's front door: HTTP, signed webhooks and A2A clients in, events on the bus, "
        "outcomes back (held, polled or streamed).",
        skills=[SKILL],
        http_interfaces=[AgentInterface(url=A2A_PATH, protocol_binding="JSONRPC", protocol_version="1.0")],
        streaming=True,
        # an API key or a JWT, as `Authorization: Bearer …`
        security_schemes={"bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer"}}},
        security_requirements=[{"schemes": {"bearer": {"list": []}}}],
    )
    s = settings.subjects
    for name, contract in CONTRACTS.items():
        if contract.publishable:
            agent.publishes(f"{s.namespace}.events.{name}", contract.model)
    agent.reads_stream(s.outcomes_stream, s.rounds_decided)
    agent.reads_bucket(s.rounds_bucket)
    agent.writes_bucket(s.gateway_bucket)
    # approvals: read them, decide them for its callers (on its own channel), read the verdicts
    agent.publishes(s.approval_decisions_via("gateway"), ApprovalDecided)
    agent.reads_bucket(s.approvals_bucket)
    agent.reads_stream(s.approvals_stream, s.approval_verdicts)
    return agent


def http_app(agent: Agent) -> FastAPI:
    settings: GatewaySettings = agent.settings  # type: ignore[assignment]
    front = Front(lambda: agent.broker.connection, settings, telemetry=agent.telemetry)
    door = Door(settings, front)
    approvals = Approvals(front)

    @asynccontextmanager
    async def following(app: FastAPI):
        try:
            yield
        finally:
            await app.state.a2a.aclose()  # stop following the rounds of this replica's A2A tasks

    api = service_api(
        agent,
        title="agent-mesh gateway",
        description="Publish events (release proposals) over HTTP, signed webhooks or A2A, and follow each "
        "revision to its outcome: `?wait=` holds the request, the status URL answers any time, and its "
        "`/events` stream (SSE) tells each review as it is counted. Every `/v1` and `/a2a` route needs a "
        "credential (`Authorization: Bearer <API key or JWT>`), except `/v1/webhooks/*`, which needs the "
        "source's signature instead; the docs, the card, the schemas and the probes need none.",
        lifespan=following,
    )
    api.state.webhook_sources = WebhookSources(settings.webhooks_path)
    api.state.approvals = approvals  # the approvals core: its routes, its page and A2A decide through it
    generate_openapi = api.openapi
    api.openapi = lambda: with_contract_schemas(generate_openapi())

    @api.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> JSONResponse:
        return problem_json(exc.status, exc.detail, headers=exc.headers or None, **exc.extra)

    api.include_router(gateway_routes(door))
    api.include_router(approvals_routes(door, approvals))
    api.include_router(approval_page(door))  # the page people decide on approvals with (/approvals)
    mount_a2a(
        api,
        path=A2A_PATH,
        front=lambda: front,
        authenticate=door.identify,  # authenticated and counted against the caller's rate
        held=door.held,  # streams and blocking sends take a place under the caller's cap
        card=lambda: agent.instance_card.to_wire(),
        approvals=lambda: approvals,  # an answer to an input-required task is a decision
    )
    return api


def with_contract_schemas(schema: dict) -> dict:
    """The OpenAPI document with the schema of each publishable contract (its request bodies)
    and the bearer credential the `/v1` routes (but webhooks) and `/a2a` need."""
    schema.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (mk_…) or a JWT."}
    }
    for path, operations in schema.get("paths", {}).items():
        if (path.startswith("/v1/") and not path.startswith("/v1/webhooks/")) or path.startswith(A2A_PATH):
            for operation in operations.values():
                operation["security"] = [{"bearer": []}]
    components = schema["components"].setdefault("schemas", {})
    for contract in CONTRACTS.values():
        if contract.publishable:
            model_schema = contract.model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[contract.model.__name__] = model_schema
    return schema


__getattr__ = lazy_app(
    build, settings_type=GatewaySettings, serve=http_app
)  # `app`, for `uvicorn services.gateway.service:app`
