"""The gateway as its users meet it: real gateway processes (two replicas) in front of the real
reviewers and coordinator, real HTTP, a real nats-server with every service on its own identity."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks import Webhook

from bus.ops.identities import generate_for_mesh
from bus.ops.launcher import start_mesh
from bus.ops.settings import MeshSettings
from services.gateway.api_keys import issue_key
from services.gateway.webhook_sources import add_source
from tests.e2e.support import eventually, sample, stream_messages

REVIEWERS = ["security", "compliance", "coordinator"]


def start(nats_url, gatekeeper, home, names, *, replicas=None, env=None) -> tuple:
    settings = MeshSettings(nats_url=nats_url, namespace=f"t{uuid.uuid4().hex[:10]}", home=home)
    keys = {
        "ci": issue_key(settings.api_keys_path, "ci", ["events:release.proposed:publish", "releases:read"]),
        "reader": issue_key(settings.api_keys_path, "reader", ["releases:read"]),
        "burst": issue_key(settings.api_keys_path, "burst", ["releases:read"]),
        "holder": issue_key(settings.api_keys_path, "holder", ["events:*:publish", "releases:read"]),
        "hook:ci": add_source(settings.webhooks_path, "ci", "standard"),
        "hook:github": add_source(settings.webhooks_path, "github", "github"),
    }
    identities = gatekeeper.admit(generate_for_mesh(settings, home / "identities", names=names)) if gatekeeper else None
    mesh = start_mesh(
        settings, names=names, home=home, embedded=False, identities=identities, replicas=replicas, env=env
    )
    return mesh, keys


@pytest.fixture(scope="module")
def mesh(nats_url, gatekeeper, tmp_path_factory):
    """The whole review mesh with two gateway replicas; reviews finish in well under a second."""
    running, keys = start(
        nats_url, gatekeeper, tmp_path_factory.mktemp("gateway"), [*REVIEWERS, "gateway"], replicas={"gateway": 2}
    )
    yield running, keys
    running.stop()


@pytest.fixture(scope="module")
def slow_mesh(nats_url, gatekeeper, tmp_path_factory):
    """A mesh whose rounds wait 6 s for a reviewer that never answers (`ghost`), with tight
    ingress limits: 12 requests a minute and 2 held requests per client."""
    env = {
        "MESH_REVIEWERS": "ghost",
        "MESH_DEADLINE_SECONDS": "6",
        "MESH_GATEWAY_RATE_LIMIT": "12",
        "MESH_GATEWAY_HELD_PER_CLIENT": "2",
        "MESH_GATEWAY_SSE_HEARTBEAT_SECONDS": "1",
    }
    running, keys = start(
        nats_url,
        gatekeeper,
        tmp_path_factory.mktemp("gateway-slow"),
        [*REVIEWERS, "gateway"],
        replicas={"gateway": 2},
        env=env,
    )
    yield running, keys
    running.stop()


def gateways(running) -> list[str]:
    return [s.url for s in running.services if s.name == "gateway"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def proposal_body(name: str = "release_clean", **changes) -> dict:
    changes.setdefault("release_id", f"rel-{uuid.uuid4().hex[:8]}")
    return json.loads(sample(name, **changes).model_dump_json())


async def events_stored(running) -> list[dict]:
    s = running.settings.subjects
    return [json.loads(m) for m in await stream_messages(running.nats_url, s.events_stream)]


@asynccontextmanager
async def http(timeout: float = 40) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=timeout) as client:
        yield client


class EventReader:
    """Parses a text/event-stream body into {event, id, data} dicts (comments skipped), in as
    many reads as the test wants."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def read(self, *, stop_after: int | None = None) -> list[dict]:
        found: list[dict] = []
        current: dict = {}
        async for line in self.lines:
            if line == "":
                if "data" in current or "event" in current:
                    found.append(current)
                    current = {}
                    if stop_after is not None and len(found) >= stop_after:
                        break
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            current[field] = value[1:] if value.startswith(" ") else value
        return found


async def read_events(response: httpx.Response) -> list[dict]:
    return await EventReader(response).read()


# --- events in, outcomes out -------------------------------------------------------------


