"""`GET /metrics` on the real service processes, after known traffic: rounds, reviews, messages,
and (against the fake Anthropic API) model requests, tokens and cost."""

from __future__ import annotations

import asyncio

import pytest

from contracts.outcomes import Outcome
from contracts.reviews import TokenUsage
from services.llm.pricing import DEFAULT_PRICES
from tests.bus.test_metrics import Scrape, scrape
from tests.e2e.support import eventually, sample
from tests.fakes.anthropic_server import APPROVE, FakeAnthropic, rate_limited, tool_call, usage

SONNET = "claude-sonnet-4-6"


def url_of(mesh, name: str) -> str:
    return next(s.url for s in mesh.services if s.name == name)


async def settled(url: str, done) -> Scrape:
    """The service's scrape once `done(scrape)` holds: counts land just after the ack, which may
    be a moment after the outcome the test waited for."""

    async def check() -> Scrape | None:
        scraped = await scrape(url)
        return scraped if done(scraped) else None

    return await eventually(check, timeout=10) or await scrape(url)


async def test_one_clean_and_one_risky_release_show_on_every_service(settings, launch, client):
    """After a clean and a risky proposal: the coordinator counts two rounds opened and one
    decided approved, one blocked (no fallback), each timed; security counts one approve and one
    reject; every service, the registry included, serves a page the Prometheus parser reads."""
    mesh = await asyncio.to_thread(launch, settings, ["registry", "security", "compliance", "coordinator"])
    clean = sample("release_clean", release_id="rel-metrics-clean")
    risky = sample("release_secret", release_id="rel-metrics-risky")
    for proposal in (clean, risky):
        await client.propose(proposal)
    outcomes = [await client.wait_for_outcome(p, timeout=20) for p in (clean, risky)]
    assert [o.outcome for o in outcomes] == [Outcome.APPROVED, Outcome.BLOCKED]

    handled = "mesh_messages_handled_total"
    coordinator = await settled(
        url_of(mesh, "coordinator"), lambda s: s.value(handled, consumer="coordinator-reviews") == 4
    )
    decided = "mesh_rounds_decided_total"
    assert coordinator.value("mesh_rounds_opened_total", service="coordinator") == 2
    assert coordinator.value(decided, outcome="approved", fallback="none") == 1
    assert coordinator.value(decided, outcome="blocked", fallback="none") == 1
    assert coordinator.value(decided) == 2
    assert coordinator.value("mesh_round_duration_seconds_count") == 2
    assert coordinator.value(handled, consumer="coordinator-proposals", result="ok") == 2
    assert coordinator.value(handled, consumer="coordinator-reviews", result="ok") == 4
    assert coordinator.value(handled, result="retried") + coordinator.value(handled, result="dead_lettered") == 0
    # read from the server with the coordinator's own identity, which may ask about its consumers
    pending = coordinator.find("mesh_consumer_pending_messages", consumer="coordinator-proposals")
    assert [s.value for s in pending] == [0]

    security = await settled(url_of(mesh, "security"), lambda s: s.value("mesh_reviews_total") == 2)
    assert security.value("mesh_reviews_total", reviewer="security", verdict="approve") == 1
    assert security.value("mesh_reviews_total", reviewer="security", verdict="reject") == 1
    assert security.value(handled, consumer="security", result="ok") == 2

    registry = await scrape(url_of(mesh, "registry"))
    assert "mesh_messages_handled" in registry.families and registry.value(handled) == 0


@pytest.fixture
def api():
    with FakeAnthropic(seed=11) as server:
        yield server


async def test_model_requests_tokens_and_cost_are_what_the_api_returned(settings, launch, client, api):
    """The security reviewer on the fake API: a 429, then an answer with known usage. Its
    /metrics counts one rate_limited and one ok request, the tokens by kind exactly as the fake
    reported them, and the cost the review carries; the breaker stays closed."""
    spent = usage(input_tokens=1000, output_tokens=200, cache_read=300, cache_creation=50)
    api.reply(rate_limited(retry_after=1), tool_call(APPROVE, use=spent), model=SONNET)
    mesh = await asyncio.to_thread(
        launch,
        settings,
        ["security", "coordinator"],
        anthropic_api_key="sk-test",
        anthropic_base_url=api.url,
        reviewer_discovery="false",
        reviewers="security",
        required_skills="review.security",
        llm_chain=f"{SONNET},offline",
    )
    proposal = sample("release_clean", release_id="rel-metrics-llm")
    await client.propose(proposal)
    outcome = await client.wait_for_outcome(proposal, timeout=25)
    assert outcome is not None and outcome.outcome is Outcome.APPROVED
    (review,) = outcome.reviews
    assert review.model == SONNET

    scraped = await settled(url_of(mesh, "security"), lambda s: s.value("mesh_reviews_total") == 1)
    requests, tokens = "mesh_llm_requests_total", "mesh_llm_tokens_total"
    assert api.stats()["by_status"] == {"429": 1, "200": 1}
    assert scraped.value(requests, service="security", model=SONNET, status="rate_limited") == 1
    assert scraped.value(requests, model=SONNET, status="ok") == 1
    assert scraped.value(requests) == 2
    kinds = ("input", "output", "cache_read", "cache_write")
    assert {kind: scraped.value(tokens, model=SONNET, kind=kind) for kind in kinds} == {
        "input": 1000,
        "output": 200,
        "cache_read": 300,
        "cache_write": 50,
    }
    assert review.tokens == TokenUsage(
        input_tokens=1000, output_tokens=200, cache_read_input_tokens=300, cache_creation_input_tokens=50
    )
    cost = scraped.value("mesh_llm_cost_usd_total", service="security", model=SONNET)
    assert cost == pytest.approx(review.cost_usd) and cost == pytest.approx(DEFAULT_PRICES[SONNET].cost(review.tokens))
    assert scraped.value("mesh_llm_gate_wait_seconds_count", model=SONNET) == 2
    assert scraped.value("mesh_llm_breaker_state", model=SONNET, state="closed") == 1
