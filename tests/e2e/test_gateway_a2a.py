"""The gateway's A2A front door, end to end: the official a2a-sdk client, over real HTTP, against
gateway replicas (uvicorn apps with `mount_a2a`, each with its own NATS connection), the real
reviewers and coordinator as processes, and a real nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping

import httpx
import pytest
import uvicorn
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.client.errors import A2AClientError
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import InvalidParamsError, TaskNotCancelableError, TaskNotFoundError
from fastapi import FastAPI
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.struct_pb2 import Value

from bus.connect import connect
from bus.ops.admin import pause, resume
from bus.ops.embedded import free_port
from bus.provision import provision
from contracts.cards import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from contracts.releases import ReleaseProposed
from services.gateway.a2a import mount_a2a
from services.gateway.callers import READ_RELEASES, Caller, publish_scope
from services.gateway.front import Front, Revision
from tests.e2e.support import SAMPLES, eventually, stream_messages

ALL = ["security", "compliance", "coordinator"]
PUBLISHER = Caller("key:ci-pipeline", frozenset({publish_scope("release.proposed"), READ_RELEASES}))
READER = Caller("key:dashboard", frozenset({READ_RELEASES}))
TOKENS = {"publisher-token": PUBLISHER, "reader-token": READER}
COMPLETED, WORKING = TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_WORKING


class Unauthenticated(Exception):
    """Stands in for the gateway's own (services/gateway/auth.py): a `detail` makes it a 401."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


async def authenticate(headers: Mapping[str, str]) -> Caller:
    token = headers.get("authorization", "").removeprefix("Bearer ")
    if token not in TOKENS:
        raise Unauthenticated("send Authorization: Bearer <token>")
    return TOKENS[token]


def gateway_card(base: str) -> dict:
    return AgentCard(
        name="gateway",
        description="The mesh's front door.",
        version="test",
        supported_interfaces=[AgentInterface(url=f"{base}/a2a", protocol_binding="JSONRPC", protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=True),
        skills=[AgentSkill(id="release.propose", name="Propose a release", description="Review it.", tags=["gateway"])],
        security_schemes={"bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer", "bearerFormat": "API key"}}},
        security_requirements=[{"schemes": {"bearer": {"list": []}}}],
    ).to_wire()


@contextlib.asynccontextmanager
async def gateway_replica(settings, name: str) -> AsyncIterator[str]:
    """One gateway replica on a free port, with its own NATS connection; its URL while it runs."""
    nc = await connect(settings, name=name)
    front = Front(nc, settings)
    base = f"http://127.0.0.1:{free_port()}"
    app = FastAPI()
    app.get("/.well-known/agent-card.json")(lambda: gateway_card(base))
    mount_a2a(app, front=lambda: front, authenticate=authenticate, card=lambda: gateway_card(base))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=int(base.rsplit(":", 1)[1]), log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        yield base
    finally:
        server.should_exit = True
        await serving
        await app.state.a2a.aclose()
        await nc.close()


@pytest.fixture
async def replicas(settings) -> AsyncIterator[Callable]:
    """`await replicas(n)`: n gateway replicas, stopped after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(n: int) -> list[str]:
            return [await stack.enter_async_context(gateway_replica(settings, f"gateway-{i}")) for i in range(n)]

        yield start


@pytest.fixture
async def a2a() -> AsyncIterator[Callable]:
    """`await a2a(base, token, streaming=...)`: an a2a-sdk client made by ClientFactory from the
    card fetched over HTTP, sending `Authorization: Bearer <token>` (nothing without a token)."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(base: str, token: str | None, *, streaming: bool = False):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            http = await stack.enter_async_context(httpx.AsyncClient(headers=headers, timeout=30))
            card = await A2ACardResolver(http, base).get_agent_card()
            return ClientFactory(ClientConfig(streaming=streaming, httpx_client=http)).create(card)

        yield make


@pytest.fixture
async def mesh(settings, launch):
    return await asyncio.to_thread(launch, settings, ALL)


@pytest.fixture
async def bus_only(settings):
    """The streams and buckets, with no service running: nothing will review anything."""
    nc = await connect(settings, name="provision")
    try:
        await provision(nc.jetstream(), settings, reconcile=False)
    finally:
        await nc.close()


def proposal(sample: str, release_id: str) -> dict:
    """A sample from contracts/samples, as JSON, under a release id of its own."""
    return {**json.loads((SAMPLES / f"{sample}.json").read_text()), "release_id": release_id}


