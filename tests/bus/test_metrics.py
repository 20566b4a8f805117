"""Prometheus metrics: the module on its own, then an agent scraped over real HTTP against a real
nats-server after known traffic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from bus.metrics import Metrics, metrics
from bus.ops.embedded import free_port
from bus.runtime import Agent, Delivery
from contracts.envelope import utc_now
from contracts.outcomes import Outcome, RoundDecided
from contracts.releases import ReleaseProposed
from contracts.reviews import TokenUsage
from tests.bus.test_runtime import proposal_json, publish_raw
from tests.settled import consumer_settled


class Scrape:
    """One `/metrics` page, parsed with the Prometheus text parser."""

    def __init__(self, text: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples = [sample for family in self.families.values() for sample in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels` (0 when none)."""
        return sum(s.value for s in self.find(name, **labels))

    def find(self, name: str, **labels: str) -> list:
        """The samples called `name` whose labels include `labels`."""
        return [s for s in self.samples if s.name == name and labels.items() <= s.labels.items()]


async def scrape(url: str, **headers: str) -> Scrape:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{url}/metrics", headers=headers, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


async def page(m: Metrics) -> Scrape:
    body, _ = await m.exposition()
    return Scrape(body.decode())


# --- the module ---------------------------------------------------------------------------


async def test_messages_are_counted_by_how_they_were_settled_and_timed():
    """`handling` counts acked as ok, nak'd as retried, termed as dead_lettered, and a message
    that was never settled (a lost ack, a cancelled handler) as retried: JetStream redelivers it."""
    m = Metrics("svc")
    for committed in ("ACKED", "ACKED", "NACKED", "REJECTED", None):
        with m.handling("svc-proposals", SimpleNamespace(committed=committed)):
            pass
    scraped = await page(m)

    handled = "mesh_messages_handled_total"
    assert scraped.value(handled, service="svc", consumer="svc-proposals", result="ok") == 2
    assert scraped.value(handled, result="retried") == 2
    assert scraped.value(handled, result="dead_lettered") == 1
    assert scraped.value("mesh_handler_duration_seconds_count", result="ok") == 2


async def test_what_a_handler_calls_records_into_the_agent_handling_the_message():
    """Inside `handling`, `metrics()` is that agent's; outside, a detached instance nobody serves;
    two agents never share a counter."""
    security, compliance = Metrics("security"), Metrics("compliance")

    async def deep_down() -> None:  # e.g. the LLM client, shared by both
        metrics().llm_request("claude-haiku-4-5", "ok")

    with security.handling("security", SimpleNamespace(committed="ACKED")):
        await deep_down()
    await deep_down()  # outside any handler

    assert (await page(security)).value("mesh_llm_requests_total", service="security", status="ok") == 1
    assert (await page(compliance)).value("mesh_llm_requests_total") == 0
    assert metrics() is not security and metrics().service == "unbound"


async def test_a_decided_round_is_counted_by_outcome_and_strictest_fallback_with_its_duration():
    """No fallback is `none`; several are counted under the strictest (block, escalate,
    approve_with_warning); the duration is opened_at to the decision."""
    m = Metrics("coordinator")
    opened = utc_now()

    def decided(outcome: Outcome, fallbacks: dict[str, str], seconds: float) -> RoundDecided:
        return RoundDecided(
            release_id="rel-1",
            outcome=outcome,
            reason="test",
            policy="all",
            fallbacks_applied=fallbacks,
            opened_at=opened,
            occurred_at=opened + timedelta(seconds=seconds),
        )

    m.round_opened()
    m.round_decided(decided(Outcome.APPROVED, {}, 0.4))
    m.round_decided(decided(Outcome.BLOCKED, {"a": "approve_with_warning", "b": "block", "c": "escalate"}, 30))
    m.round_decided(decided(Outcome.ESCALATED, {"a": "escalate", "b": "approve_with_warning"}, 30))
    scraped = await page(m)

    assert scraped.value("mesh_rounds_opened_total") == 1
    decided_total = "mesh_rounds_decided_total"
    assert scraped.value(decided_total, outcome="approved", fallback="none") == 1
    assert scraped.value(decided_total, outcome="blocked", fallback="block") == 1
    assert scraped.value(decided_total, outcome="escalated", fallback="escalate") == 1
    assert scraped.value("mesh_round_duration_seconds_count") == 3
    assert scraped.value("mesh_round_duration_seconds_sum") == pytest.approx(60.4)
    assert scraped.value("mesh_round_duration_seconds_bucket", outcome="approved", le="0.5") == 1


async def test_model_spend_is_counted_by_kind_and_the_breaker_shows_one_state():
    """Tokens by kind and cost by model add up; the breaker's gauge is 1 for its state only."""
    m = Metrics("security")
    spent = TokenUsage(input_tokens=100, output_tokens=20, cache_read_input_tokens=300, cache_creation_input_tokens=5)
    m.llm_spent("claude-sonnet-4-6", spent, 0.0012)
    m.llm_spent("claude-sonnet-4-6", spent, 0.0012)
    m.llm_gate_waited("claude-sonnet-4-6", 0.3)
    for state in ("closed", "open", "half_open", "closed"):
        m.llm_breaker("claude-sonnet-4-6", state)
    scraped = await page(m)

    tokens = "mesh_llm_tokens_total"
    assert scraped.value(tokens, kind="input") == 200 and scraped.value(tokens, kind="output") == 40
    assert scraped.value(tokens, kind="cache_read") == 600 and scraped.value(tokens, kind="cache_write") == 10
    assert scraped.value("mesh_llm_cost_usd_total", model="claude-sonnet-4-6") == pytest.approx(0.0024)
    assert scraped.value("mesh_llm_gate_wait_seconds_bucket", le="0.5") == 1
    breaker = "mesh_llm_breaker_state"
    assert scraped.value(breaker, state="closed") == 1
    assert scraped.value(breaker, state="open") == 0 and scraped.value(breaker, state="half_open") == 0


