"""bus/telemetry.py: the one hook on each path. Every handled message passes `consuming` once
(with the headers it arrived with), is described once parsed (`received`), and every publish
passes `publishing` once, around its PubAck (whose headers are the ones sent) — against a real
nats-server. Without OTEL_* variables an agent keeps the no-op seam."""

from __future__ import annotations

import asyncio
import contextlib

from bus.runtime import Agent, Delivery
from bus.telemetry import Telemetry
from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted
from tests.bus.test_runtime import proposal_json, publish_raw


class Recording(Telemetry):
    def __init__(self) -> None:
        self.consumed: list[tuple[str, dict]] = []
        self.received_: list[str] = []
        self.published: list[tuple[str, str | None]] = []
        self.acked_inside: list[bool] = []
        self._publishing = False

    @contextlib.contextmanager
    def consuming(self, service, message):
        self.consumed.append((message.subject, dict(message.headers or {})))
        yield

    def received(self, model):
        self.received_.append(type(model).__name__)

    @contextlib.contextmanager
    def publishing(self, service, subject, headers, model=None):
        self.published.append((subject, getattr(model, "release_id", None)))
        self._publishing = True
        try:
            yield {**headers, "traceparent": f"00-{'a' * 32}-{'b' * 16}-01"}
        finally:
            self._publishing = False

    def annotate(self, attributes):
        self.acked_inside.append(self._publishing)


async def test_each_message_and_each_publish_pass_the_seam_once(make_settings):
    """A proposal in, a review out: one `consuming` for the proposal, one for the review (with
    the header `publishing` added), and one `publishing` for the review."""
    settings = make_settings()
    s = settings.subjects
    telemetry = Recording()
    agent = Agent("seam", settings=settings, telemetry=telemetry)
    reviewed = asyncio.Event()

    @agent.consumes(stream=s.events_stream, subject=s.release_proposed, model=ReleaseProposed)
    async def review(event: ReleaseProposed, delivery: Delivery) -> None:
        answer = ReviewSubmitted.answering(
            event, reviewer="seam", verdict="approve", confidence=1, rationale="ok", model="test"
        )
        await delivery.publish(answer, s.review_submitted("seam"), msg_id="seam-1")

    @agent.consumes(stream=s.reviews_stream, subject=s.reviews, model=ReviewSubmitted, durable="seam-reviews")
    async def seen(event: ReviewSubmitted, delivery: Delivery) -> None:
        reviewed.set()

    async with agent.running():
        await publish_raw(settings, s.release_proposed, proposal_json("rel-seam"))
        await asyncio.wait_for(reviewed.wait(), 10)
        await asyncio.sleep(0.2)

    assert [subject for subject, _ in telemetry.consumed] == [s.release_proposed, s.review_submitted("seam")]
    assert telemetry.consumed[1][1]["traceparent"].startswith("00-aaaa")
    assert telemetry.received_ == ["ReleaseProposed", "ReviewSubmitted"]
    assert telemetry.published == [(s.review_submitted("seam"), "rel-seam")]


async def test_a_duplicate_publish_is_noted_while_its_span_is_open(make_settings):
    """The PubAck is awaited inside `publishing`: a publish the stream had stored already (same
    message id) is annotated there, on the publish's own span."""
    settings = make_settings()
    s = settings.subjects
    telemetry = Recording()
    agent = Agent("seam", settings=settings, telemetry=telemetry)
    answer = ReviewSubmitted.answering(
        ReleaseProposed.model_validate_json(proposal_json("rel-dup")),
        reviewer="seam",
        verdict="approve",
        confidence=1,
        rationale="ok",
        model="test",
    )
    async with agent.running():
        first = await agent.publish(answer, s.review_submitted("seam"), msg_id="dup-1")
        second = await agent.publish(answer, s.review_submitted("seam"), msg_id="dup-1")

    assert not first.duplicate and second.duplicate
    assert telemetry.acked_inside == [True]


def test_without_otel_variables_an_agent_keeps_the_no_op_seam(make_settings, monkeypatch):
    """Zero cost when tracing is off: the agent's telemetry is the base class itself, whose hooks
    create nothing per message (one shared context manager) and leave headers as they are."""
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    agent = Agent("quiet", settings=make_settings())
    telemetry = agent.telemetry

    assert type(telemetry) is Telemetry and not telemetry.traces
    assert telemetry.consuming("quiet", None) is telemetry.consuming("quiet", None)
    assert telemetry.span("x") is telemetry.span("y")
    with telemetry.publishing("quiet", "s", {"Nats-Msg-Id": "1"}) as headers:
        assert headers == {"Nats-Msg-Id": "1"}
    assert telemetry.trace_id() is None