def sending(body: dict, *, return_immediately: bool = False) -> SendMessageRequest:
    """A message with one data part holding `body` (the release.proposed contract)."""
    part = Part(data=ParseDict(body, Value()), media_type="application/json")
    request = SendMessageRequest(message=Message(message_id=uuid.uuid4().hex, role=Role.ROLE_USER, parts=[part]))
    request.configuration.return_immediately = return_immediately
    return request


async def sent(client, request: SendMessageRequest) -> Task:
    """The task a (non-streaming) SendMessage answers with."""
    responses = [response async for response in client.send_message(request)]
    assert len(responses) == 1 and responses[0].HasField("task")
    return responses[0].task


def outcome_in(task: Task) -> dict:
    (artifact,) = task.artifacts
    assert artifact.artifact_id == "outcome"
    return MessageToDict(artifact.parts[0].data)


async def proposals_on_the_bus(settings) -> list[bytes]:
    return await stream_messages(settings.nats_url, settings.subjects.events_stream, settings.subjects.release_proposed)


async def revision_status(settings, body: dict) -> dict | None:
    """What the bus knows of the revision `body` would be (None: nobody ever proposed it)."""
    nc = await connect(settings, name="checker")
    try:
        p = ReleaseProposed.model_validate(body)
        return await Front(nc, settings).status(Revision(p.release_id, p.content_digest))
    finally:
        await nc.close()


async def test_proposals_complete_with_their_outcomes_and_every_replica_tells_them_to_their_caller(mesh, replicas, a2a):
    """SendMessage answers a completed task with the outcome as its artifact: approved for
    release_clean, blocked for release_secret (a committed credential). GetTask and ListTasks on
    another replica return the same tasks, to their caller only."""
    first, second = await replicas(2)
    client = await a2a(first, "publisher-token")

    clean, secret = await asyncio.gather(
        sent(client, sending(proposal("release_clean", "rel-a2a-clean"))),
        sent(client, sending(proposal("release_secret", "rel-a2a-secret"))),
    )

    assert (clean.status.state, secret.status.state) == (COMPLETED, COMPLETED)
    approved, blocked = outcome_in(clean), outcome_in(secret)
    assert (approved["release_id"], approved["outcome"]) == ("rel-a2a-clean", "approved")
    assert (blocked["release_id"], blocked["outcome"]) == ("rel-a2a-secret", "blocked")
    assert "security" in blocked["reason"]
    assert MessageToDict(clean.metadata)["release_id"] == "rel-a2a-clean"
    assert clean.status.message.parts[0].text == approved["reason"]

    elsewhere = await a2a(second, "publisher-token")
    again = await elsewhere.get_task(GetTaskRequest(id=clean.id))
    assert (again.id, again.context_id, again.status.state) == (clean.id, clean.context_id, COMPLETED)
    assert outcome_in(again) == approved
    listed = await elsewhere.list_tasks(ListTasksRequest(include_artifacts=True))
    assert {t.id: outcome_in(t)["outcome"] for t in listed.tasks} == {clean.id: "approved", secret.id: "blocked"}

    stranger = await a2a(second, "reader-token")
    with pytest.raises(TaskNotFoundError):
        await stranger.get_task(GetTaskRequest(id=clean.id))
    assert list((await stranger.list_tasks(ListTasksRequest())).tasks) == []


async def test_a_streamed_proposal_goes_from_working_to_completed(mesh, replicas, a2a):
    """SendStreamingMessage streams the task, a working update per review, the outcome artifact,
    and last the completed status."""
    (base,) = await replicas(1)
    client = await a2a(base, "publisher-token", streaming=True)

    states, artifacts = [], []
    async for response in client.send_message(sending(proposal("release_clean", "rel-a2a-stream"))):
        if response.HasField("task"):
            states.append(response.task.status.state)
        elif response.HasField("status_update"):
            states.append(response.status_update.status.state)
        elif response.HasField("artifact_update"):
            artifacts.append(MessageToDict(response.artifact_update.artifact.parts[0].data))

    assert states == [TaskState.TASK_STATE_SUBMITTED, WORKING, WORKING, COMPLETED]  # one working per review
    assert [a["outcome"] for a in artifacts] == ["approved"]


