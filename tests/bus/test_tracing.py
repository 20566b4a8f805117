"""bus/tracing.py against a real nats-server: W3C trace context travels in NATS headers from
publish to consume, each hop is a span of the messaging conventions, and a dead letter shows as
a span of its own. Spans are collected in memory; the exporter is the SDK's."""

from __future__ import annotations

import asyncio

import nats
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from bus.client import MeshClient
from bus.logs import add_trace_ids
from bus.ops.dead_letters import replay
from bus.provision import provision
from bus.runtime import Agent, Delivery
from bus.telemetry import Telemetry
from bus.tracing import TracingTelemetry, tracing_from_environment
from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted
from tests.bus.test_runtime import dead_letters, proposal_json, publish_raw


@pytest.fixture
def traced():
    """(telemetry, exporter): spans end up in the exporter as soon as they end."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield TracingTelemetry(provider), exporter
    provider.shutdown()


def named(exporter: InMemorySpanExporter, name: str) -> list:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def only(exporter: InMemorySpanExporter, name: str):
    found = named(exporter, name)
    assert len(found) == 1, f"{name}: {[s.name for s in exporter.get_finished_spans()]}"
    return found[0]


async def ended(exporter: InMemorySpanExporter, name: str, count: int = 1, timeout: float = 10.0) -> None:
    """Wait until `count` spans called `name` have ended (a process span ends after its ack)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(named(exporter, name)) < count:
        assert asyncio.get_running_loop().time() < deadline, (
            f"{name}: {[s.name for s in exporter.get_finished_spans()]}"
        )
        await asyncio.sleep(0.02)


def is_child(child, parent) -> bool:
    return child.parent is not None and child.parent.span_id == parent.context.span_id


def proposal(release_id: str) -> ReleaseProposed:
    return ReleaseProposed(release_id=release_id, service="svc", version="1.0.0")


async def test_one_trace_runs_from_the_proposal_through_a_handlers_publish_to_the_next_consumer(make_settings, traced):
    """The client's `send` span is the parent of the handler's `process` span, whose review
    `send` is the parent of the next consumer's `process`: one trace, linked by the
    `traceparent` header, with the messaging attributes and the release on each span; the
    handler sees its trace id (what a review records)."""
    telemetry, exporter = traced
    settings = make_settings()
    s = settings.subjects
    agent = Agent("seam", settings=settings, telemetry=telemetry)
    seen: dict[str, str | None] = {}
    done = asyncio.Event()

    @agent.consumes(stream=s.events_stream, subject=s.release_proposed, model=ReleaseProposed)
    async def review(event: ReleaseProposed, delivery: Delivery) -> None:
        seen["trace_id"] = delivery.trace_id
        answer = ReviewSubmitted.answering(
            event, reviewer="seam", verdict="approve", confidence=1, rationale="ok", model="test"
        )
        await delivery.publish(answer, s.review_submitted("seam"), msg_id="seam-1")

    @agent.consumes(stream=s.reviews_stream, subject=s.reviews, model=ReviewSubmitted, durable="seam-reviews")
    async def counted(event: ReviewSubmitted, delivery: Delivery) -> None:
        seen["review_traceparent"] = delivery.message.headers.get("traceparent")
        done.set()

    async with agent.running(), await MeshClient.connect(settings, telemetry=telemetry) as client:
        await client.propose(proposal("rel-t1"))
        await asyncio.wait_for(done.wait(), 10)
        await ended(exporter, f"process {s.namespace}.reviews.release.*")  # the last span ends after its ack

    sent = only(exporter, f"send {s.release_proposed}")
    processed = only(exporter, f"process {s.release_proposed}")
    review_sent = only(exporter, f"send {s.namespace}.reviews.release.*")
    review_processed = only(exporter, f"process {s.namespace}.reviews.release.*")

    assert sent.parent is None and sent.kind == SpanKind.PRODUCER
    assert is_child(processed, sent) and processed.kind == SpanKind.CONSUMER
    assert is_child(review_sent, processed) and is_child(review_processed, review_sent)
    assert len({span.context.trace_id for span in exporter.get_finished_spans()}) == 1
    assert seen["trace_id"] == trace.format_trace_id(sent.context.trace_id)
    assert seen["review_traceparent"].split("-")[2] == trace.format_span_id(review_sent.context.span_id)

    digest = proposal("rel-t1").content_digest
    assert processed.attributes["messaging.system"] == "nats"
    assert processed.attributes["messaging.operation.type"] == "process"
    assert processed.attributes["messaging.destination.name"] == s.release_proposed
    assert processed.attributes["messaging.consumer.group.name"] == "seam"
    assert processed.attributes["messaging.message.id"] == f"proposal:rel-t1:{digest}"
    assert processed.attributes["mesh.deliveries"] == 1
    assert processed.attributes["mesh.release_id"] == "rel-t1"
    assert processed.attributes["mesh.content_digest"] == digest
    assert review_sent.attributes["messaging.operation.type"] == "send"
    assert review_sent.attributes["messaging.destination.name"] == s.review_submitted("seam")
    assert review_sent.attributes["messaging.message.id"] == "seam-1"
    assert review_sent.attributes["mesh.verdict"] == "approve"
    assert review_processed.attributes["messaging.consumer.group.name"] == "seam-reviews"


