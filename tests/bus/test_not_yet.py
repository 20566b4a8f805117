"""`NotYet` from a handler, against a real nats-server: the message comes back after the delay
the handler asked for, and is dead-lettered only when it is still not possible on its last delivery."""

from __future__ import annotations

import asyncio
import time

from bus.errors import NotYet
from bus.runtime import Agent, Delivery
from contracts.releases import ReleaseProposed
from tests.bus.test_runtime import dead_letters, proposal_json, publish_raw


async def test_a_message_not_possible_yet_comes_back_after_the_delay_asked_for(make_settings):
    """Raising NotYet(seconds=1.5) hands the message back (not acked, not dead-lettered): it is
    delivered again no sooner than 1.5 s later — not after the 1 s backoff of a failure — and
    acked once the handler can finish it."""
    settings = make_settings(max_deliver=5, ack_wait_seconds=30.0)
    seen: list[tuple[int, float]] = []
    agent = Agent("patient", settings=settings)

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def wait_for_it(event: ReleaseProposed, delivery: Delivery) -> None:
        seen.append((delivery.deliveries, time.monotonic()))
        if delivery.deliveries == 1:
            raise NotYet("someone else holds it", seconds=1.5)

    async with agent.running():
        await publish_raw(settings, settings.subjects.release_proposed, proposal_json("rel-later"))
        give_up = time.monotonic() + 20
        while agent.handled < 1 and time.monotonic() < give_up:
            await asyncio.sleep(0.05)

    assert [n for n, _ in seen] == [1, 2]
    assert seen[1][1] - seen[0][1] >= 1.4, f"came back after {seen[1][1] - seen[0][1]:.2f} s"
    assert agent.handled == 1


async def test_a_message_still_not_possible_on_its_last_delivery_is_dead_lettered(make_settings):
    """NotYet on every delivery is not an endless loop: on the last delivery (max_deliver) the
    message is dead-lettered as failed, with the handler's reason."""
    settings = make_settings(max_deliver=2, ack_wait_seconds=30.0)
    agent = Agent("never", settings=settings)

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def never(event: ReleaseProposed, delivery: Delivery) -> None:
        raise NotYet("the lock is held for ever", seconds=0.2)

    async with agent.running():
        await publish_raw(settings, settings.subjects.release_proposed, proposal_json("rel-never"))
        records = await dead_letters(settings, expect=1, timeout=20)

    assert len(records) == 1 and records[0].error_type == "failed" and records[0].deliveries == 2
    assert "still not possible on delivery 2: the lock is held for ever" in records[0].error
