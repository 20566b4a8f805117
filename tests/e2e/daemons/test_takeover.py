"""A daemon agent's standby takes over within a bound, and a frozen-then-resumed active
instance is fenced off (real processes, real nats-server, SIGKILL / SIGSTOP / SIGCONT)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import httpx

from bus.ops.bench.daemon import publish_added, until
from bus.ops.bench.tally import Added, reached_subject
from tests.bus.stateful.support import Counted

LEASE = 3  # the default


@contextlib.asynccontextmanager
async def flowing(js, namespace: str):
    """An event published every 20 ms while inside; yields the list of their sequences."""
    sent: list[int] = []
    stop = asyncio.Event()

    async def feed() -> None:
        n = 0
        while not stop.is_set():  # a flag, not cancel(): nats-py's request can swallow a cancellation
            sent.extend(await publish_added(js, namespace, [Added(key=f"k{n % 5}", amount=1 + n % 4)]))
            n += 1
            await asyncio.sleep(0.02)

    feeder = asyncio.create_task(feed())
    try:
        yield sent
    finally:
        stop.set()
        await feeder


async def test_the_standby_takes_over_within_the_lease_after_the_active_is_killed(tallies, harness):
    """With the default lease (3 s), SIGKILL the active instance twice: each time the standby is
    active, and has applied an event published after the kill, within lease + 2 s."""
    group = await tallies()
    assert group.settings.daemon_lease_seconds == LEASE
    js = harness.jetstream()
    group.start(2)
    gaps = []
    async with flowing(js, group.settings.namespace) as sent, httpx.AsyncClient() as client:
        for _ in range(2):
            active = await group.active(client)
            standby = next(p for p in group.processes if p is not active)
            assert await until(lambda s=standby: s.ready(client), timeout=20), group.logs()[-3000:]
            await asyncio.sleep(0.3)
            killed_at, after_kill = time.monotonic(), sent[-1]
            active.kill()

            async def applied_new(s=standby, seq=after_kill):
                body = await s.ready(client)
                applied = body["daemon"]["applied"].get(group.settings.subjects.events_stream, 0) if body else 0
                return body and body["role"] == "active" and applied > seq

            assert await until(applied_new, timeout=LEASE + 10, interval=0.01), group.logs()[-3000:]
            gaps.append(time.monotonic() - killed_at)
            active.start()
    assert all(gap < LEASE + 2 for gap in gaps), gaps


async def test_a_frozen_active_instance_is_fenced_when_it_wakes(tallies, harness):
    """SIGSTOP the active instance past its lease: the standby takes over; SIGCONT the old one:
    it writes nothing, publishes nothing, and says it stepped down (log and /readyz). No event is
    lost or applied twice; each effect is published once."""
    group = await tallies(daemon_lease_seconds=1)
    js = harness.jetstream()
    seen = await Counted.on(harness, reached_subject(group.settings.namespace))
    group.start(2)
    async with flowing(js, group.settings.namespace) as sent, httpx.AsyncClient() as client:
        old = await group.active(client)
        new = next(p for p in group.processes if p is not old)
        assert await until(lambda: new.ready(client), timeout=20), group.logs()[-3000:]
        await asyncio.sleep(0.5)
        old.signal(signal.SIGSTOP)

        async def took_over():
            body = await new.ready(client)
            return body and body["role"] == "active"

        assert await until(took_over, timeout=10), group.logs()[-3000:]
        await asyncio.sleep(1.5)  # the new active instance applies and publishes meanwhile
        old.signal(signal.SIGCONT)

        async def stepped_down():
            body = await old.ready(client)
            return body if body and body["role"] == "standby" and body["daemon"].get("stepped_down") else None

        body = await until(stepped_down, timeout=10)
        assert body, group.logs()[-3000:]
        await asyncio.sleep(0.5)
    async with httpx.AsyncClient() as client:
        active = await group.settled(client, js, last=sent[-1])
        assert active is new
        state, effects = await group.expected(js)
        assert (await active.tally(client))["tally"] == state.model_dump()
    assert "stepped down to standby" in group.logs()
    await harness.flush()
    stored = await group.stored_effect_ids(js)
    assert stored == [e.msg_id for e in effects]
    assert sorted(seen.ids()) == sorted(stored)
