"""The gateway's HTTP routes: events in, the state of a revision out (polled, held or streamed),
and signed webhooks. Each route passes the door first (services/gateway/door.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from bus.api import problem_response
from services.gateway.bodies import read_body
from services.gateway.callers import READ_RELEASES, Caller, publish_scope
from services.gateway.door import Door, Refusal
from services.gateway.front import (
    IdempotencyConflict,
    InvalidEvent,
    Revision,
    UnknownEventType,
    parse_event,
    publishable_event_types,
)
from services.gateway.webhooks import (
    WebhookRefused,
    WebhookSources,
    find_source,
    first_delivery,
    forget_delivery,
    replay_window,
    verify,
)

EVENT_TYPE = r"^[a-z][a-z0-9_.-]{0,63}$"
DIGEST = r"^[0-9a-f]{64}$"
AUTH_ERRORS = {
    400: problem_response("A malformed path, query or header (`wait`, `Idempotency-Key`, `Last-Event-ID`…)."),
    401: problem_response("No credential, or one that is unknown, expired or revoked."),
    403: problem_response("The credential lacks the scope this route needs."),
    429: problem_response("Over the client's rate or held-request limit; retry after `Retry-After` seconds."),
    503: problem_response("The bus could not count the request against the limits; retry after `Retry-After`."),
}
BODY_ERRORS = {
    404: problem_response("No event type of that name may be published."),
    409: problem_response("The Idempotency-Key was used for other content."),
    413: problem_response("The body is over the configured limit."),
    415: problem_response("The body is not JSON."),
    422: problem_response("The body is not the contract; `errors` names each bad field."),
}
UNKNOWN_REVISION = {404: problem_response("No proposal with that release id and revision reached the gateway or bus.")}
STATUS_EXAMPLE = {
    "release_id": "rel-42",
    "revision": "3812ed07d3c8042d4676e44249798c26e7f850fbb3e62aa9325b5082d542347a",
    "state": "open",
    "expected": ["compliance", "security"],
    "reviews": [{"reviewer": "security", "verdict": "approve", "findings": 0, "event_id": "9f1c…"}],
    "waiting_for": ["compliance"],
    "deadline": "2026-11-27T10:00:30+00:00",
    "outcome": None,
    "links": {"self": "/v1/releases/rel-42/revisions/3812…", "events": "/v1/releases/rel-42/revisions/3812…/events"},
}


def gateway_routes(door: Door) -> APIRouter:
    router = APIRouter(prefix="/v1")
    front = door.front
    settings = door.settings

    async def status_or_404(revision: Revision) -> dict[str, Any]:
        status = await front.status(revision)
        if status is None:
            raise Refusal(
                404, f"no proposal of release {revision.release_id!r} with revision {revision.digest} is known"
            )
        return status

    async def answer(revision: Revision, wait: float | None) -> JSONResponse:
        """202 with the status URL; with `wait`, the outcome (200) if it comes in time, or 202 as
        soon as the release waits for a person (`state: awaiting_approval`, its approval linked)."""
        headers = {"Location": revision.path}
        heard = await front.settled(revision, min(wait, settings.gateway_wait_max_seconds)) if wait else None
        status = await front.status(revision, outcome=heard) or {**revision.as_dict(), "state": "submitted"}
        return JSONResponse(status, 200 if wait and status["state"] == "decided" else 202, headers=headers)

    @router.post(
        "/events/{event_type}",
        summary="Publish an event (a release proposal) on the bus",
        status_code=202,
        responses={
            200: {
                "description": "`?wait` was given and the outcome came in time.",
                "content": {"application/json": {"example": STATUS_EXAMPLE}},
            },
            202: {
                "description": "Accepted; `Location` is the status URL.",
                "content": {"application/json": {"example": STATUS_EXAMPLE}},
            },
            **AUTH_ERRORS,
            **BODY_ERRORS,
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReleaseProposed"}}},
            }
        },
    )
    async def publish_event(
        request: Request,
        event_type: Annotated[str, Path(pattern=EVENT_TYPE, description="`release.proposed`")],
        wait: Annotated[
            float | None,
            Query(
                ge=0, le=3600, description="Seconds to hold the request for the outcome (cut to the configured most)."
            ),
        ] = None,
        idempotency_key: Annotated[
            str | None,
            Header(
                min_length=1, max_length=255, description="Retries with the same key and content publish nothing new."
            ),
        ] = None,
    ) -> JSONResponse:
        if event_type not in publishable_event_types():
            raise Refusal(
                404,
                f"no event type {event_type!r} may be published; publishable: {', '.join(publishable_event_types())}",
            )
        caller = await door.admit(request.headers, publish_scope(event_type))
        body = await read_body(request, limit=settings.gateway_body_limit_bytes)
        proposal = _parse(event_type, body)
        if not wait:
            return await answer(await _submit(door, proposal, caller, idempotency_key), None)
        async with door.held(caller.client):  # refused before anything is published
            revision = await _submit(door, proposal, caller, idempotency_key)
            return await answer(revision, wait)

    @router.get(
        "/releases/{release_id}/revisions/{revision}",
        summary="The round of one revision so far, or its outcome",
        responses={
            200: {"content": {"application/json": {"example": STATUS_EXAMPLE}}},
            **AUTH_ERRORS,
            **UNKNOWN_REVISION,
        },
    )
    async def revision_status(
        request: Request,
        release_id: Annotated[str, Path(min_length=1, max_length=200)],
        revision: Annotated[str, Path(pattern=DIGEST, description="The content digest of the proposal.")],
    ) -> dict[str, Any]:
        await door.admit(request.headers, READ_RELEASES)
        return await status_or_404(Revision(release_id, revision))

    @router.get(
        "/releases/{release_id}/revisions/{revision}/events",
        summary="Server-Sent Events: each review as it is counted, then the outcome",
        description="Each `review` event has the position of the review as its id; reconnect with "
        "`Last-Event-ID` to resume exactly after it, on any gateway replica. The stream ends after the "
        "`outcome` event. Comments every few seconds keep proxies from closing an idle stream.",
        responses={200: {"content": {"text/event-stream": {}}}, **AUTH_ERRORS, **UNKNOWN_REVISION},
    )
    async def revision_events(
        request: Request,
        release_id: Annotated[str, Path(min_length=1, max_length=200)],
        revision: Annotated[str, Path(pattern=DIGEST)],
        last_event_id: Annotated[str | None, Header(max_length=64)] = None,
    ):
        caller = await door.admit(request.headers, READ_RELEASES)
        target = Revision(release_id, revision)
        after = _resume_point(last_event_id)
        await status_or_404(target)
        hold = door.held(caller.client)
        await hold.__aenter__()  # refused (429) before the stream starts; released when it ends

        async def events() -> AsyncIterator[ServerSentEvent]:
            try:
                if after is None:  # the outcome was the last event sent: nothing is left
                    return
                async for event in front.follow(target, after=after):
                    # the wait for a person has no id of its own: a resumed stream tells it again
                    event_id = None if event.kind == "approval" else event.id
                    yield ServerSentEvent(data=json.dumps(event.data), event=event.kind, id=event_id)
            finally:
                await hold.__aexit__(None, None, None)

        return EventSourceResponse(events(), ping=settings.gateway_sse_heartbeat_seconds)

    @router.post(
        "/webhooks/{source}",
        summary="A signed webhook from a configured source (Standard Webhooks or GitHub's HMAC)",
        status_code=202,
        responses={
            400: AUTH_ERRORS[400],
            401: problem_response("A missing or bad signature, or a timestamp outside the tolerance."),
            404: problem_response("No webhook source of that name is configured."),
            413: problem_response("The body is over the configured limit."),
            422: problem_response("The signed body is not the contract."),
            429: AUTH_ERRORS[429],
            503: AUTH_ERRORS[503],
        },
    )
    async def webhook(request: Request, source: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]) -> JSONResponse:
        sources: WebhookSources = request.app.state.webhook_sources
        tolerance = settings.gateway_webhook_tolerance_seconds
        try:  # the signature before anything else: an unsigned body is never even parsed
            configured = find_source(sources, source)
            body = await read_body(request, limit=settings.gateway_body_limit_bytes, require_json=False)
            delivery = verify(configured, request.headers, body, tolerance=tolerance)
        except WebhookRefused as exc:
            raise Refusal(exc.status, exc.detail) from None
        caller = Caller(id=f"webhook:{source}", scopes=frozenset({publish_scope(configured.event_type)}))
        proposal = _parse(configured.event_type, body)
        revision = Revision(proposal.release_id, proposal.content_digest)
        kv = await front.gateway_kv()
        window = replay_window(configured, tolerance=tolerance, github=settings.gateway_webhook_replay_seconds)
        if not await first_delivery(kv, source, delivery, ttl=window):
            # A 2xx, so the sender stops retrying; nothing is published again, and a replay does not
            # count against the source's rate (or one captured delivery could keep it at 429).
            return JSONResponse(
                {**revision.as_dict(), "state": "duplicate", "detail": f"delivery {delivery} was received before"},
                202,
                headers={"Location": revision.path},
            )
        try:
            await door.count(caller.client)
            submitted = await _submit(door, proposal, caller, None)
        except BaseException:
            await forget_delivery(kv, source, delivery)  # the sender's retry must be taken, not refused
            raise
        return await answer(submitted, None)

    return router


def _parse(event_type: str, body: bytes):
    try:
        return parse_event(event_type, body)
    except UnknownEventType:
        raise Refusal(404, f"no event type {event_type!r} may be published") from None
    except InvalidEvent as exc:
        raise Refusal(422, f"the body is not a valid {event_type}: {exc}", extra={"errors": exc.errors}) from None


async def _submit(door: Door, proposal, caller: Caller, idempotency_key: str | None) -> Revision:
    try:
        accepted = await door.front.submit(proposal, caller=caller, idempotency_key=idempotency_key)
    except IdempotencyConflict as exc:
        raise Refusal(409, str(exc)) from None
    return accepted.revision


def _resume_point(last_event_id: str | None) -> int | None:
    """Where a stream resumes: after the n-th review (0: from the start); None after the outcome."""
    if last_event_id is None or last_event_id == "":
        return 0
    if last_event_id == "outcome":
        return None
    if last_event_id.isascii() and last_event_id.isdigit():  # not `²`: str.isdigit takes it, int() does not
        return int(last_event_id)
    raise Refusal(400, f"Last-Event-ID {last_event_id[:64]!r} is not an id this stream sent (a number or `outcome`)")