async def test_a_round_outlives_its_replica_and_cannot_be_cancelled(mesh, settings, replicas, a2a):
    """A task sent to one replica, which then stops, is followed to its outcome by a subscriber on
    another (its state is the round's, on the bus); CancelTask is refused while it runs."""
    nc = await connect(settings, name="operator")
    await pause(nc, settings, "compliance", until=None, by="test")  # the round waits for compliance
    try:
        async with gateway_replica(settings, "doomed") as doomed:
            client = await a2a(doomed, "publisher-token")
            body = proposal("release_clean", "rel-a2a-outlives")
            task = await sent(client, sending(body, return_immediately=True))
        (survivor,) = await replicas(1)
        other = await a2a(survivor, "publisher-token", streaming=True)

        async def reviewed_by_security():
            status = await revision_status(settings, body)
            return status is not None and [r["reviewer"] for r in status.get("reviews", [])] == ["security"]

        assert await eventually(reviewed_by_security, timeout=10)
        assert (await other.get_task(GetTaskRequest(id=task.id))).status.state == WORKING
        with pytest.raises(TaskNotCancelableError, match="cannot be cancelled"):
            await other.cancel_task(CancelTaskRequest(id=task.id))

        states = []
        async for response in other.subscribe(SubscribeToTaskRequest(id=task.id)):
            if response.HasField("task"):
                states.append(response.task.status.state)
                await resume(nc, settings, "compliance", by="test")
            elif response.HasField("status_update"):
                states.append(response.status_update.status.state)
    finally:
        await resume(nc, settings, "compliance", by="test")
        await nc.close()

    assert states == [WORKING, WORKING, COMPLETED]  # as it stood (security's review), compliance's, the outcome
    final = await other.get_task(GetTaskRequest(id=task.id))
    assert outcome_in(final)["outcome"] == "approved"


async def test_a_blocking_send_is_answered_at_the_longest_wait_with_the_task_as_it_stands(bus_only, make_settings, a2a):
    """With nobody to review the proposal, a blocking SendMessage is answered after the gateway's
    longest wait (1 s here) with the task as it stands, submitted: no request is held past it."""
    impatient = make_settings(gateway_wait_max_seconds=1.0)
    async with gateway_replica(impatient, "impatient") as base:
        client = await a2a(base, "publisher-token")
        started = time.monotonic()
        task = await sent(client, sending(proposal("release_clean", "rel-a2a-held")))
        held = time.monotonic() - started

    assert task.status.state == TaskState.TASK_STATE_SUBMITTED
    assert MessageToDict(task.metadata)["release_id"] == "rel-a2a-held"
    assert 1.0 <= held < 3.0


async def test_callers_without_a_credential_or_the_scope_are_refused_and_nothing_is_published(
    bus_only, settings, replicas, a2a
):
    """No credential, or an unknown one, is a 401; a credential without the publish scope is a
    403; a body over the limit is a 413; the revision is unknown on the bus afterwards."""
    (base,) = await replicas(1)
    body = proposal("release_clean", "rel-a2a-refused")

    for token, status in [(None, 401), ("forged-token", 401), ("reader-token", 403)]:
        client = await a2a(base, token)
        with pytest.raises(A2AClientError, match=f"HTTP Error {status}"):
            await sent(client, sending(body))
    huge = {**body, "description": "x" * settings.gateway_body_limit_bytes}
    async with httpx.AsyncClient(headers={"Authorization": "Bearer publisher-token"}) as http:
        request = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": MessageToDict(sending(huge))}
        too_big = await http.post(f"{base}/a2a", json=request, headers={"A2A-Version": "1.0"})
    assert too_big.status_code == 413
    assert too_big.headers["content-type"] == "application/problem+json"

    assert await revision_status(settings, body) is None
    assert await proposals_on_the_bus(settings) == []


async def test_an_invalid_proposal_is_invalid_params_naming_each_field(bus_only, settings, replicas, a2a):
    """A data part that is not the contract is a JSON-RPC invalid-params error naming each bad
    field, and nothing is published."""
    (base,) = await replicas(1)
    client = await a2a(base, "publisher-token")
    body = {"release_id": "rel-a2a-invalid", "version": 7}

    with pytest.raises(InvalidParamsError) as refused:
        await sent(client, sending(body))

    assert "service: Field required" in str(refused.value)
    assert {e["field"] for e in refused.value.data["errors"]} == {"service", "version"}
    assert await proposals_on_the_bus(settings) == []