async def test_a_clean_release_posted_with_wait_returns_its_approved_outcome_and_names_the_caller(mesh):
    """POST ?wait=30 answers 200 with the approved outcome; the event on the bus was published
    by the gateway on behalf of the authenticated caller (whatever the body claimed)."""
    running, keys = mesh
    body = proposal_body(
        on_behalf_of="someone-else",
        producer="spoofed",
        event_id="c10dd95900014da39ff4da4a8d55c554",
        correlation_id="rel-42",
        occurred_at="1999-01-01T00:00:00Z",
    )
    async with http() as client:
        response = await client.post(
            f"{gateways(running)[0]}/v1/events/release.proposed?wait=30", json=body, headers=bearer(keys["ci"])
        )
    assert response.status_code == 200, response.text
    status = response.json()
    assert status["state"] == "decided"
    assert status["outcome"]["outcome"] == "approved"
    assert response.headers["location"] == f"/v1/releases/{body['release_id']}/revisions/{status['revision']}"
    stored = [e for e in await events_stored(running) if e["release_id"] == body["release_id"]]
    assert [(e["producer"], e["on_behalf_of"]) for e in stored] == [("gateway", "key:ci")]
    # the envelope is the gateway's: a caller's event id could collide with another release's
    assert stored[0]["event_id"] != body["event_id"] and stored[0]["correlation_id"] == body["release_id"]
    assert not stored[0]["occurred_at"].startswith("1999")


async def test_without_wait_a_202_points_at_a_status_url_that_any_replica_answers(mesh):
    """POST without ?wait answers 202 + Location at once; GET on that URL, on the other replica,
    shows the round and then the outcome (the secret sample is blocked)."""
    running, keys = mesh
    first, second = gateways(running)
    body = proposal_body("release_secret")
    async with http() as client:
        response = await client.post(f"{first}/v1/events/release.proposed", json=body, headers=bearer(keys["ci"]))
        assert response.status_code == 202, response.text
        location = response.headers["location"]
        assert response.json()["state"] in ("submitted", "open", "decided")

        async def decided():
            status = (await client.get(second + location, headers=bearer(keys["reader"]))).json()
            return status if status["state"] == "decided" else None

        status = await eventually(decided, timeout=20)
    assert status["outcome"]["outcome"] == "blocked"
    assert set(status["expected"]) >= {"security", "compliance"}
    assert "security" in {r["reviewer"] for r in status["reviews"]}  # its reject decides at once


