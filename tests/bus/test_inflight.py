"""bus/inflight.py in the runtime, against a real nats-server: every message a service holds is
kept alive, and a burst waits in the stream, not in the service."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import nats

from bus.runtime import Agent, Delivery
from contracts.releases import ReleaseProposed
from tests.settled import consumer_settled


async def publish_many(settings, count: int, *, start: int = 0) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        acks = [
            js.publish(
                settings.subjects.release_proposed,
                json.dumps({"release_id": f"rel-{i}", "service": "svc", "version": "1"}).encode(),
            )
            for i in range(start, count)
        ]
        await asyncio.gather(*acks)
    finally:
        await nc.close()


def slow_agent(settings, *, seconds: float, calls: Counter) -> Agent:
    agent = Agent("busy", settings=settings)

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def handle(event: ReleaseProposed, delivery: Delivery) -> None:
        calls[event.release_id] += 1
        await asyncio.sleep(seconds)

    return agent


async def test_messages_waiting_for_a_busy_worker_are_not_redelivered(make_settings):
    """With every worker busy for longer than ack_wait, the messages already fetched wait kept
    alive: each is handled exactly once, on its first delivery (FastStream's own worker pool
    would let them time out and be handled twice)."""
    settings = make_settings(ack_wait_seconds=1.5, workers=2)
    calls: Counter[str] = Counter()
    agent = slow_agent(settings, seconds=2.5, calls=calls)
    async with agent.running():
        await publish_many(settings, 6)
        info = await consumer_settled(settings.nats_url, settings.subjects.events_stream, "busy", timeout=60)

    assert calls == Counter({f"rel-{i}": 1 for i in range(6)})
    # the server's own count: six deliveries in all, so none was redelivered, handled or not
    assert (info.delivered.consumer_seq, info.num_redelivered) == (6, 0)


async def test_a_burst_grows_the_stream_not_the_service(make_settings):
    """200 messages at once: the service holds at most `workers` of them (all kept alive),
    the consumer never has more than max_ack_pending unacked, the rest wait in the stream,
    and every message is handled once."""
    settings = make_settings(workers=3, max_ack_pending=8)
    calls: Counter[str] = Counter()
    agent = slow_agent(settings, seconds=0.02, calls=calls)
    most_unacked = most_waiting = 0
    async with agent.running():
        await publish_many(settings, 200)
        nc = await nats.connect(settings.nats_url)
        js = nc.jetstream()
        for _ in range(300):
            info = await js.consumer_info(settings.subjects.events_stream, "busy")
            most_unacked = max(most_unacked, info.num_ack_pending)
            most_waiting = max(most_waiting, info.num_pending)
            if sum(calls.values()) >= 200:
                break
            await asyncio.sleep(0.05)
        await nc.close()
        [pool] = [p for p in agent._pools if p.most_held]  # the events consumer's pool

    assert sum(calls.values()) == 200 and set(calls.values()) == {1}
    assert pool.most_held <= settings.workers
    assert most_unacked <= settings.max_ack_pending
    assert most_waiting > 100  # the burst waited in the stream


async def test_a_clean_stop_hands_back_what_it_holds_without_spending_deliveries(make_settings):
    """A message published while a service is stopping (one slow message still running, pull
    requests for three more outstanding) is not taken and handed back again and again until its
    deliveries run out (max_deliver 3): the stopping service leaves its inbox first, and its
    successor gets the message well before ack_wait, on its first or second delivery."""
    settings = make_settings(ack_wait_seconds=30, workers=4, max_deliver=3)
    first: Counter[str] = Counter()
    deliveries: dict[str, int] = {}

    def recording_agent(calls: Counter) -> Agent:
        agent = Agent("busy", settings=settings)

        @agent.consumes(
            stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
        )
        async def handle(event: ReleaseProposed, delivery: Delivery) -> None:
            calls[event.release_id] += 1
            deliveries[event.release_id] = max(deliveries.get(event.release_id, 0), delivery.deliveries)
            await asyncio.sleep(1.0 if event.release_id == "rel-0" else 0.05)

        return agent

    running = recording_agent(first).running()
    await running.__aenter__()
    await publish_many(settings, 1)  # rel-0: still running when the stop begins
    for _ in range(100):
        if first:
            break
        await asyncio.sleep(0.05)
    stopping = asyncio.create_task(running.__aexit__(None, None, None))
    await asyncio.sleep(0.2)  # the stop is under way, waiting for rel-0
    await publish_many(settings, 2, start=1)  # rel-1
    await stopping

    second: Counter[str] = Counter()
    started = asyncio.get_running_loop().time()
    async with recording_agent(second).running():
        for _ in range(200):
            if sum(first.values()) + sum(second.values()) >= 2:
                break
            await asyncio.sleep(0.05)
    took = asyncio.get_running_loop().time() - started

    assert first + second == Counter({"rel-0": 1, "rel-1": 1})
    assert took < 10, f"handed-back messages waited {took:.1f} s: redelivered by ack_wait, not handed back"
    assert max(deliveries.values()) <= 2
