"""The registry: who is in the mesh, what each agent can do, and whether it is alive — over HTTP.

It keeps its view current by watching the cards and instances KV buckets (no scan per
request), so a restarted registry serves the full list again at once. Run it with
`mesh run registry` (or `uvicorn services.registry:app --port 8080`); OpenAPI docs at `/docs`.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from bus.directory import AgentDirectory, AgentView
from bus.http import PROBLEM_JSON, conditional_json, problem
from bus.runtime import Agent, lazy_app
from bus.settings import BusSettings
from contracts.cards import HTTP_BINDING, AgentSkill
from contracts.validation import describe_errors

SKILL = AgentSkill(
    id="registry.lookup",
    name="Agent lookup",
    description="Lists the agents of the mesh with their cards, live instances and last heartbeat; "
    "filters by skill id, skill tag or free text.",
    tags=["discovery", "registry"],
    examples=["Which live agents can review a release for security?"],
)
FILTERS = {"skill", "tag", "q", "include"}
NAME = r"^[A-Za-z0-9_-]{1,64}$"
TOKEN = r"^[A-Za-z0-9._:-]{1,100}$"


def build(settings: BusSettings) -> Agent:
    agent = Agent(
        "registry",
        settings=settings,
        description="Answers over HTTP which agents exist, what they can do and whether they are alive.",
        skills=[SKILL],
    )
    agent.reads_bucket(settings.subjects.agents_bucket)
    agent.reads_bucket(settings.subjects.instances_bucket)
    return agent


def summary(view: AgentView) -> dict:
    http = next((i.url for i in view.card.supported_interfaces if i.protocol_binding == HTTP_BINDING), None)
    return {
        "name": view.name,
        "description": view.card.description,
        "skills": [s.id for s in view.card.skills],
        "tags": sorted({t for s in view.card.skills for t in s.tags}),
        "live": view.live,
        "instances": len(view.instances),
        "lastHeartbeat": view.last_heartbeat.isoformat() if view.last_heartbeat else None,
        "url": view.instances[0].url if view.instances else http,
        "card": f"/agents/{view.name}/card",
    }


def http_app(agent: Agent) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with agent.running():
            app.state.directory = await AgentDirectory.watch(agent.broker.connection, agent.settings)
            try:
                yield
            finally:
                await app.state.directory.close()

    api = FastAPI(
        title="agent-mesh registry",
        description="Agent cards (A2A v1.0) and liveness of every agent in the mesh.",
        version=agent.card.version,
        lifespan=lifespan,
    )

    def directory(request: Request) -> AgentDirectory:
        return request.app.state.directory

    def known(request: Request, name: str) -> AgentView:
        view = directory(request).get(name)
        if view is None:
            raise HTTPException(404, f"no agent named {name!r} has registered; see GET /agents?include=stale")
        return view

    @api.exception_handler(HTTPException)
    async def http_problem(request: Request, exc: HTTPException) -> JSONResponse:
        title = {400: "Bad request", 404: "Not found"}.get(exc.status_code, "Error")
        return JSONResponse(problem(exc.status_code, title, str(exc.detail)), exc.status_code, media_type=PROBLEM_JSON)

    @api.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(describe_errors(exc.errors(), whole="", skip=1))  # skip `query`/`path`
        return JSONResponse(problem(400, "Bad request", detail), 400, media_type=PROBLEM_JSON)

    @api.get("/agents", summary="List agents, live ones by default")
    async def list_agents(
        request: Request,
        skill: Annotated[str | None, Query(pattern=TOKEN, description="Skill id, e.g. review.security.")] = None,
        tag: Annotated[str | None, Query(pattern=TOKEN, description="Skill tag, e.g. release.proposed.")] = None,
        q: Annotated[str | None, Query(min_length=1, max_length=200, description="Free text.")] = None,
        include: Annotated[
            Literal["stale"] | None, Query(description="`stale` adds agents with no live instance.")
        ] = None,
    ) -> dict:
        unknown = sorted(set(request.query_params) - FILTERS)
        if unknown:
            raise HTTPException(400, f"unknown filter {', '.join(unknown)}; use skill, tag, q or include=stale")
        views = directory(request).agents(skill=skill, tag=tag, q=q, include_stale=include == "stale")
        return {"agents": [summary(v) for v in views], "count": len(views)}

    @api.get("/agents/{name}", summary="One agent: card, live instances, last heartbeat")
    async def get_agent(request: Request, name: Annotated[str, Path(pattern=NAME)]) -> dict:
        view = known(request, name)
        return {
            **summary(view),
            "card": view.card.to_wire(),
            "instanceList": [i.to_wire() for i in view.instances],
        }

    @api.get("/agents/{name}/card", summary="One agent's A2A card")
    async def get_card(request: Request, name: Annotated[str, Path(pattern=NAME)]) -> Response:
        view = known(request, name)
        return _cacheable(request, view.card.to_wire())

    own_card = agent.card.to_wire()

    @api.get("/.well-known/agent-card.json", summary="The registry's own A2A card")
    async def well_known(request: Request) -> Response:
        return _cacheable(request, own_card)

    @api.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"status": "ok", "service": agent.name}

    @api.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        body, content_type = await agent.metrics.exposition(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    @api.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        status, body = await agent.readiness()
        return JSONResponse(body, status, media_type=PROBLEM_JSON if status >= 400 else "application/json")

    return api


def _cacheable(request: Request, document: dict) -> Response:
    status, payload, headers = conditional_json(document, request.headers.get("if-none-match"))
    return Response(payload, status, headers=headers)


__getattr__ = lazy_app(build, settings_type=BusSettings, serve=http_app)  # `app`, for `uvicorn services.registry:app`
