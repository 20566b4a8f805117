"""Human approval end to end: the real reviewers, coordinator, gateway and approvals notifier as
processes on their own identities, a real nats-server, real HTTP — and people deciding over the
gateway's API, the CLI and A2A.

The offline compliance reviewer asks for a human when a customer-facing release changes no
CHANGELOG (`CMP010`): that release waits for a person here.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import uuid
from contextlib import asynccontextmanager

import httpx
import nats
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import Message, Part, Role, SendMessageRequest, TaskState
from a2a.utils.errors import UnsupportedOperationError
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.struct_pb2 import Value

from bus.ops.chaos.proposals import release
from bus.ops.identities import OPERATOR, generate_for_mesh
from bus.ops.launcher import start_mesh
from bus.ops.settings import MeshSettings
from contracts.outcomes import RoundDecided
from services.gateway.api_keys import issue_key
from tests.e2e.support import SAMPLES, eventually, mesh_settled, stream_messages
from tests.services.digest.receiver import WebhookReceiver

NAMES = ["security", "compliance", "coordinator", "gateway", "approvals"]
APPROVERS = "default=key:alice,key:bob,operator:ops;label:payments=key:alice,key:carol"
DECIDE = ["approvals:read", "approvals:decide", "releases:read", "events:release.proposed:publish"]


@pytest.fixture(scope="module")
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def mesh(nats_url, gatekeeper, tmp_path_factory, hook):
    """The review mesh with approvers: alice, bob and the operator `ops` for any release; alice and
    carol for `payments` ones, which need both (two-person rule)."""
    home = tmp_path_factory.mktemp("approvals")
    settings = MeshSettings(nats_url=nats_url, namespace=f"t{uuid.uuid4().hex[:10]}", home=home)
    keys = {name: issue_key(settings.api_keys_path, name, DECIDE) for name in ("alice", "bob", "carol", "mallory")}
    keys["reader"] = issue_key(settings.api_keys_path, "reader", ["approvals:read", "releases:read"])
    keys["ci"] = issue_key(settings.api_keys_path, "ci", ["events:release.proposed:publish", "releases:read"])
    identities = gatekeeper.admit(generate_for_mesh(settings, home / "identities", names=NAMES)) if gatekeeper else None
    env = {
        "MESH_APPROVERS": APPROVERS,
        "MESH_TWO_PERSON_RULE": "label:payments",
        "MESH_APPROVAL_DEADLINE_SECONDS": "600",
        "MESH_APPROVALS_WEBHOOK_URL": hook.url,
        "MESH_GATEWAY_APPROVAL_WAIT_SECONDS": "3",
    }
    running = start_mesh(settings, names=NAMES, home=home, embedded=False, identities=identities, env=env)
    yield running, keys, identities
    running.stop()


def gateway(running) -> str:
    return next(s.url for s in running.services if s.name == "gateway")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def unlogged(**changes) -> dict:
    """A customer-facing release that changes no CHANGELOG: compliance asks for a human."""
    proposal = release("unlogged", f"rel-{uuid.uuid4().hex[:8]}", random.Random(0))
    return {**json.loads(proposal.model_dump_json()), **changes}


@asynccontextmanager
async def http():
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def escalated(client: httpx.AsyncClient, running, keys, body: dict) -> tuple[str, dict]:
    """Post `body` through the gateway and wait until its revision waits for a person; (status URL, status)."""
    base = gateway(running)
    posted = await client.post(f"{base}/v1/events/release.proposed", json=body, headers=bearer(keys["ci"]))
    assert posted.status_code == 202, posted.text
    location = posted.headers["location"]

    async def waiting():
        status = (await client.get(base + location, headers=bearer(keys["ci"]))).json()
        return status if status["state"] == "awaiting_approval" else None

    status = await eventually(waiting, timeout=20)
    assert status is not None, "the revision never waited for a person"
    return location, status


@asynccontextmanager
async def outcomes_on_the_wire(running, release_id: str):
    """Every outcome of `release_id` a core NATS subscriber sees, as a growing list."""
    nc = await nats.connect(running.nats_url)
    seen: list[RoundDecided] = []

    async def record(msg) -> None:
        seen.append(RoundDecided.model_validate_json(msg.data))

    await nc.subscribe(running.settings.subjects.outcomes_of(release_id), cb=record)
    try:
        yield seen
    finally:
        await nc.close()


async def coordinator_settled(running) -> None:
    """The positive signal before asserting no second outcome: every coordinator consumer has acked
    all it was given (an outcome is published before the ack); then a moment for the core
    subscriber's callback, which the server sent the outcome to before it was even stored."""
    await mesh_settled(running.settings, ["coordinator"])
    await asyncio.sleep(0.2)


