"""The registry: who is in the mesh, what each agent can do, and whether it is alive — over HTTP.

It keeps its view current by watching the cards and instances KV buckets (no scan per
request), so a restarted registry serves the full list again at once. Run it with
`mesh run registry --port 8080` (or `MESH_HTTP_PORT=8080 uvicorn services.registry:app --port 8080`:
uvicorn does not tell the app its port, so the settings must); OpenAPI docs at `/docs`,
and the AsyncAPI document of the whole mesh (every subject, bus/asyncapi.py) at `/asyncapi.json`.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from functools import cache
from typing import Annotated, Literal

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import Response

from bus.api import NOT_MODIFIED, cacheable, problem_response, service_api
from bus.asyncapi import asyncapi_document
from bus.card_builder import locate
from bus.directory import AgentDirectory, AgentView
from bus.runtime import Agent, lazy_app
from bus.settings import BusSettings
from contracts.cards import AgentSkill
from services.index import mesh_agents

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

BAD_INPUT = {400: problem_response("A malformed name, or a filter that is malformed or unknown.")}
UNKNOWN_AGENT = {404: problem_response("No agent of that name has registered.")}


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
    return {
        "name": view.name,
        "description": view.card.description,
        "skills": [s.id for s in view.card.skills],
        "tags": sorted({t for s in view.card.skills for t in s.tags}),
        "live": view.live,
        "instances": len(view.instances),
        "lastHeartbeat": view.last_heartbeat.isoformat() if view.last_heartbeat else None,
        "url": view.instances[0].url if view.instances else None,
        "card": f"/agents/{view.name}/card",
    }


def served_card(view: AgentView) -> dict:
    """The agent's card located at its first live instance; with none alive, it names no address
    (the card in KV is shared by every instance and never carries one: bus/card_builder.py)."""
    return locate(view.card, view.instances[0].url if view.instances else None).to_wire()


def http_app(agent: Agent) -> FastAPI:
    @asynccontextmanager
    async def watching(app: FastAPI):
        app.state.directory = await AgentDirectory.watch(agent.broker.connection, agent.settings)
        try:
            yield
        finally:
            await app.state.directory.close()

    api = service_api(
        agent,
        title="agent-mesh registry",
        description="Agent cards (A2A v1.0) and liveness of every agent in the mesh.",
        lifespan=watching,
    )

    def directory(request: Request) -> AgentDirectory:
        return request.app.state.directory

    def known(request: Request, name: str) -> AgentView:
        view = directory(request).get(name)
        if view is None:
            raise HTTPException(404, f"no agent named {name!r} has registered; see GET /agents?include=stale")
        return view

    @api.get("/agents", summary="List agents, live ones by default", responses=BAD_INPUT)
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

    @api.get(
        "/agents/{name}",
        summary="One agent: card, live instances, last heartbeat",
        responses={**BAD_INPUT, **UNKNOWN_AGENT},
    )
    async def get_agent(request: Request, name: Annotated[str, Path(pattern=NAME)]) -> dict:
        view = known(request, name)
        return {
            **summary(view),
            "card": served_card(view),
            "instanceList": [i.to_wire() for i in view.instances],
        }

    @api.get(
        "/agents/{name}/card", summary="One agent's A2A card", responses={**NOT_MODIFIED, **BAD_INPUT, **UNKNOWN_AGENT}
    )
    async def get_card(request: Request, name: Annotated[str, Path(pattern=NAME)]) -> Response:
        view = known(request, name)
        return cacheable(request, served_card(view))

    @cache  # built on first request: the declarations cannot change while the process runs
    def mesh_document() -> dict:
        return asyncapi_document(mesh_agents(agent.settings), agent.settings)

    @api.get(
        "/asyncapi.json",
        summary="The mesh's AsyncAPI 3.0 document: every subject, its publishers, consumers and schemas",
        responses=NOT_MODIFIED,
    )
    async def asyncapi(request: Request) -> Response:
        return cacheable(request, mesh_document())

    return api


__getattr__ = lazy_app(build, settings_type=BusSettings, serve=http_app)  # `app`, for `uvicorn services.registry:app`