async def test_the_same_idempotency_key_for_other_content_is_a_409(mesh):
    """A retry with the same Idempotency-Key and content is accepted again (202, same Location); the
    same key for other content is a 409 problem, and that content is not published."""
    running, keys = mesh
    url = f"{gateways(running)[0]}/v1/events/release.proposed"
    body = proposal_body()
    other = {**body, "version": "9.9.9"}
    headers = {**bearer(keys["ci"]), "Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    async with http() as client:
        first = await client.post(url, json=body, headers=headers)
        again = await client.post(url, json=body, headers=headers)
        conflict = await client.post(url, json=other, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.headers["location"] == again.headers["location"]
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == "application/problem+json"
    versions = {e["version"] for e in await events_stored(running) if e["release_id"] == body["release_id"]}
    assert versions == {body["version"]}


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("garbage JSON", 422),
        ("schema error", 422),
        ("huge body", 413),
        ("wrong content type", 415),
        ("no credential", 401),
        ("unknown key", 401),
        ("under-scoped key", 403),
        ("unknown event type", 404),
        ("release id with a slash", 422),
        ("release id of dots", 422),
        ("extra field posing as the envelope", 422),
        ("two credentials", 401),
    ],
)
async def test_bad_input_gets_its_4xx_problem_and_publishes_nothing(mesh, case, status):
    """Each kind of bad request is refused with its status and an RFC 9457 problem, and nothing
    reaches the bus."""
    running, keys = mesh
    base = gateways(running)[1]
    release_id = f"rel-bad-{uuid.uuid4().hex[:8]}"
    body = json.dumps(proposal_body(release_id=release_id)).encode()
    url, headers = f"{base}/v1/events/release.proposed", {**bearer(keys["ci"]), "content-type": "application/json"}
    if case == "garbage JSON":
        body = b'{"release_id": "' + release_id.encode() + b'", '
    elif case == "schema error":
        body = json.dumps({"release_id": release_id, "version": 3, "changes": "nope"}).encode()
    elif case == "huge body":
        body = json.dumps({**json.loads(body), "description": "x" * (2 << 20)}).encode()
    elif case == "wrong content type":
        headers["content-type"] = "text/plain"
    elif case == "no credential":
        headers.pop("Authorization")
    elif case == "unknown key":
        headers["Authorization"] = "Bearer mk_nope_" + "x" * 43
    elif case == "under-scoped key":
        headers.update(bearer(keys["reader"]))
    elif case == "unknown event type":
        url = f"{base}/v1/events/round.decided"
    elif case == "release id with a slash":  # its status URL could never be reached
        release_id = f"a/{release_id}"
        body = json.dumps(proposal_body(release_id=release_id)).encode()
    elif case == "release id of dots":
        release_id = ".."
        body = json.dumps(proposal_body(release_id=release_id)).encode()
    elif case == "extra field posing as the envelope":
        body = json.dumps({**json.loads(body), "onBehalfOf": "key:admin"}).encode()
    elif case == "two credentials":  # a proxy adding its own: which one counts must not be a guess
        headers = [*headers.items(), ("Authorization", f"Bearer {keys['reader']}")]
    async with http() as client:
        response = await client.post(url, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["detail"]
    if case == "schema error":
        fields = {e["field"] for e in problem["errors"]}
        assert {"service", "version", "changes"} <= fields
    if case.startswith("release id"):
        assert [e["field"] for e in problem["errors"]] == ["release_id"]
    # the answer is the positive signal: the gateway publishes within the request, PubAck awaited,
    # so what this request would have published is stored before it was answered
    assert [e for e in await events_stored(running) if e.get("release_id") == release_id] == []


# --- streams -----------------------------------------------------------------------------


async def test_the_event_stream_resumes_exactly_on_another_replica(mesh):
    """The SSE stream of a revision tells each review then the outcome; reconnecting to the other
    replica with Last-Event-ID after the first review gives the rest, nothing repeated or lost."""
    running, keys = mesh
    first, second = gateways(running)
    async with http() as client:
        posted = await client.post(
            f"{first}/v1/events/release.proposed?wait=20", json=proposal_body(), headers=bearer(keys["ci"])
        )
        events_url = posted.headers["location"] + "/events"
        async with client.stream("GET", first + events_url, headers=bearer(keys["ci"])) as whole:
            assert whole.headers["content-type"].startswith("text/event-stream")
            everything = await read_events(whole)
        async with client.stream(
            "GET", second + events_url, headers={**bearer(keys["ci"]), "Last-Event-ID": "1"}
        ) as resumed:
            rest = await read_events(resumed)
    kinds = [e["event"] for e in everything]
    assert kinds[-1] == "outcome" and kinds.count("outcome") == 1
    reviews = [e for e in everything if e["event"] == "review"]
    assert [e["id"] for e in reviews] == [str(n) for n in range(1, len(reviews) + 1)]
    assert {json.loads(e["data"])["reviewer"] for e in reviews} >= {"security", "compliance"}
    assert [(e["event"], e["id"]) for e in rest] == [(e["event"], e["id"]) for e in everything[1:]]


async def test_a_gateway_killed_mid_stream_loses_no_event_for_a_client_that_reconnects(slow_mesh):
    """A client reading a slow round's stream from one replica, which is SIGKILLed, reconnects to
    the other with its Last-Event-ID and gets every remaining event up to the outcome."""
    running, keys = slow_mesh
    victim = next(s for s in running.services if s.name == "gateway")
    survivor = gateways(running)[1]
    async with http() as client:
        posted = await client.post(
            f"{victim.url}/v1/events/release.proposed", json=proposal_body(), headers=bearer(keys["ci"])
        )
        events_url = posted.headers["location"] + "/events"
        seen: list[dict] = []
        try:
            async with client.stream("GET", victim.url + events_url, headers=bearer(keys["ci"])) as stream:
                reader = EventReader(stream)
                seen += await reader.read(stop_after=1)
                victim.kill()
                seen += await reader.read()
        except httpx.HTTPError:
            pass  # the connection died with the process
        assert seen and seen[0]["event"] == "review"
        async with client.stream(
            "GET", survivor + events_url, headers={**bearer(keys["ci"]), "Last-Event-ID": seen[-1]["id"]}
        ) as stream:
            seen += await read_events(stream)
    victim.restart("the test killed it")  # the module's other tests use both replicas
    await eventually(lambda: asyncio.to_thread(lambda: victim.health() == "ready"), timeout=20)
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids)), ids
    assert [e["event"] for e in seen].count("review") == 2  # security and compliance; the ghost never answers
    assert seen[-1]["event"] == "outcome"
    assert json.loads(seen[-1]["data"])["outcome"] == "escalated"  # the ghost's fallback


