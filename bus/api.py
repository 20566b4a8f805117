"""The HTTP API of a service that has one (the registry, the gateway): FastAPI around an agent,
with what every service serves (`/healthz`, `/readyz`, `/metrics`, its card) and one way of
saying what went wrong (RFC 9457 problems).

Bad input in a path or query is a 400; a body that is not the contract is the service's own
to answer (the gateway's 422). FastAPI's own 422 for every route is taken out of the OpenAPI
document, which lists the problem schema instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from bus.card_builder import contract_name
from bus.http import PROBLEM_JSON, conditional_json, problem
from bus.runtime import Agent
from bus.telemetry import Telemetry
from contracts.catalog import json_schema
from contracts.validation import describe_errors

PROBLEM_SCHEMA = {
    "title": "Problem",
    "description": "An RFC 9457 problem.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What went wrong and what to do next."},
    },
}
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    503: "Service unavailable",
}


def problem_response(description: str) -> dict:
    """An OpenAPI response entry whose body is a problem."""
    return {"description": description, "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def problem_json(status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {**problem(status, TITLES.get(status, "Error"), detail), **extra}
    return JSONResponse(body, status, headers=headers, media_type=PROBLEM_JSON)


def cacheable(request: Request, document: dict) -> Response:
    """`document` with an ETag; a matching `If-None-Match` gets a 304."""
    status, payload, headers = conditional_json(document, request.headers.get("if-none-match"))
    return Response(payload, status, headers=headers)


# Probes and scrapes: many a minute, about nothing; never a span.
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


def request_spans(telemetry: Telemetry) -> dict[str, Any]:
    """FastAPI's own request spans (SERVER, `{method} {route}`, a child of the caller's
    `traceparent`), on this service's tracer provider; none for probes, and none at all when
    tracing is off. Its metrics and logs stay off: /metrics and our log lines say it already."""
    return {
        "tracing": telemetry.traces,
        "tracer_provider": getattr(telemetry, "provider", None),
        "operation_spans": False,
        "metrics": False,
        "logs": False,
        "exclude": lambda scope: scope.get("path") in UNTRACED,
    }


def service_api(
    agent: Agent,
    *,
    title: str,
    description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """A FastAPI app that runs `agent` for its lifetime (then `lifespan`, if given, inside it),
    with the routes every service serves and problem+json for every error."""

    @asynccontextmanager
    async def run_agent(app: FastAPI) -> AsyncIterator[None]:
        async with agent.running():
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield

    api = FastAPIOffline(  # /docs and /redoc with their assets served from here, not from a CDN
        title=title,
        description=description,
        version=agent.card.version,
        lifespan=run_agent,
        telemetry=request_spans(agent.telemetry),
    )
    generate_openapi = api.openapi
    api.openapi = lambda: as_sent(generate_openapi())

    @api.exception_handler(StarletteHTTPException)  # ours, and Starlette's for unknown paths and methods
    async def http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if not isinstance(exc, HTTPException):  # Starlette's own, whose detail is only the status phrase
            detail = f"{request.method} {request.url.path[:200]}: {detail.lower()}; the API is described at /docs"
        return problem_json(exc.status_code, detail, headers=exc.headers)

    @api.exception_handler(Exception)  # a bug: a problem body, not Starlette's text/plain (still logged)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return problem_json(500, f"{request.method} {request.url.path[:200]} failed unexpectedly; see the service log")

    @api.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(describe_errors(exc.errors(), whole="", skip=1))  # skip `query`/`path`
        return problem_json(400, detail)

    @api.get("/.well-known/agent-card.json", summary=f"The {agent.name}'s own A2A card", responses=NOT_MODIFIED)
    async def well_known(request: Request) -> Response:
        return cacheable(request, agent.instance_card.to_wire())

    wire = [(s.subject, s.model) for s in agent.subscriptions] + agent.produces
    named = sorted({n for n in (contract_name(m) for _, m in wire) if n})

    if named:  # the card links each message it names to its schema here

        @api.get(
            "/schemas/{name}.json",
            summary="JSON Schema of a message on the card",
            responses={**NOT_MODIFIED, 404: problem_response("No message of that name is on this card.")},
        )
        async def schema(request: Request, name: str) -> Response:
            if name not in named:
                raise HTTPException(404, f"no message {name[:100]!r} on this card; it names {', '.join(named)}")
            return cacheable(request, json_schema(name))

    @api.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        daemon = getattr(agent, "daemon", None)  # a daemon agent says whether this instance is active
        return {"status": "ok", "service": agent.name, **(daemon.status() if daemon else {})}

    @api.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        body, content_type = await agent.metrics.exposition(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    @api.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        status, body = await agent.readiness()
        return JSONResponse(body, status, media_type=PROBLEM_JSON if status >= 400 else "application/json")

    return api


NOT_MODIFIED = {304: {"description": "Unchanged since the ETag sent in If-None-Match; no body."}}


def as_sent(schema: dict) -> dict:
    """FastAPI's OpenAPI document less the 422 it lists for every route with parameters (bad
    path or query input is answered 400 here; a route that does answer 422 for its body says so
    in its own `responses`, with the problem schema), with the problem schema the errors refer to."""
    for operation in (op for path in schema.get("paths", {}).values() for op in path.values()):
        responses = operation.get("responses", {})
        if "422" in responses and "$ref" not in str(responses["422"].get("content", {}).get(PROBLEM_JSON, "")):
            responses.pop("422")
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    return schema
