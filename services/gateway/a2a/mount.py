"""The A2A JSON-RPC endpoint on the gateway's app: the door (who is calling, may they call this
method, is the body within the limit), then the SDK's JSON-RPC dispatcher and our handler.

Authentication is HTTP's business in A2A (the spec puts it on the transport): a request without
a valid credential is a 401 and one without the method's scope a 403, answered as problems like
every other gateway route, before any JSON-RPC is dispatched.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

from a2a.server.routes import add_a2a_routes_to_fastapi, create_jsonrpc_routes
from a2a.types.a2a_pb2 import AgentCard
from fastapi import FastAPI
from google.protobuf.json_format import ParseDict
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bus.api import problem_json
from services.gateway.a2a.handler import GatewayRequestHandler
from services.gateway.a2a.users import CALLER, CallerContextBuilder
from services.gateway.approvals import DECIDE_APPROVALS, Approvals
from services.gateway.callers import READ_RELEASES, Caller, publish_scope
from services.gateway.front import Front

PUBLISH = publish_scope("release.proposed")
# The scope each JSON-RPC method needs; any other method needs READ_RELEASES. A message to an
# existing task (an answer to its input-required state) needs DECIDE_APPROVALS instead.
SCOPES = {"SendMessage": PUBLISH, "SendStreamingMessage": PUBLISH}
BEARER = {"WWW-Authenticate": 'Bearer realm="agent-mesh"'}


def mount_a2a(
    app: FastAPI,
    *,
    path: str = "/a2a",
    front: Callable[[], Front],
    authenticate: Callable[[Mapping[str, str]], Awaitable[Caller]],
    card: Callable[[], dict],
    held: Callable[[str], AbstractAsyncContextManager[None]] | None = None,
    approvals: Callable[[], Approvals] | None = None,
) -> None:
    """Serve A2A JSON-RPC at `path` on `app`. `held(client)` takes one of the client's places for
    a held request (the gateway's cap, shared with `?wait` and event streams) for as long as a
    blocking send, a stream or a subscription is answered; it raises a refusal when none is free. `front` and `card` are read at the first request
    (the connection and the card exist once the app runs); `authenticate` takes lower-cased
    headers and returns the caller, or raises an exception with a `detail` (a 401).

    `app.state.a2a` is the endpoint: `await app.state.a2a.aclose()` at shutdown stops the rounds
    this replica is following (they go on, on the bus, and any replica can tell them)."""
    endpoint = A2AEndpoint(front=front, authenticate=authenticate, card=card, held=held, approvals=approvals)
    add_a2a_routes_to_fastapi(app, jsonrpc_routes=[Route(path, endpoint.handle, methods=["POST"])])
    app.state.a2a = endpoint


class A2AEndpoint:
    """The door, then the SDK; built at the first request."""

    def __init__(
        self,
        *,
        front: Callable[[], Front],
        authenticate: Callable[[Mapping[str, str]], Awaitable[Caller]],
        card: Callable[[], dict],
        held: Callable[[str], AbstractAsyncContextManager[None]] | None = None,
        approvals: Callable[[], Approvals] | None = None,
    ) -> None:
        self._held = held
        self._approvals = approvals
        self._front = front
        self._authenticate = authenticate
        self._card = card
        self.handler: GatewayRequestHandler | None = None
        self._dispatch: Callable[[Request], Awaitable[Response]] | None = None

    def _ready(self) -> Callable[[Request], Awaitable[Response]]:
        if self._dispatch is None:
            settings = self._front().settings
            self.handler = GatewayRequestHandler(
                front=self._front,
                card=ParseDict(self._card(), AgentCard(), ignore_unknown_fields=True),
                max_wait=settings.gateway_wait_max_seconds,
                approvals=self._approvals,
            )
            (route,) = create_jsonrpc_routes(self.handler, rpc_url="/", context_builder=CallerContextBuilder())
            self._dispatch = route.endpoint
        return self._dispatch

    async def handle(self, request: Request) -> Response:
        """A2A JSON-RPC 2.0 (`SendMessage`, `SendStreamingMessage`, `GetTask`, `SubscribeToTask`,
        `CancelTask`, `ListTasks`); needs `Authorization` and the `A2A-Version: 1.0` header."""
        dispatch = self._ready()
        try:
            caller = await self._authenticate(request.headers)  # lower-case keys; duplicates visible
        except Exception as exc:
            if not hasattr(exc, "detail"):
                raise
            return refusal(exc)
        limit = self._front().settings.gateway_body_limit_bytes
        body = await read_at_most(request, limit)
        if body is None:
            return problem_json(413, f"the body is over {limit} bytes, the most accepted")
        scope = scope_of(body)
        if not caller.allows(scope):
            return problem_json(403, f"{caller.id} lacks the scope {scope!r}; ask for a credential that grants it")
        replay = Request(request.scope, receive=replaying(body))
        setattr(replay.state, CALLER, caller)  # read by CallerContextBuilder
        if self._held is None or not holds_open(body):
            return await dispatch(replay)
        place = AsyncExitStack()
        try:
            await place.enter_async_context(self._held(caller.client))
        except Exception as exc:
            if not hasattr(exc, "detail"):
                raise
            return refusal(exc)
        try:
            response = await dispatch(replay)
        except BaseException:
            await place.aclose()
            raise
        # given back once the answer is sent, streamed ones included (a place a dying replica
        # never gives back frees itself when its lease ends)
        after = response.background

        async def finished() -> None:
            try:
                if after is not None:
                    await after()
            finally:
                await place.aclose()

        response.background = BackgroundTask(finished)
        return response

    async def aclose(self) -> None:
        """Stop following rounds (each is still on the bus; any replica tells it)."""
        if self.handler is not None:
            await self.handler.aclose()


def refusal(exc: Exception) -> Response:
    """The problem an authentication failure is: its status (401 unless it says), its detail."""
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None) or 401
    headers = dict(getattr(exc, "headers", None) or {})
    if status == 401:
        headers = {**BEARER, **headers}
    return problem_json(status, str(exc.detail), headers=headers)


def scope_of(body: bytes) -> str:
    """The scope a JSON-RPC request needs: by its method, and for a message to an existing task
    (a person's decision) the scope to decide approvals."""
    method = method_of(body) or ""
    if method in SCOPES and _task_of(body):
        return DECIDE_APPROVALS
    return SCOPES.get(method, READ_RELEASES)


def _task_of(body: bytes) -> str | None:
    params = json.loads(body).get("params")
    message = params.get("message") if isinstance(params, dict) else None
    task = (message.get("taskId") or message.get("task_id")) if isinstance(message, dict) else None
    return task if isinstance(task, str) and task else None


def holds_open(body: bytes) -> bool:
    """Whether answering this request holds it open: a stream, a subscription, or a SendMessage
    that waits for the task to finish (not `returnImmediately`)."""
    method = method_of(body)
    if method in ("SendStreamingMessage", "SubscribeToTask"):
        return True
    if method != "SendMessage":
        return False
    params = json.loads(body).get("params")
    configuration = params.get("configuration") if isinstance(params, dict) else None
    return not (isinstance(configuration, dict) and configuration.get("returnImmediately") is True)


def method_of(body: bytes) -> str | None:
    """The JSON-RPC method a body asks for; None for anything the SDK will refuse anyway."""
    try:
        message: Any = json.loads(body)
    except ValueError:
        return None
    method = message.get("method") if isinstance(message, dict) else None
    return method if isinstance(method, str) else None


async def read_at_most(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to be over `limit` bytes (never buffered past it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def replaying(body: bytes) -> Callable[[], Awaitable[dict]]:
    """An ASGI `receive` that gives `body` once: the request again, for the SDK to read."""
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