async def test_a_wait_longer_than_the_round_takes_answers_202_with_the_status_url_never_504(slow_mesh):
    """?wait=1 on a round that takes 6 s answers 202 with the status URL after about a second."""
    running, keys = slow_mesh
    async with http() as client:
        started = asyncio.get_running_loop().time()
        response = await client.post(
            f"{gateways(running)[0]}/v1/events/release.proposed?wait=1",
            json=proposal_body(),
            headers=bearer(keys["ci"]),
        )
        took = asyncio.get_running_loop().time() - started
    assert response.status_code == 202
    assert response.json()["state"] in ("submitted", "open")
    assert response.headers["location"].startswith("/v1/releases/")
    assert 0.9 < took < 5.5  # not before the second asked for; long before the 6 s round (a margin for load)


# --- limits ------------------------------------------------------------------------------


async def test_the_rate_limit_holds_across_replicas(slow_mesh):
    """With 12 requests a minute per client, 12 requests spread over both replicas pass and the
    13th is a 429 with Retry-After, on either replica."""
    running, keys = slow_mesh
    first, second = gateways(running)
    path = "/v1/releases/nothing/revisions/" + "0" * 64
    async with http() as client:
        answers = [
            (await client.get((first if n % 2 else second) + path, headers=bearer(keys["burst"]))).status_code
            for n in range(12)
        ]
        over = [await client.get(url + path, headers=bearer(keys["burst"])) for url in (first, second)]
    assert answers == [404] * 12
    assert [r.status_code for r in over] == [429, 429]
    assert all(int(r.headers["retry-after"]) >= 1 for r in over)
    assert over[0].headers["content-type"] == "application/problem+json"


async def test_held_requests_are_capped_per_client_across_replicas_before_anything_is_published(slow_mesh):
    """With 2 held requests per client, two ?wait requests on two replicas hold both places; a
    third is a 429 and its proposal is not published."""
    running, keys = slow_mesh
    first, second = gateways(running)
    url = "/v1/events/release.proposed?wait=4"
    refused_body = proposal_body()
    holders = [proposal_body(), proposal_body()]
    async with http() as client:
        holding = [
            asyncio.create_task(client.post(base + url, json=body, headers=bearer(keys["holder"])))
            for base, body in zip((first, second), holders, strict=True)
        ]

        async def both_placed() -> bool:  # a place is taken before its proposal is published
            stored = {e["release_id"] for e in await events_stored(running)}
            return all(body["release_id"] in stored for body in holders)

        assert await eventually(both_placed, timeout=15), "the two held requests never published"
        refused = await client.post(first + url, json=refused_body, headers=bearer(keys["holder"]))
        held = await asyncio.gather(*holding)
    assert refused.status_code == 429, refused.text
    assert "retry-after" in refused.headers
    assert [r.status_code for r in held] == [202, 202]
    assert [e for e in await events_stored(running) if e["release_id"] == refused_body["release_id"]] == []


# --- webhooks ----------------------------------------------------------------------------


def standard_headers(secret: str, body: bytes, *, delivery: str | None = None, at: datetime | None = None) -> dict:
    """What a Standard Webhooks sender sends, signed by the `standardwebhooks` package."""
    delivery = delivery or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    return {
        "webhook-id": delivery,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(delivery, at, body.decode()),
        "content-type": "application/json",
    }


async def test_a_standard_webhook_is_accepted_and_its_release_decided(mesh):
    """A webhook signed by `standardwebhooks` with the source's secret is accepted (202 + status
    URL), published on behalf of `webhook:ci`, and its release approved."""
    running, keys = mesh
    body = json.dumps(proposal_body()).encode()
    async with http() as client:
        response = await client.post(
            f"{gateways(running)[0]}/v1/webhooks/ci", content=body, headers=standard_headers(keys["hook:ci"], body)
        )
        assert response.status_code == 202, response.text

        async def decided():
            status = (
                await client.get(gateways(running)[1] + response.headers["location"], headers=bearer(keys["reader"]))
            ).json()
            return status if status["state"] == "decided" else None

        status = await eventually(decided, timeout=20)
    assert status["outcome"]["outcome"] == "approved"
    release_id = json.loads(body)["release_id"]
    assert [e["on_behalf_of"] for e in await events_stored(running) if e["release_id"] == release_id] == ["webhook:ci"]