async def test_an_invalid_message_shows_a_failed_span_and_its_dead_letter(make_settings, traced):
    """Invalid JSON: the `process` span fails with the reason, and a `dead-letter` child span
    (error type and reason) holds the publish of the record, whose headers carry that span's
    context on."""
    telemetry, exporter = traced
    settings = make_settings()
    s = settings.subjects
    agent = Agent("strict", settings=settings, telemetry=telemetry)

    @agent.consumes(stream=s.events_stream, subject=s.release_proposed, model=ReleaseProposed)
    async def never(event: ReleaseProposed, delivery: Delivery) -> None:
        raise AssertionError("an invalid message reached the handler")

    async with agent.running():
        await publish_raw(settings, s.release_proposed, b"{not json")
        assert len(await dead_letters(settings, expect=1)) == 1
        await ended(exporter, f"process {s.release_proposed}")
    nc = await nats.connect(settings.nats_url)
    try:
        stored = await nc.jetstream().get_msg(s.dead_letter_stream, 1)
    finally:
        await nc.close()

    processed = only(exporter, f"process {s.release_proposed}")
    letter = only(exporter, "dead-letter")
    record_sent = only(exporter, f"send {s.namespace}.deadletter.*")
    assert processed.status.status_code == StatusCode.ERROR
    assert "Invalid JSON" in processed.status.description
    assert is_child(letter, processed) and is_child(record_sent, letter)
    assert letter.attributes["error.type"] == "invalid"
    assert letter.attributes["mesh.dead_letter.reason"] == processed.status.description
    assert stored.headers["traceparent"].split("-")[2] == trace.format_span_id(record_sent.context.span_id)


async def test_each_delivery_of_a_failing_message_is_a_failed_span_under_the_same_send(make_settings, traced):
    """A handler that raises: one `process` span per delivery (`mesh.deliveries` 1, 2), each
    failed with the error and a child of the same `send`; the last one dead-letters it."""
    telemetry, exporter = traced
    settings = make_settings(max_deliver=2)
    s = settings.subjects
    agent = Agent("flaky", settings=settings, telemetry=telemetry)

    @agent.consumes(stream=s.events_stream, subject=s.release_proposed, model=ReleaseProposed)
    async def always_fail(event: ReleaseProposed, delivery: Delivery) -> None:
        raise RuntimeError("downstream is down")

    async with agent.running(), await MeshClient.connect(settings, telemetry=telemetry) as client:
        await client.propose(proposal("rel-t3"))
        assert len(await dead_letters(settings, expect=1, timeout=15)) == 1
        await ended(exporter, f"process {s.release_proposed}", count=2)

    sent = only(exporter, f"send {s.release_proposed}")
    deliveries = sorted(named(exporter, f"process {s.release_proposed}"), key=lambda x: x.attributes["mesh.deliveries"])
    assert [span.attributes["mesh.deliveries"] for span in deliveries] == [1, 2]
    assert all(is_child(span, sent) for span in deliveries)
    assert all(span.status.status_code == StatusCode.ERROR for span in deliveries)
    assert all("downstream is down" in span.status.description for span in deliveries)
    letter = only(exporter, "dead-letter")
    assert is_child(letter, deliveries[1]) and letter.attributes["error.type"] == "failed"


