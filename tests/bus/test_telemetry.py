"""bus/telemetry.py: the one hook on each path. Every handled message passes `consuming` once
(with the headers it arrived with) and every publish passes `publishing` once (whose headers
are the ones sent) — against a real nats-server."""

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
        self.published: list[str] = []

    @contextlib.contextmanager
    def consuming(self, service, subject, headers):
        self.consumed.append((subject, dict(headers)))
        yield

    def publishing(self, service, subject, headers):
        self.published.append(subject)
        return {**headers, "traceparent": f"00-{'a' * 32}-{'b' * 16}-01"}


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
    assert telemetry.published == [s.review_submitted("seam")]
