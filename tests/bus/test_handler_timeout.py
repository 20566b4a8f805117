"""A handler that never returns, against a real nats-server: cancelled at its budget, then dead-lettered."""

from __future__ import annotations

import asyncio

from bus.runtime import Agent, Delivery
from contracts.releases import ReleaseProposed
from tests.bus.test_runtime import dead_letters, proposal_json, publish_raw
from tests.settled import consumer_settled


async def test_a_handler_that_hangs_on_every_delivery_ends_in_the_dead_letter_stream(make_settings):
    """A handler awaiting for ever (the loop free, in-progress acks flowing) is cancelled after
    MESH_HANDLER_TIMEOUT_SECONDS on each delivery and dead-lettered on the last, not held for ever."""
    settings = make_settings(max_deliver=3, ack_wait_seconds=1.0, handler_timeout_seconds=0.5)
    calls: list[int] = []
    cancelled: list[int] = []
    agent = Agent("stuck", settings=settings)

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def hang(event: ReleaseProposed, delivery: Delivery) -> None:
        calls.append(delivery.deliveries)
        try:
            await asyncio.Event().wait()  # never set: a downstream that never answers
        except asyncio.CancelledError:
            cancelled.append(delivery.deliveries)
            raise

    async with agent.running():
        await publish_raw(settings, settings.subjects.release_proposed, proposal_json("rel-hang"))
        records = await dead_letters(settings, expect=1, timeout=20)
        # terminated after its record: the server will never deliver it again
        await consumer_settled(settings.nats_url, settings.subjects.events_stream, "stuck")

    assert calls == [1, 2, 3]
    assert cancelled == [1, 2, 3]
    assert len(records) == 1
    assert records[0].error_type == "failed"
    assert records[0].deliveries == 3
    assert "MESH_HANDLER_TIMEOUT_SECONDS" in records[0].error
    assert agent.in_flight == 0


async def test_a_handler_within_its_budget_is_not_cancelled(make_settings):
    """A handler slower than ack_wait but inside MESH_HANDLER_TIMEOUT_SECONDS runs once and is acked."""
    settings = make_settings(ack_wait_seconds=1.0, handler_timeout_seconds=10.0)
    calls: list[int] = []
    agent = Agent("patient", settings=settings)

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def slow(event: ReleaseProposed, delivery: Delivery) -> None:
        calls.append(delivery.deliveries)
        await asyncio.sleep(2.0)

    async with agent.running():
        await publish_raw(settings, settings.subjects.release_proposed, proposal_json("rel-slow"))
        # acked after 2 s: a redelivery at ack_wait (1 s) would have reached the handler before
        info = await consumer_settled(settings.nats_url, settings.subjects.events_stream, "patient")

    assert calls == [1]
    assert info.delivered.consumer_seq == 1  # the server delivered it once: no redelivery
    assert agent.handled == 1
