"""The steward as its users meet it: a real steward process (two replicas: one active, one standby)
beside the real reviewers and coordinator, on a real nats-server with every service on its own
identity; its HTTP views and bad input, its history search, and the history request-reply."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import nats
import pytest

from bus.client import MeshClient
from bus.ops.identities import generate_for_mesh
from bus.ops.launcher import start_mesh
from bus.ops.settings import MeshSettings
from contracts.stewardship import DecisionRecorded, ServiceRiskChanged
from services.steward.client import history_context, recent_history
from tests.e2e.support import eventually, sample, stream_messages

SERVICES = ["security", "compliance", "coordinator", "steward"]


@pytest.fixture(scope="module")
def mesh(nats_url, gatekeeper, tmp_path_factory):
    """Reviewers, coordinator and two steward replicas, each service on its own identity."""
    home = tmp_path_factory.mktemp("steward")
    settings = MeshSettings(nats_url=nats_url, namespace=f"t{uuid.uuid4().hex[:10]}", home=home)
    identities = (
        gatekeeper.admit(generate_for_mesh(settings, home / "identities", names=SERVICES)) if gatekeeper else None
    )
    running = start_mesh(
        settings, names=SERVICES, home=home, embedded=False, identities=identities, replicas={"steward": 2}
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
async def traffic(mesh):
    """payments-api: one clean release, two with a planted secret (blocked, critical); search: one clean."""
    harness = mesh.settings.model_copy(update={"nats_credentials": None})
    releases = [
        ("release_clean", "payments-api", "pay-1"),
        ("release_secret", "payments-api", "pay-2"),
        ("release_secret", "payments-api", "pay-3"),
        ("release_clean", "search", "search-1"),
    ]
    outcomes = {}
    async with await MeshClient.connect(harness, name="steward-test") as client:
        for name, service, release in releases:
            proposal = sample(name, release_id=f"{release}-{uuid.uuid4().hex[:6]}", service=service)
            await client.propose(proposal)
            outcomes[release] = await client.wait_for_outcome(proposal, timeout=30)
    assert all(outcomes.values()), outcomes
    return outcomes


def stewards(mesh) -> list[str]:
    return [s.url for s in mesh.services if s.name == "steward"]


async def roles(mesh) -> dict[str, str]:
    """Each steward replica's URL by its role (`active`, `standby`), from /readyz."""
    found = {}
    async with httpx.AsyncClient(timeout=5) as http:
        for url in stewards(mesh):
            found[(await http.get(f"{url}/readyz")).json()["role"]] = url
    return found


async def settled(mesh, traffic) -> dict:
    """The active steward's list once it has every decided release of the traffic."""

    async def check():
        async with httpx.AsyncClient(timeout=5) as http:
            body = (await http.get(f"{(await roles(mesh))['active']}/services")).json()
        decided = sum(s["decided"]["total"] for s in body["services"])
        return body if decided >= len(traffic) else None

    body = await eventually(check, timeout=20)
    assert body, "the steward never counted every outcome"
    return body


async def test_the_steward_lists_services_riskiest_first(mesh, traffic):
    """Two critical blocks make payments-api high; search stays low; the view is live and fresh."""
    body = await settled(mesh, traffic)
    assert [(s["service"], s["risk"]) for s in body["services"]] == [("payments-api", "high"), ("search", "low")]
    payments = body["services"][0]
    assert payments["decided"] == {"approved": 1, "blocked": 2, "escalated": 0, "total": 3}
    assert payments["block_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert body["source"] == "live" and body["age_seconds"] < 60


async def test_one_service_has_its_record_and_its_reasons(mesh, traffic):
    """GET /services/payments-api: recent releases newest first, SEC001 among the top findings, why high."""
    await settled(mesh, traffic)
    async with httpx.AsyncClient(timeout=5) as http:
        body = (await http.get(f"{(await roles(mesh))['active']}/services/payments-api")).json()
    assert body["risk"] == "high" and body["risk_reasons"]
    assert [d["release_id"][:5] for d in body["recent"]] == ["pay-3", "pay-2", "pay-1"]
    assert "SEC001" in [f["rule"] for f in body["top_findings"]]
    assert body["reviews"] == 6 and body["proposed"] == 3
    assert body["assessment"].startswith("payments-api is at high risk")


async def test_the_standby_serves_the_last_checkpoint_and_says_so(mesh, traffic):
    """The standby replica answers the same list from its restored checkpoint, marked `checkpoint`."""
    live = await settled(mesh, traffic)
    standby = (await roles(mesh))["standby"]

    async def caught_up():
        async with httpx.AsyncClient(timeout=5) as http:
            body = (await http.get(f"{standby}/services")).json()
        return body if body["events_applied"] == live["events_applied"] else None

    body = await eventually(caught_up, timeout=10)
    assert body and body["source"] == "checkpoint"
    assert body["services"] == live["services"] and body["as_of"] == live["as_of"]


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/services/nobody-here", 404, "no service named 'nobody-here'"),
        ("/services/-bad", 400, "name"),
        ("/services/a%20b", 400, "name"),
        ("/services/payments-api/history?limit=0", 400, "limit"),
        ("/services/payments-api/history?limit=100000", 400, "limit"),
        ("/services/payments-api/history?since=yesterday", 400, "since"),
        ("/services/payments-api/history?outcome=maybe", 400, "outcome"),
        ("/services/payments-api/history?rule=SEC%20001", 400, "rule"),
        ("/services/payments-api/history?colour=red", 400, "unknown filter colour"),
        ("/services/payments-api/history?since=2026-12-01T00:00:00Z&until=2026-11-01T00:00:00Z", 400, "after until"),
        ("/services/nobody-here/history", 404, "no history"),
    ],
)
async def test_bad_input_is_a_problem_not_a_crash(mesh, traffic, path, status, says):
    """Malformed names and filters are 400s, unknown services 404s, all problem+json that say what is wrong."""
    await settled(mesh, traffic)
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{stewards(mesh)[0]}{path}")
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert says in response.json()["detail"]


