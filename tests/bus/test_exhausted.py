"""bus/exhausted.py: a message whose consumer died on its last delivery is still dead-lettered."""

from __future__ import annotations

import asyncio
import json

import nats

from bus.provision import provision
from bus.runtime import Agent, Delivery
from contracts.releases import ReleaseProposed
from tests.bus.test_runtime import dead_letters, proposal_json, publish_raw
from tests.settled import consumer_settled


async def test_a_message_never_acked_on_its_last_delivery_is_dead_lettered(make_settings):
    """Delivered max_deliver times to a consumer that never answers (as if its process died
    each time), the message gets a dead-letter record with payload, headers and delivery
    count, written by the service when it runs again; the handler never sees it again."""
    settings = make_settings(max_deliver=2, ack_wait_seconds=1.0)
    handled: list[str] = []
    agent = Agent("victim", settings=settings)

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def handle(event: ReleaseProposed, delivery: Delivery) -> None:
        handled.append(event.release_id)

    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await provision(js, settings, agent.consumers, reconcile=False)
        await publish_raw(
            settings, settings.subjects.release_proposed, proposal_json("rel-doomed"), {"X-Origin": "test"}
        )
        # A "process" that takes the message and dies before acking, max_deliver times.
        psub = await js.pull_subscribe_bind("victim", settings.subjects.events_stream)
        for _ in range(settings.max_deliver):
            [msg] = await psub.fetch(1, timeout=5)
            assert json.loads(msg.data)["release_id"] == "rel-doomed"
            await asyncio.sleep(1.3)  # ack_wait passes: the server counts it as a failed delivery
        await psub.unsubscribe()
    finally:
        await nc.close()

    async with agent.running():  # the service comes back
        records = await dead_letters(settings, expect=1, timeout=15)
        # a later proposal is handled and every message settled: the consumer is past the doomed one
        await publish_raw(settings, settings.subjects.release_proposed, proposal_json("rel-after"))
        await consumer_settled(settings.nats_url, settings.subjects.events_stream, "victim")

    assert handled == ["rel-after"]  # past max_deliver: never delivered again
    [record] = records
    assert record.error_type == "failed"
    assert "never acked" in record.error
    assert record.deliveries == 2
    assert record.service == "victim" and record.consumer == "victim"
    assert record.headers.get("X-Origin") == "test"
    assert json.loads(record.original_payload())["release_id"] == "rel-doomed"