async def test_the_endpoint_speaks_the_exposition_formats_and_only_to_get():
    """Text format by default, OpenMetrics when asked, HEAD without a body, 405 for POST."""
    m = Metrics("svc")
    m.reviewed("svc", "approve")
    transport = httpx.ASGITransport(app=m.endpoint())
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        text = await http.get("/metrics")
        open_metrics = await http.get("/metrics", headers={"accept": "application/openmetrics-text"})
        head = await http.head("/metrics")
        post = await http.post("/metrics")

    assert text.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert Scrape(text.text).value("mesh_reviews_total", reviewer="svc", verdict="approve") == 1
    assert "# TYPE mesh_reviews_total counter" in text.text and "_created" not in text.text
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.endswith("# EOF\n")
    assert head.status_code == 200 and head.content == b""
    assert post.status_code == 405


# --- an agent, over HTTP, against a real nats-server ---------------------------------------


@contextlib.asynccontextmanager
async def serving(agent: Agent, port: int) -> AsyncIterator[str]:
    """The agent's app under uvicorn on `port`; its URL while it runs."""
    server = uvicorn.Server(
        uvicorn.Config(agent.build_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def until(url: str, done, timeout: float = 20.0) -> Scrape:
    """Scrape until `done(scrape)` holds (or time runs out); the last scrape."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        scraped = await scrape(url)
        if done(scraped) or asyncio.get_running_loop().time() > deadline:
            return scraped
        await asyncio.sleep(0.1)


async def test_counters_move_by_exactly_the_traffic_sent(make_settings):
    """Five good messages, two invalid ones and one whose handler fails once: /metrics, parsed
    with the Prometheus parser, says ok 6, retried 1, dead_lettered 2, and nothing waits."""
    settings = make_settings(http_port=free_port())
    agent = Agent("counted", settings=settings)
    failed_once: set[str] = set()

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def handle(event: ReleaseProposed, delivery: Delivery) -> None:
        if event.release_id.startswith("flaky") and event.release_id not in failed_once:
            failed_once.add(event.release_id)
            raise RuntimeError("downstream hiccup")

    handled = "mesh_messages_handled_total"
    async with serving(agent, settings.http_port) as url:
        before = await scrape(url)
        subject = settings.subjects.release_proposed
        for n in range(5):
            await publish_raw(settings, subject, proposal_json(f"rel-{n}"))
        await publish_raw(settings, subject, b"{not json")
        await publish_raw(settings, subject, b'{"release_id": "rel-no-service"}')
        await publish_raw(settings, subject, proposal_json("flaky-1"))
        after = await until(url, lambda s: s.value(handled) >= 9)
        # every message acked or terminated, none to redeliver: nothing more can be counted
        await consumer_settled(settings.nats_url, settings.subjects.events_stream, "counted")
        settled = await scrape(url)

    assert before.value(handled) == 0
    assert "mesh_messages_handled" in before.families  # described before the first message
    for scraped in (after, settled):
        assert scraped.value(handled, service="counted", consumer="counted", result="ok") == 6
        assert scraped.value(handled, result="retried") == 1
        assert scraped.value(handled, result="dead_lettered") == 2
    assert settled.value("mesh_handler_duration_seconds_count", result="ok") == 6
    assert settled.value("mesh_handler_duration_seconds_count", result="dead_lettered") == 2
    for gauge in ("mesh_consumer_pending_messages", "mesh_consumer_ack_pending_messages"):
        assert [s.value for s in settled.find(gauge, consumer="counted")] == [0]


async def test_consumer_lag_is_read_from_the_server_at_each_scrape(make_settings):
    """One worker held by a handler that waits: four messages published, the scrape says one
    delivered and unacknowledged, three pending; once released, nothing waits."""
    settings = make_settings(http_port=free_port(), workers=1)
    agent = Agent("lagging", settings=settings)
    release = asyncio.Event()

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def handle(event: ReleaseProposed, delivery: Delivery) -> None:
        await release.wait()

    pending, ack_pending = "mesh_consumer_pending_messages", "mesh_consumer_ack_pending_messages"
    async with serving(agent, settings.http_port) as url:
        for n in range(4):
            await publish_raw(settings, settings.subjects.release_proposed, proposal_json(f"rel-{n}"))
        held = await until(url, lambda s: s.value(pending) == 3 and s.value(ack_pending) == 1, timeout=10)
        release.set()
        await until(url, lambda s: s.value("mesh_messages_handled_total") == 4)
        drained = await until(url, lambda s: s.value(pending) == 0 and s.value(ack_pending) == 0, timeout=5)

    assert (held.value(pending, consumer="lagging"), held.value(ack_pending, consumer="lagging")) == (3, 1)
    assert (drained.value(pending), drained.value(ack_pending)) == (0, 0)