async def test_the_history_is_searched_by_rule_outcome_and_time(mesh, traffic):
    """?rule=SEC001 finds the two blocked releases; ?outcome=approved the clean one; a future `since` none."""
    await settled(mesh, traffic)
    base = f"{stewards(mesh)[1]}/services/payments-api/history"  # any replica: the history is the stream's
    async with httpx.AsyncClient(timeout=5) as http:

        async def releases(**params) -> list[str]:
            body = (await http.get(base, params=params)).json()
            return [r["release_id"][:5] for r in body["records"]]

        assert await eventually(lambda: releases(rule="SEC001")) == ["pay-3", "pay-2"]
        assert await releases(outcome="approved") == ["pay-1"]
        assert await releases(limit=1) == ["pay-3"]
        assert await releases(since="2099-01-01T00:00:00Z") == []
        first = (await http.get(base, params={"limit": 1})).json()["records"][0]
        assert set(first) >= {"service", "release_id", "outcome", "rules", "critical", "reason", "risk", "decided_at"}


async def test_risk_changes_are_published_once_each(mesh, traffic):
    """payments-api went low -> medium -> high: two `service.risk_changed`, each stored once."""
    await settled(mesh, traffic)
    s = mesh.settings.subjects

    async def changes():
        raw = await stream_messages(mesh.nats_url, s.history_stream, s.risk_changed("payments-api"))
        return [ServiceRiskChanged.model_validate_json(m) for m in raw]

    found = await eventually(lambda: _at_least(changes, 2))
    assert [(c.previous.value, c.level.value) for c in found] == [("low", "medium"), ("medium", "high")]
    recorded = await stream_messages(mesh.nats_url, s.history_stream, s.decisions_recorded)
    assert len([DecisionRecorded.model_validate_json(m) for m in recorded]) == len(traffic)


async def test_a_reviewer_asks_the_steward_for_recent_history(mesh, traffic):
    """Over NATS request-reply (answered by either replica): the newest decisions and the level, as a
    bounded block for a model's context."""
    await settled(mesh, traffic)
    nc = await nats.connect(mesh.nats_url)
    try:
        answer = await eventually(lambda: recent_history(nc, mesh.settings.subjects, "payments-api", limit=2))
        assert answer is not None and answer.risk.value == "high"
        assert [r.release_id[:5] for r in answer.records] == ["pay-3", "pay-2"]
        context = history_context(answer, max_chars=500)
        assert 0 < len(context) <= 500 and "blocked; rules SEC001" in context
        reply = await nc.request(
            mesh.settings.subjects.steward_history("payments-api"), json.dumps({"limit": -1}).encode()
        )
        assert "limit" in json.loads(reply.data)["error"]
    finally:
        await nc.close()


async def _at_least(read, count: int):
    found = await read()
    return found if len(found) >= count else None


async def test_the_card_offers_the_skill_but_never_as_a_reviewer(mesh):
    """The steward's card has its skill, and no `review` tag the coordinator would take for a reviewer."""
    async with httpx.AsyncClient(timeout=5) as http:
        card = (await http.get(f"{stewards(mesh)[0]}/.well-known/agent-card.json")).json()
    (skill,) = card["skills"]
    assert skill["id"] == "steward.services" and "review" not in skill["tags"]
    await asyncio.sleep(0)