@pytest.mark.parametrize(
    "case", ["tampered body", "wrong secret", "no signature", "expired timestamp", "unknown source"]
)
async def test_a_bad_webhook_is_refused_and_publishes_nothing(mesh, case):
    """A tampered body, another secret, a missing signature or an old timestamp is a 401 problem
    (an unknown source a 404), and nothing reaches the bus."""
    running, keys = mesh
    proposal = proposal_body()
    body = json.dumps(proposal).encode()
    secret, url = keys["hook:ci"], f"{gateways(running)[1]}/v1/webhooks/ci"
    headers = standard_headers(secret, body)
    if case == "tampered body":
        body = json.dumps({**proposal, "changes": []}).encode()
    elif case == "wrong secret":
        headers = standard_headers("whsec_" + base64.b64encode(b"another secret, 32 bytes long!!!").decode(), body)
    elif case == "no signature":
        headers.pop("webhook-signature")
    elif case == "expired timestamp":
        headers = standard_headers(secret, body, at=datetime.now(UTC) - timedelta(minutes=10))
    elif case == "unknown source":
        url = f"{gateways(running)[1]}/v1/webhooks/nobody"
    async with http() as client:
        response = await client.post(url, content=body, headers=headers)
    assert response.status_code == (404 if case == "unknown source" else 401), response.text
    assert response.headers["content-type"] == "application/problem+json"
    # the answer is the positive signal: a webhook's event is published (PubAck awaited) within its request
    assert [e for e in await events_stored(running) if e["release_id"] == proposal["release_id"]] == []


async def test_a_replayed_webhook_publishes_nothing_new_on_any_replica(mesh):
    """The same signed delivery sent again, to the other replica, is answered 202 as a duplicate
    and stores no second event."""
    running, keys = mesh
    body = json.dumps(proposal_body()).encode()
    headers = standard_headers(keys["hook:ci"], body)
    async with http() as client:
        first = await client.post(f"{gateways(running)[0]}/v1/webhooks/ci", content=body, headers=headers)
        replay = await client.post(f"{gateways(running)[1]}/v1/webhooks/ci", content=body, headers=headers)
    assert first.status_code == 202 and first.json()["state"] != "duplicate"
    assert replay.status_code == 202 and replay.json()["state"] == "duplicate"
    release_id = json.loads(body)["release_id"]
    assert len([e for e in await events_stored(running) if e["release_id"] == release_id]) == 1


async def test_a_github_signed_webhook_is_accepted_and_a_forged_one_refused(mesh):
    """GitHub's X-Hub-Signature-256 over the raw body with the source's secret is accepted; the
    same body with a signature made with another secret is a 401."""
    running, keys = mesh
    body = json.dumps(proposal_body()).encode()
    url = f"{gateways(running)[0]}/v1/webhooks/github"

    def signed(secret: str) -> dict:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return {
            "X-Hub-Signature-256": f"sha256={digest}",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "content-type": "application/json",
        }

    async with http() as client:
        forged = await client.post(url, content=body, headers=signed("not-the-secret"))
        good = await client.post(url, content=body, headers=signed(keys["hook:github"]))
    assert forged.status_code == 401
    assert good.status_code == 202, good.text


# --- A2A ---------------------------------------------------------------------------------


async def test_the_a2a_sdk_client_proposes_through_the_gateway_process_from_its_card(mesh):
    """The official a2a-sdk client, built by ClientFactory from the card the gateway process
    serves (JSON-RPC interface, bearer auth), sends a proposal and receives the completed task
    with the approved outcome; streaming the same way ends completed too."""
    from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
    from a2a.types.a2a_pb2 import TaskState

    from tests.e2e.test_gateway_a2a import outcome_in, sending, sent

    running, keys = mesh
    base = gateways(running)[0]
    async with httpx.AsyncClient(headers=bearer(keys["ci"]), timeout=30) as client_http:
        card = await A2ACardResolver(client_http, base).get_agent_card()
        assert [i.protocol_binding for i in card.supported_interfaces if i.url == f"{base}/a2a"] == ["JSONRPC"]
        assert card.capabilities.streaming and "bearer" in card.security_schemes
        client = ClientFactory(ClientConfig(streaming=False, httpx_client=client_http)).create(card)
        task = await sent(client, sending(proposal_body()))
        streaming = ClientFactory(ClientConfig(streaming=True, httpx_client=client_http)).create(card)
        states = []
        async for response in streaming.send_message(sending(proposal_body())):
            if response.HasField("status_update"):
                states.append(response.status_update.status.state)
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert outcome_in(task)["outcome"] == "approved"
    assert states[-1] == TaskState.TASK_STATE_COMPLETED