def test_tracing_is_on_only_when_an_otlp_endpoint_is_configured():
    """No endpoint, `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`: no tracing (None,
    the runtime keeps its no-op). An endpoint: the SDK with the agent's name as service.name,
    unless OTEL_SERVICE_NAME names it, and nothing installed before `start()` (an agent built only
    to read its consumers exports nothing)."""
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    assert tracing_from_environment("security", {}) is None
    assert tracing_from_environment("security", {**endpoint, "OTEL_SDK_DISABLED": "TRUE"}) is None
    assert tracing_from_environment("security", {**endpoint, "OTEL_TRACES_EXPORTER": "none"}) is None

    for env, name in [
        (endpoint, "security"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces"}, "security"),
        ({**endpoint, "OTEL_SERVICE_NAME": "sec-eu"}, "sec-eu"),
    ]:
        telemetry = tracing_from_environment("security", env)
        try:
            assert isinstance(telemetry, TracingTelemetry)
            assert telemetry.provider.resource.attributes["service.name"] == name
            assert trace.get_tracer_provider() is not telemetry.provider
        finally:
            telemetry.provider.shutdown()


def test_log_lines_inside_a_span_carry_its_trace_and_span_ids(traced):
    """The structlog processor adds `trace_id` and `span_id` (hex) inside a span, nothing outside;
    the trace id is the one the seam gives for the wire."""
    telemetry, _ = traced
    assert add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}
    with telemetry.span("work"):
        line = add_trace_ids(None, "info", {"event": "x"})
        context = trace.get_current_span().get_span_context()
        on_the_wire = telemetry.trace_id()
    assert line["trace_id"] == trace.format_trace_id(context.trace_id) == on_the_wire
    assert line["span_id"] == trace.format_span_id(context.span_id)


async def test_a_dead_letter_written_from_an_advisory_links_to_the_original_trace(make_settings, traced):
    """A message whose consumer died on each delivery is dead-lettered from the server's advisory,
    which carries no trace: the `dead-letter` span links to the trace in the original's headers."""
    telemetry, exporter = traced
    settings = make_settings(max_deliver=2, ack_wait_seconds=1.0)
    s = settings.subjects
    agent = Agent("victim", settings=settings, telemetry=telemetry)

    @agent.consumes(stream=s.events_stream, subject=s.release_proposed, model=ReleaseProposed)
    async def handle(event: ReleaseProposed, delivery: Delivery) -> None:
        raise AssertionError("past max_deliver, never delivered again")

    original = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await provision(js, settings, agent.consumers, reconcile=False)
        await publish_raw(settings, s.release_proposed, proposal_json("rel-doomed"), {"traceparent": original})
        psub = await js.pull_subscribe_bind("victim", s.events_stream)
        for _ in range(settings.max_deliver):  # a "process" that takes it and dies before acking
            await psub.fetch(1, timeout=5)
            await asyncio.sleep(1.3)
        await psub.unsubscribe()
    finally:
        await nc.close()

    async with agent.running():
        assert len(await dead_letters(settings, expect=1, timeout=15)) == 1
        await ended(exporter, "dead-letter")

    letter = only(exporter, "dead-letter")
    [link] = letter.links
    assert trace.format_trace_id(link.context.trace_id) == "0af7651916cd43dd8448eb211c80319c"
    assert trace.format_span_id(link.context.span_id) == "b7ad6b7169203331"
    assert letter.attributes["error.type"] == "failed"
    assert letter.context.trace_id != link.context.trace_id  # the advisory's own trace


async def test_a_replayed_dead_letter_continues_the_original_trace(make_settings, traced):
    """`mesh dlq replay` with tracing on: a `mesh dlq replay` span under the original message's
    context, and the copy's `traceparent` is its `send` span, in the original's trace."""
    telemetry, exporter = traced
    settings = make_settings()
    s = settings.subjects
    agent = Agent("strict", settings=settings, telemetry=Telemetry())

    @agent.consumes(stream=s.events_stream, subject=s.release_proposed, model=ReleaseProposed)
    async def never(event: ReleaseProposed, delivery: Delivery) -> None:
        raise AssertionError("an invalid message reached the handler")

    original = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with agent.running():
        await publish_raw(settings, s.release_proposed, b'{"release_id": "rel-r"}', {"traceparent": original})
        assert len(await dead_letters(settings, expect=1)) == 1
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        _, ack = await replay(js, settings, 1, telemetry=telemetry)
        copy = await js.get_msg(s.events_stream, ack.seq)
    finally:
        await nc.close()

    replayed = only(exporter, "mesh dlq replay")
    sent = only(exporter, f"send {s.release_proposed}")
    assert trace.format_trace_id(replayed.context.trace_id) == "0af7651916cd43dd8448eb211c80319c"
    assert trace.format_span_id(replayed.parent.span_id) == "b7ad6b7169203331"
    assert is_child(sent, replayed)
    assert (
        copy.headers["traceparent"]
        == f"00-0af7651916cd43dd8448eb211c80319c-{trace.format_span_id(sent.context.span_id)}-01"
    )
