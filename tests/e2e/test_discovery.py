"""Agent cards and discovery, end to end: real services as processes, real HTTP, real NATS."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid

import httpx
import nats
import pytest
from a2a.types import AgentCard as A2ACard
from google.protobuf.json_format import ParseDict

from bus.client import MeshClient
from bus.ops.embedded import free_port
from bus.ops.identities import generate_for_mesh
from bus.ops.launcher import start_mesh
from bus.ops.processes import child_env, spawn
from bus.ops.settings import MeshSettings
from contracts.outcomes import Outcome
from tests.bus.ops.test_cli import mesh as run_mesh_cli
from tests.e2e.support import eventually, sample

ALL = ["registry", "security", "compliance", "coordinator"]
FAST_HEARTBEAT = {"heartbeat_seconds": 1.0, "heartbeat_ttl_seconds": 3.0}


def url_of(mesh, name: str) -> str:
    return next(s.url for s in mesh.services if s.name == name)


async def get(url: str, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.get(url, **kwargs)


@pytest.fixture(scope="module")
def shared_mesh(nats_url, gatekeeper, tmp_path_factory):
    """One mesh for the tests that only look at it (cards, filters, health, discovery)."""
    settings = MeshSettings(nats_url=nats_url, namespace=f"t{uuid.uuid4().hex[:10]}", **FAST_HEARTBEAT)
    home = tmp_path_factory.mktemp("discovery")
    identities = gatekeeper.admit(generate_for_mesh(settings, home / "identities")) if gatekeeper else None
    running = start_mesh(settings, names=ALL, home=home, embedded=False, identities=identities)
    yield running
    running.stop()


@pytest.fixture
async def mesh(make_settings, launch):
    """A mesh of its own, for tests that kill or restart parts of it."""
    settings = make_settings(**FAST_HEARTBEAT)
    running = await asyncio.to_thread(launch, settings, ALL)
    return running


async def last_instance_operation(settings, name: str) -> str | None:
    """The KV operation (`DEL`, `PURGE`, or None for a put) last written for an instance of `name`."""
    bucket = settings.subjects.instances_bucket
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        subjects = (await js.stream_info(f"KV_{bucket}", subjects_filter=f"$KV.{bucket}.{name}.>")).state.subjects
        (subject,) = subjects or {}
        last = await js.get_last_msg(f"KV_{bucket}", subject)
        return (last.headers or {}).get("KV-Operation")
    finally:
        await nc.close()


async def listed(registry: str, query: str = "") -> dict[str, dict]:
    body = (await get(f"{registry}/agents{query}")).json()
    return {a["name"]: a for a in body["agents"]}


async def test_every_served_card_is_a_valid_a2a_card(shared_mesh):
    """Each service's /.well-known/agent-card.json parses with the official a2a-sdk and has
    every required field, a NATS binding naming its subjects, its HTTP URL and schema links."""
    mesh = shared_mesh
    for service in mesh.services:
        response = await get(f"{service.url}/.well-known/agent-card.json")
        assert response.status_code == 200
        card = response.json()
        parsed = ParseDict(card, A2ACard())  # strict: unknown fields would raise
        assert parsed.name == service.name
        for field in (
            "name",
            "description",
            "supportedInterfaces",
            "version",
            "capabilities",
            "defaultInputModes",
            "defaultOutputModes",
            "skills",
        ):
            assert card.get(field) not in (None, "", []) or field == "capabilities", field
        assert all(s["tags"] and s["id"] and s["description"] for s in card["skills"])
        bindings = {i["protocolBinding"].split("?")[0]: i for i in card["supportedInterfaces"]}
        assert bindings["urn:agent-mesh:binding:http-ops:v1"]["url"] == service.url
        nats_binding = bindings["urn:agent-mesh:binding:nats-jetstream:v1"]["protocolBinding"]
        assert "consumes=" in nats_binding and "produces=" in nats_binding
    security = (await get(f"{url_of(mesh, 'security')}/.well-known/agent-card.json")).json()
    assert security["skills"][0]["id"] == "review.security"
    assert {"review", "release.proposed"} <= set(security["skills"][0]["tags"])
    assert f"consumes={mesh.settings.subjects.release_proposed}" in json.dumps(security["supportedInterfaces"])
    schemas = security["capabilities"]["extensions"][0]["params"]
    schema = await get(schemas["consumes"][0]["schema"])
    assert schema.status_code == 200 and "release_id" in schema.json()["required"]
    assert schemas["produces"][0]["contract"] == "review.submitted"


async def test_card_has_etag_cache_control_and_answers_304(shared_mesh):
    """The card carries ETag and Cache-Control; If-None-Match with that tag gets 304, no body."""
    mesh = shared_mesh
    for name in ("security", "registry"):
        url = f"{url_of(mesh, name)}/.well-known/agent-card.json"
        first = await get(url)
        assert first.headers["etag"] and "max-age" in first.headers["cache-control"]
        again = await get(url, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        stale = await get(url, headers={"If-None-Match": '"something-else"'})
        assert stale.status_code == 200 and stale.json() == first.json()


async def test_health_and_readiness(shared_mesh):
    """/healthz and /readyz answer 200 on every service while NATS is up."""
    mesh = shared_mesh
    for service in mesh.services:
        assert (await get(f"{service.url}/healthz")).status_code == 200
        ready = await get(f"{service.url}/readyz")
        assert ready.status_code == 200, ready.text


async def test_registry_lists_live_agents_and_filters(shared_mesh):
    """GET /agents lists the live agents; skill, tag and free-text filters narrow it; no match is
    an empty list; bad filters are 400 problems; an unknown agent is a 404 problem."""
    mesh = shared_mesh
    registry = url_of(mesh, "registry")
    agents = await listed(registry)
    assert set(agents) == set(ALL)
    assert all(a["live"] and a["instances"] == 1 and a["lastHeartbeat"] for a in agents.values())

    assert set(await listed(registry, "?skill=review.security")) == {"security"}
    assert set(await listed(registry, "?tag=review")) == {"security", "compliance"}
    assert set(await listed(registry, "?q=personal data")) == {"compliance"}
    assert await listed(registry, "?skill=review.nothing") == {}

    for bad in ("?skill=a%20b", "?include=everything", "?colour=blue", "?q="):
        response = await get(f"{registry}/agents{bad}")
        assert response.status_code == 400, bad
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == 400 and response.json()["detail"]

    one = (await get(f"{registry}/agents/security")).json()
    assert one["card"]["name"] == "security" and len(one["instanceList"]) == 1
    card_only = (await get(f"{registry}/agents/security/card")).json()
    assert card_only == one["card"]
    missing = await get(f"{registry}/agents/nobody")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    assert (await get(f"{registry}/agents/bad name")).status_code == 400
    assert (await get(f"{registry}/docs")).status_code == 200
    assert "/agents/{name}" in (await get(f"{registry}/openapi.json")).json()["paths"]


async def test_killed_agent_disappears_within_ttl_and_clean_stop_at_once(mesh):
    """A SIGKILLed service leaves the live list within TTL + one heartbeat (listed with
    ?include=stale as not live); a cleanly stopped one leaves at once."""
    registry = url_of(mesh, "registry")
    security = next(s for s in mesh.services if s.name == "security")
    killed_at = time.monotonic()
    security.kill()

    async def gone():
        return "security" not in await listed(registry)

    assert await eventually(gone, timeout=20)
    took = time.monotonic() - killed_at
    # by the TTL: not before TTL - heartbeat (its last beat came at most a heartbeat before the
    # kill), within TTL + heartbeat + a slack that holds on a loaded 2-core machine
    assert 3.0 - 1.0 - 0.5 <= took <= 3.0 + 1.0 + 4.0, f"evicted after {took:.1f} s"
    stale = await listed(registry, "?include=stale")
    assert stale["security"]["live"] is False and stale["security"]["instances"] == 0

    compliance = next(s for s in mesh.services if s.name == "compliance")
    compliance.terminate()
    stopped_at = time.monotonic()
    assert compliance.wait(10)

    async def compliance_gone():
        return "compliance" not in await listed(registry)

    assert await eventually(compliance_gone, timeout=10)
    took = time.monotonic() - stopped_at
    # at once: the instance deleted its own key as it stopped, not left to the TTL
    assert await last_instance_operation(mesh.settings, "compliance") == "DEL"
    assert took < 5.0, f"gone {took:.1f} s after the stop"


async def test_two_replicas_are_one_card_with_two_instances(make_settings, launch):
    """Two processes of one agent appear as one card with two live instances."""
    settings = make_settings(**FAST_HEARTBEAT)
    first = await asyncio.to_thread(launch, settings, ["registry", "security"])
    await asyncio.to_thread(launch, settings, ["security"])
    registry = url_of(first, "registry")

    async def two():
        agents = await listed(registry)
        return agents.get("security", {}).get("instances") == 2

    assert await eventually(two, timeout=10)
    detail = (await get(f"{registry}/agents/security")).json()
    assert len({i["instanceId"] for i in detail["instanceList"]}) == 2
    assert len({i["url"] for i in detail["instanceList"]}) == 2


async def test_registry_restarted_serves_the_full_list_from_kv(mesh):
    """A restarted registry rebuilds its view from the KV buckets: the same agents, at once."""
    registry = next(s for s in mesh.services if s.name == "registry")
    before = set(await listed(registry.url))
    registry.kill()
    registry.start()

    async def back():
        try:
            return set(await listed(registry.url)) == before
        except httpx.HTTPError:
            return False

    assert await eventually(back, timeout=20)


async def test_services_answer_nats_micro_discovery(shared_mesh):
    """Standard NATS tooling sees the services: $SRV.PING.<name> and $SRV.INFO.<name> answer."""
    mesh = shared_mesh
    async with await MeshClient.connect(mesh.settings) as client:
        ping = await client.nc.request("$SRV.PING.security", b"", timeout=2)
        assert json.loads(ping.data)["name"] == "security"
        info = json.loads((await client.nc.request("$SRV.INFO.coordinator", b"", timeout=2)).data)
        assert info["name"] == "coordinator" and info["metadata"]["url"]


async def test_mesh_agents_prints_the_live_agents(shared_mesh):
    """`mesh agents --json` lists every live agent with skills, instances and URL."""
    mesh = shared_mesh
    result = await asyncio.to_thread(run_mesh_cli, "agents", "--json", settings=mesh.settings)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == set(ALL)
    assert rows["security"]["skills"] == ["review.security"] and rows["security"]["instances"] == 1
    filtered = await asyncio.to_thread(
        run_mesh_cli, "agents", "--skill", "review.compliance", "--json", settings=mesh.settings
    )
    assert [row["name"] for row in json.loads(filtered.stdout)] == ["compliance"]


async def test_a_third_reviewer_joins_new_rounds_without_coordinator_changes(shared_mesh):
    """A reviewer defined in a test (about 30 lines) starts, registers its card, and the next
    round waits for it too: three reviews in the outcome."""
    mesh = shared_mesh
    settings = mesh.settings
    port = free_port()
    env = child_env(**{**settings.as_env(), "MESH_HTTP_PORT": str(port), "MESH_LOG_FORMAT": "json"})
    third = spawn([sys.executable, "-m", "tests.e2e.third_reviewer"], env=env, log_path=None)
    try:
        registry = url_of(mesh, "registry")

        async def registered():
            return "performance" in await listed(registry, "?tag=review")

        assert await eventually(registered, timeout=20), "the third reviewer never registered"
        await asyncio.sleep(1.5)  # the coordinator's watch sees the KV update; its answer is at most 1 s old
        async with await MeshClient.connect(settings) as client:
            proposal = sample("release_clean", release_id="rel-three-reviewers")
            await client.propose(proposal)
            outcome = await client.wait_for_outcome(proposal, timeout=20)
        assert outcome is not None and outcome.outcome == Outcome.APPROVED
        assert sorted(r.reviewer for r in outcome.reviews) == ["compliance", "performance", "security"]
        assert outcome.expected == ["compliance", "performance", "security"]
    finally:
        third.terminate()
        try:
            third.wait(10)
        except subprocess.TimeoutExpired:
            third.kill()


async def test_with_no_live_reviewer_the_required_ones_are_still_expected_and_security_blocks(make_settings, launch):
    """Fail closed: with discovery on and no reviewer alive, the round still expects the
    reviewers policy requires (security and compliance), waits for its deadline, and security's
    built-in `block` fallback blocks the release — it is never decided by who happens to be up."""
    settings = make_settings()
    await asyncio.to_thread(launch, settings, ["coordinator"], deadline_seconds="2")
    async with await MeshClient.connect(settings) as client:
        proposal = sample("release_clean", release_id="rel-nobody")
        await client.propose(proposal)
        outcome = await client.wait_for_outcome(proposal, timeout=15)
    assert outcome is not None and outcome.outcome == Outcome.BLOCKED
    assert outcome.expected == outcome.required == ["compliance", "security"]
    assert outcome.missing == ["compliance", "security"]
    assert outcome.fallbacks_applied == {"compliance": "escalate", "security": "block"}


async def test_excluded_reviewer_is_not_asked(make_settings, launch):
    """MESH_EXCLUDE_REVIEWERS keeps a live reviewer that policy does not require out of new rounds."""
    settings = make_settings()
    await asyncio.to_thread(
        launch,
        settings,
        ["security", "compliance", "coordinator"],
        exclude_reviewers="compliance",
        required_skills="review.security",
    )
    async with await MeshClient.connect(settings) as client:
        proposal = sample("release_clean", release_id="rel-excluded")
        await client.propose(proposal)
        outcome = await client.wait_for_outcome(proposal, timeout=20)
    assert outcome is not None and outcome.expected == ["security"]


async def test_readyz_is_503_with_a_reason_while_nats_is_down(embedded_nats, tmp_path):
    """/readyz makes a real NATS round trip: with the server SIGKILLed it answers 503 with a
    problem body saying why, while /healthz (process alive) stays 200; it recovers on restart."""
    settings = MeshSettings(nats_url=embedded_nats.url, namespace="readyz", home=tmp_path / "m")
    running = await asyncio.to_thread(start_mesh, settings, names=["security"], home=tmp_path / "m", embedded=False)
    try:
        url = running.services[0].url
        assert (await get(f"{url}/readyz")).status_code == 200
        embedded_nats.kill()

        async def not_ready():
            response = await get(f"{url}/readyz")
            return response if response.status_code == 503 else None

        response = await eventually(not_ready, timeout=10)
        assert response is not None, "readyz stayed 200 with NATS down"
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "NATS" in response.json()["detail"]
        assert (await get(f"{url}/healthz")).status_code == 200

        await asyncio.to_thread(embedded_nats.start)  # same port, same store

        async def ready_again():
            return (await get(f"{url}/readyz")).status_code == 200

        assert await eventually(ready_again, timeout=20)
    finally:
        running.stop()