async def test_a_last_event_id_that_is_not_ours_is_a_400_problem(mesh):
    """A Last-Event-ID this stream never sent — a superscript digit that `str.isdigit` takes but
    `int()` does not, a negative number, words — is a 400 problem, never a 500."""
    running, keys = mesh
    async with http() as client:
        posted = await client.post(
            f"{gateways(running)[0]}/v1/events/release.proposed", json=proposal_body(), headers=bearer(keys["ci"])
        )
        url = gateways(running)[1] + posted.headers["location"] + "/events"
        answers = [
            await client.get(url, headers={**bearer(keys["ci"]), "Last-Event-ID": value})
            for value in ("²".encode("latin-1"), b"-1", b"abc")
        ]
    assert [r.status_code for r in answers] == [400, 400, 400]
    assert {r.headers["content-type"] for r in answers} == {"application/problem+json"}


async def test_a_replayed_webhook_does_not_use_up_its_sources_rate(slow_mesh):
    """With 12 requests a minute, one signed delivery replayed 15 times is a duplicate each time and
    counts nothing: a new delivery from the same source is still taken."""
    running, keys = slow_mesh
    url = f"{gateways(running)[0]}/v1/webhooks/ci"
    body = json.dumps(proposal_body()).encode()
    headers = standard_headers(keys["hook:ci"], body)
    async with http() as client:
        replays = [(await client.post(url, content=body, headers=headers)).status_code for _ in range(15)]
        fresh_body = json.dumps(proposal_body()).encode()
        fresh = await client.post(url, content=fresh_body, headers=standard_headers(keys["hook:ci"], fresh_body))
    assert replays == [202] * 15
    assert fresh.status_code == 202, fresh.text


async def test_a2a_streams_take_places_under_the_held_request_cap(slow_mesh):
    """With 2 held requests per client, two A2A streams of slow rounds hold both places: a third
    stream and a blocking SendMessage are 429 problems, a GetTask is not held and passes."""
    from google.protobuf.json_format import MessageToDict

    from tests.e2e.test_gateway_a2a import sending

    running, keys = slow_mesh
    url = f"{gateways(running)[0]}/a2a"
    headers = {**bearer(keys["holder"]), "A2A-Version": "1.0", "Content-Type": "application/json"}

    def rpc(method: str, params: dict) -> dict:
        return {"jsonrpc": "2.0", "id": uuid.uuid4().hex, "method": method, "params": params}

    def message() -> dict:
        return MessageToDict(sending(proposal_body()))

    async with http() as client:
        streams = [
            client.stream("POST", url, json=rpc("SendStreamingMessage", message()), headers=headers) for _ in range(2)
        ]
        opened = [await stream.__aenter__() for stream in streams]
        try:
            assert [r.status_code for r in opened] == [200, 200]
            third = await client.post(url, json=rpc("SendStreamingMessage", message()), headers=headers)
            blocking = await client.post(url, json=rpc("SendMessage", message()), headers=headers)
            listed = await client.post(url, json=rpc("ListTasks", {}), headers=headers)
        finally:
            for stream in streams:
                await stream.__aexit__(None, None, None)
    assert (third.status_code, blocking.status_code) == (429, 429)
    assert third.headers["content-type"] == "application/problem+json" and "retry-after" in third.headers
    assert listed.status_code == 200


async def test_an_idle_event_stream_sends_heartbeats(slow_mesh):
    """While a slow round has nothing new to tell, its event stream still sends a comment every
    heartbeat (1 s here), so a proxy does not close it as idle."""
    running, keys = slow_mesh
    base = gateways(running)[1]
    async with http() as client:
        posted = await client.post(
            f"{base}/v1/events/release.proposed", json=proposal_body(), headers=bearer(keys["ci"])
        )
        url = base + posted.headers["location"] + "/events"
        comments = 0
        started = asyncio.get_running_loop().time()
        async with client.stream("GET", url, headers={**bearer(keys["ci"]), "Last-Event-ID": "2"}) as stream:
            async for line in stream.aiter_lines():
                comments += line.startswith(":")
                if comments >= 2 or asyncio.get_running_loop().time() - started > 5:
                    break
    assert comments >= 2
