"""SIGKILL a daemon agent's instances at random points while 500 events flow: every event is
applied exactly once, every effect published exactly once (real processes, real nats-server)."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from bus.ops.bench.daemon import publish_added
from bus.ops.bench.tally import Added, reached_subject
from tests.bus.stateful.support import Counted

EVENTS = 500


@pytest.mark.parametrize("every", [1, 20])
async def test_killed_at_random_points_the_daemon_applies_every_event_once(tallies, harness, every):
    """Two instances; one of them (active or standby, at random) is SIGKILLed every 0.3-1.2 s
    and started again, while 500 events are published. Afterwards the checkpointed state and the
    active instance's state equal a replay of the stream, and each effect is in the stream once
    and was seen once by a core NATS subscriber."""
    group = await tallies(daemon_lease_seconds=1, tally_checkpoint_every=every)
    js = harness.jetstream()
    seen = await Counted.on(harness, reached_subject(group.settings.namespace))
    seed = random.randrange(2**32)
    chance = random.Random(seed)
    group.start(2)
    kills = 0
    async with httpx.AsyncClient() as client:
        assert await group.active(client), group.logs()[-3000:]
        events = [Added(key=f"k{n % 9}", amount=chance.randint(1, 6)) for n in range(EVENTS)]

        async def publish() -> int:
            last = 0
            for n in range(0, EVENTS, 5):
                last = (await publish_added(js, group.settings.namespace, events[n : n + 5]))[-1]
                await asyncio.sleep(0.08)
            return last

        publishing = asyncio.create_task(publish())
        while not publishing.done():
            await asyncio.sleep(chance.uniform(0.3, 1.2))
            victim = chance.choice(group.processes)
            victim.kill()
            victim.start()
            kills += 1
        last = await publishing
        active = await group.settled(client, js, last=last)
        await harness.flush()
        state, effects = await group.expected(js)
        body = await active.tally(client)

    assert kills >= 5, f"seed {seed}"
    assert body["tally"] == state.model_dump(), f"seed {seed}"
    assert state.events == EVENTS
    stored = await group.stored_effect_ids(js)
    assert stored == [e.msg_id for e in effects], f"seed {seed}"
    assert sorted(seen.ids()) == sorted(stored), f"seed {seed}: a core subscriber saw an effect twice or missed one"
