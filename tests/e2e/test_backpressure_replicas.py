"""Backpressure across replicas: the consumer's `max_ack_pending` bounds what all replicas of a
service hold together, however many workers each has (real processes, a real nats-server)."""

from __future__ import annotations

import asyncio

from tests.e2e.support import sample
from tests.e2e.test_faults import log_events
from tests.fakes.anthropic_server import FakeAnthropic

SONNET = "claude-sonnet-4-6"
RELEASES = 10


async def test_replicas_together_hold_at_most_max_ack_pending(make_settings, launch, client):
    """Two security replicas with 4 workers each share one durable whose max_ack_pending is 3;
    their model answers in 1 s, so a burst of 10 proposals becomes a backlog. While it drains,
    the server never counts more than 3 unacked deliveries on the consumer (8 workers could hold
    8), the bound is reached, the rest waits in the stream, the model never has more than 3
    calls in flight, both replicas take part, and every release is reviewed once."""
    settings = make_settings(workers=4, max_ack_pending=3)
    with FakeAnthropic(seed=3) as api:
        api.profile(SONNET, latency=1.0)
        mesh = await asyncio.to_thread(
            launch,
            settings,
            ["security"],
            replicas={"security": 2},
            anthropic_api_key="sk-test",
            anthropic_base_url=api.url,
            llm_chains=f"security={SONNET}>offline",
        )
        releases = [sample("release_clean", release_id=f"rel-bp-{i}") for i in range(RELEASES)]
        await asyncio.gather(*(client.propose(r) for r in releases))

        stream = settings.subjects.events_stream
        most_unacked = most_waiting = 0
        loop = asyncio.get_running_loop()
        give_up = loop.time() + 25
        while loop.time() < give_up:
            info = await client.js.consumer_info(stream, "security")
            most_unacked = max(most_unacked, info.num_ack_pending)
            most_waiting = max(most_waiting, info.num_pending)
            if info.ack_floor.stream_seq >= RELEASES and not (info.num_pending or info.num_ack_pending):
                break  # the backlog drained: every proposal delivered and acked
            await asyncio.sleep(0.05)
        peak_calls = api.stats()["peak_in_flight"]

    assert info.ack_floor.stream_seq >= RELEASES, f"the backlog did not drain in time: {info}"
    assert most_unacked <= settings.max_ack_pending, f"{most_unacked} unacked at once across the replicas"
    assert most_unacked == settings.max_ack_pending  # the bound was what held them back
    assert most_waiting > 0  # the rest of the burst waited in the stream
    assert peak_calls <= settings.max_ack_pending
    reviewed = {
        s.log_path.name: [r["correlation_id"] for r in log_events(s.log_path, "reviewed")] for s in mesh.services
    }
    assert all(reviewed.values()), f"a replica took no work: {reviewed}"
    assert sorted(rid for rids in reviewed.values() for rid in rids) == sorted(r.release_id for r in releases)