async def stored_outcomes(running, release_id: str) -> list[RoundDecided]:
    s = running.settings.subjects
    return [
        RoundDecided.model_validate_json(data)
        for data in await stream_messages(running.nats_url, s.outcomes_stream, s.outcomes_of(release_id))
    ]


def mesh_cli(running, identities, *args: str) -> subprocess.CompletedProcess:
    """`mesh …` as the operator runs it: with the operator's NATS identity."""
    env = {
        **os.environ,
        "MESH_NATS_URL": running.nats_url,
        "MESH_NAMESPACE": running.settings.namespace,
        "MESH_HOME": str(running.home),
        "COLUMNS": "250",
    }
    if identities:
        env["MESH_NATS_CREDENTIALS"] = str(identities.credential(OPERATOR))
    return subprocess.run(
        [sys.executable, "-m", "bus.ops.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


# --- the HTTP API ------------------------------------------------------------------------------


async def test_an_escalated_release_waits_and_an_approver_approves_it_over_http(mesh, hook):
    """needs_human -> `awaiting_approval` (status document, list, webhook notice with the page
    link) -> refused for a non-approver (403) and a reader (403) -> approved by alice (200) ->
    exactly one approved outcome, in the stream and on the wire; bob after it is refused (409)."""
    running, keys, _ = mesh
    base = gateway(running)
    body = unlogged()
    async with http() as client, outcomes_on_the_wire(running, body["release_id"]) as seen:
        location, status = await escalated(client, running, keys, body)
        approval = status["approval"]
        assert status["outcome"] is None and approval["approvers"] == ["key:alice", "key:bob", "operator:ops"]
        assert status["links"]["approval"] == f"/v1/approvals/{approval['id']}"

        listed = (await client.get(f"{base}/v1/approvals", headers=bearer(keys["reader"]))).json()
        assert approval["id"] in [a["id"] for a in listed["approvals"]]
        one = (await client.get(f"{base}/v1/approvals/{approval['id']}", headers=bearer(keys["reader"]))).json()
        assert one["state"] == "pending" and one["needed"] == 1
        assert [(f["rule"], f["reviewer"]) for f in one["findings"]] == [("CMP010", "compliance")]
        assert "compliance" in one["rationales"] and one["links"]["page"] == f"/approvals/{approval['id']}"

        notice = await eventually(
            lambda: asyncio.sleep(0, result=[b for b in hook.bodies if approval["id"] in json.dumps(b)]), timeout=10
        )
        assert notice and notice[0]["text"].startswith(f"Approval needed: {body['release_id']}")
        assert f"{base}/approvals/{approval['id']}" in notice[0]["text"]

        decide = f"{base}{approval['links']['decision']}"
        stranger = await client.post(decide, json={"decision": "approve"}, headers=bearer(keys["mallory"]))
        reader = await client.post(decide, json={"decision": "approve"}, headers=bearer(keys["reader"]))
        bad = await client.post(decide, json={"decision": "maybe"}, headers=bearer(keys["alice"]))
        assert stranger.status_code == 403 and "key:mallory may not decide" in stranger.json()["detail"]
        assert stranger.headers["content-type"] == "application/problem+json"
        assert reader.status_code == 403 and "approvals:decide" in reader.json()["detail"]
        assert bad.status_code == 422

        approved = await client.post(
            decide, json={"decision": "approve", "note": "changelog is in the wiki"}, headers=bearer(keys["alice"])
        )
        assert approved.status_code == 200, approved.text
        answer = approved.json()
        assert answer["accepted"] and answer["approval"]["state"] == "approved"
        assert answer["approval"]["outcome"]["outcome"] == "approved"

        late = await client.post(decide, json={"decision": "reject"}, headers=bearer(keys["bob"]))
        assert late.status_code == 409 and "settled" in late.json()["detail"]

        decided = (await client.get(base + location, headers=bearer(keys["ci"]))).json()
        await eventually(lambda: asyncio.sleep(0, result=bool(seen)), timeout=5)
        await coordinator_settled(running)  # a second outcome would be here by now
        stored = await stored_outcomes(running, body["release_id"])
    assert decided["state"] == "decided" and decided["outcome"]["outcome"] == "approved"
    assert len(stored) == 1 and len(seen) == 1
    outcome = stored[0]
    assert outcome.decided_by == "people" and sorted(r.reviewer for r in outcome.reviews) == ["compliance", "security"]
    assert [(d.who, d.decision, d.note, d.via) for d in outcome.human_decisions] == [
        ("key:alice", "approve", "changelog is in the wiki", "http")
    ]


async def test_the_two_person_rule_needs_two_different_approvers_and_the_outcome_lists_both(mesh):
    """A `payments` release: alice's approval is taken and waits for another (202); alice again is
    refused (409); carol's approval approves it, and the outcome lists both."""
    running, keys, _ = mesh
    body = unlogged(labels=["backend", "customer-facing", "payments"])
    async with http() as client:
        _, status = await escalated(client, running, keys, body)
        approval = status["approval"]
        assert approval["needed"] == 2 and approval["approvers"] == ["key:alice", "key:carol"]
        decide = f"{gateway(running)}{approval['links']['decision']}"

        first = await client.post(decide, json={"decision": "approve"}, headers=bearer(keys["alice"]))
        again = await client.post(decide, json={"decision": "approve"}, headers=bearer(keys["alice"]))
        bob = await client.post(decide, json={"decision": "approve"}, headers=bearer(keys["bob"]))
        second = await client.post(decide, json={"decision": "approve", "note": "ok"}, headers=bearer(keys["carol"]))

    assert first.status_code == 202 and first.json()["accepted"] and first.json()["approval"]["state"] == "pending"
    assert again.status_code == 409 and "second decision" in again.json()["detail"]
    assert bob.status_code == 403  # not in the payments group
    assert second.status_code == 200 and second.json()["approval"]["state"] == "approved"
    (outcome,) = await stored_outcomes(running, body["release_id"])
    assert outcome.outcome == "approved" and [d.who for d in outcome.human_decisions] == ["key:alice", "key:carol"]


# --- the operator's CLI ------------------------------------------------------------------------


async def test_the_operator_lists_rejects_and_audits_from_the_cli(mesh):
    """`mesh approvals list` shows the pending approval; `mesh reject --as ops` blocks it (exit 0,
    the outcome printed); a second decision is refused (exit 1); `mesh audit` lists the request,
    the decision and the refusal, with who and when."""
    running, keys, identities = mesh
    body = unlogged()
    rid = body["release_id"]
    async with http() as client:
        _, status = await escalated(client, running, keys, body)

    listed = await asyncio.to_thread(mesh_cli, running, identities, "approvals", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert status["approval"]["id"] in [a["id"] for a in json.loads(listed.stdout)]

    rejected = await asyncio.to_thread(
        mesh_cli, running, identities, "reject", rid, "--note", "no changelog for customers", "--as", "ops"
    )
    assert rejected.returncode == 0, rejected.stdout + rejected.stderr
    assert "rejected as operator:ops" in rejected.stdout and f"BLOCKED {rid}" in rejected.stdout

    again = await asyncio.to_thread(mesh_cli, running, identities, "approve", rid, "--note", "oops", "--as", "ops")
    assert again.returncode == 1 and "refused (409)" in again.stderr

    stranger = await asyncio.to_thread(mesh_cli, running, identities, "approve", rid, "--note", "me too")
    assert stranger.returncode == 1 and "refused (403)" in stranger.stderr  # operator:<user>@<host> is no approver

    audit = await asyncio.to_thread(mesh_cli, running, identities, "audit", "--release", rid, "--json")
    assert audit.returncode == 0, audit.stderr
    records = [(r["kind"], r["who"]) for r in json.loads(audit.stdout)]
    assert records[:2] == [("requested", "coordinator"), ("decided", "operator:ops")]
    assert ("refused", "operator:ops") in records and len(records) == 4
    table = await asyncio.to_thread(mesh_cli, running, identities, "audit", "--release", rid)
    assert "no changelog for customers" in table.stdout
    (outcome,) = await stored_outcomes(running, rid)
    assert outcome.outcome == "blocked" and outcome.human_decisions[0].via == "cli"


async def test_a_waiting_post_answers_as_soon_as_the_release_waits_for_a_person(mesh):
    """`POST …?wait=60` does not hold the caller for the full minute when the release goes to a
    person: it answers 202 with `state: awaiting_approval` and the approval's links soon after
    the reviews, and 200 with the outcome for a release decided at once."""
    running, keys, _ = mesh
    base = gateway(running)
    async with http() as client:
        started = asyncio.get_running_loop().time()
        posted = await client.post(
            f"{base}/v1/events/release.proposed?wait=60", json=unlogged(), headers=bearer(keys["ci"]), timeout=90
        )
        took = asyncio.get_running_loop().time() - started
        assert posted.status_code == 202, posted.text
        status = posted.json()
        assert status["state"] == "awaiting_approval" and status["approval"]["links"]["page"].startswith("/approvals/")
        assert took < 30, f"held {took:.1f} s for a release that waits for a person"

        clean = json.loads((SAMPLES / "release_clean.json").read_text())
        clean["release_id"] = f"rel-{uuid.uuid4().hex[:8]}"
        decided = await client.post(
            f"{base}/v1/events/release.proposed?wait=60", json=clean, headers=bearer(keys["ci"]), timeout=90
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["outcome"]["outcome"] == "approved"


def test_publish_wait_stops_at_an_approval_and_says_how_to_decide(mesh):
    """`mesh publish --wait` exits 3 as soon as the release waits for a person, naming the approval."""
    running, _, identities = mesh
    body = unlogged()
    result = subprocess.run(
        [sys.executable, "-m", "bus.ops.cli", "publish", "release.proposed", "-", "--wait", "30"],
        input=json.dumps(body),
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "MESH_NATS_URL": running.nats_url,
            "MESH_NAMESPACE": running.settings.namespace,
            "COLUMNS": "250",
            **({"MESH_NATS_CREDENTIALS": str(identities.credential(OPERATOR))} if identities else {}),
        },
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"AWAITING APPROVAL {body['release_id']}" in result.stdout and "mesh approve" in result.stdout


# --- A2A -----------------------------------------------------------------------------------------


async def test_an_a2a_client_answers_the_input_required_task_with_a_decision(mesh):
    """SendMessage with an escalated proposal answers an input-required task saying how to answer;
    a follow-up message with `{decision, note}` from an approver completes it with the approved
    outcome; the same from a task whose release never waited is unsupported."""
    running, keys, _ = mesh
    base = gateway(running)
    async with httpx.AsyncClient(headers=bearer(keys["alice"]), timeout=30) as http_client:
        card = await A2ACardResolver(http_client, base).get_agent_card()
        client = ClientFactory(ClientConfig(streaming=False, httpx_client=http_client)).create(card)

        body = unlogged()
        (response,) = [r async for r in client.send_message(message(body))]
        task = response.task
        assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        assert '"decision"' in task.status.message.parts[0].text

        answer = message({"decision": "approve", "note": "fine by me"}, task_id=task.id, context_id=task.context_id)
        (response,) = [r async for r in client.send_message(answer)]
        done = response.task

        clean = {
            **json.loads((SAMPLES / "release_clean.json").read_text()),
            "release_id": f"rel-{uuid.uuid4().hex[:8]}",
        }
        (response,) = [r async for r in client.send_message(message(clean))]
        clean_task = response.task
        try:
            follow_up = message({"decision": "approve"}, task_id=clean_task.id, context_id=clean_task.context_id)
            [r async for r in client.send_message(follow_up)]
            never = None
        except UnsupportedOperationError as exc:
            never = exc
    assert done.status.state == TaskState.TASK_STATE_COMPLETED
    outcome = MessageToDict(done.artifacts[0].parts[0].data)
    assert outcome["outcome"] == "approved" and outcome["human_decisions"][0]["who"] == "key:alice"
    assert clean_task.status.state == TaskState.TASK_STATE_COMPLETED and isinstance(never, UnsupportedOperationError)
    (stored,) = await stored_outcomes(running, body["release_id"])
    assert stored.human_decisions[0].via == "a2a" and stored.human_decisions[0].note == "fine by me"


def message(data: dict, *, task_id: str = "", context_id: str = "") -> SendMessageRequest:
    part = Part(data=ParseDict(data, Value()), media_type="application/json")
    return SendMessageRequest(
        message=Message(
            message_id=uuid.uuid4().hex, role=Role.ROLE_USER, parts=[part], task_id=task_id, context_id=context_id
        )
    )


# --- crash ----------------------------------------------------------------------------------------


async def test_a_decision_made_while_the_coordinator_is_down_is_taken_once_after_it_restarts(mesh):
    """SIGKILL the coordinator while a release waits; alice approves meanwhile (202: taken later);
    the restarted coordinator takes it: exactly one approved outcome."""
    running, keys, _ = mesh
    body = unlogged()
    coordinator = next(s for s in running.services if s.name == "coordinator")
    async with http() as client, outcomes_on_the_wire(running, body["release_id"]) as seen:
        _, status = await escalated(client, running, keys, body)
        coordinator.kill()
        decide = f"{gateway(running)}{status['approval']['links']['decision']}"
        try:
            pending = await client.post(decide, json={"decision": "approve"}, headers=bearer(keys["bob"]))
            assert pending.status_code == 202 and pending.json()["pending"], pending.text
            # the positive signal: the decision is stored, waiting for a coordinator; none decides it
            assert await eventually(lambda: decision_waiting(running), timeout=10)
            assert seen == []
        finally:
            coordinator.restart("the test killed it")
        await eventually(lambda: asyncio.to_thread(lambda: coordinator.health() == "ready"), timeout=30)
        await eventually(lambda: asyncio.sleep(0, result=bool(seen)), timeout=30)
        await coordinator_settled(running)  # a duplicate would be here by now
        stored = await stored_outcomes(running, body["release_id"])
    assert len(seen) == 1 and len(stored) == 1
    assert stored[0].outcome == "approved" and [d.who for d in stored[0].human_decisions] == ["key:bob"]


async def decision_waiting(running) -> bool:
    """A person's decision is in the approvals stream, not yet taken by the coordinator."""
    nc = await nats.connect(running.nats_url)
    try:
        info = await nc.jetstream().consumer_info(running.settings.subjects.approvals_stream, "coordinator-approvals")
        return info.num_pending + info.num_ack_pending >= 1
    finally:
        await nc.close()
