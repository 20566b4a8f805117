"""Crash safety of the coordinator: SIGKILL (not a graceful stop), then a restart."""

from __future__ import annotations

import asyncio

from bus.client import MeshClient
from bus.ops.embedded import free_port
from contracts.outcomes import Outcome
from coordinator.rounds import RoundState
from coordinator.store import RoundStore
from tests.e2e.support import OutcomeTap, eventually, sample, stream_messages


async def outcomes_for(settings, release_id: str) -> list[bytes]:
    s = settings.subjects
    return await stream_messages(settings.nats_url, s.outcomes_stream, s.outcomes_of(release_id))


async def test_coordinator_killed_mid_round_still_publishes_exactly_one_outcome(make_settings, launch):
    """The coordinator is SIGKILLed after opening a round; the missing review arrives while it
    is down; after a restart the round continues from KV and exactly one outcome appears."""
    # a short ack_wait: a message the killed coordinator held comes back quickly
    settings = make_settings(ack_wait_seconds=3)
    mesh = await asyncio.to_thread(
        launch, settings, ["security", "coordinator"], reviewers="security,compliance", deadline_seconds="20"
    )
    coordinator = next(s for s in mesh.services if s.name == "coordinator")

    async with (
        OutcomeTap(settings.nats_url, settings.subjects) as tap,  # what a subscriber would hear
        await MeshClient.connect(settings) as client,
    ):
        store = RoundStore(await client.js.key_value(settings.subjects.rounds_bucket))
        proposal = sample("release_clean", release_id="rel-crash-1")
        await client.propose(proposal)

        async def security_counted():
            round_ = await store.get(proposal.release_id, proposal.content_digest)
            return round_ if round_ and round_.state == RoundState.OPEN and "security" in round_.reviews else None

        assert await eventually(security_counted, timeout=15), "round never opened with the security review"
        coordinator.kill()  # SIGKILL mid-round

        await asyncio.to_thread(launch, settings, ["compliance"])  # reviews while the coordinator is dead
        await asyncio.sleep(1.0)
        assert await outcomes_for(settings, proposal.release_id) == []

        # on a port of its own: compliance, started since, may have been given the dead one's
        coordinator.port = free_port()
        await asyncio.to_thread(coordinator.start)
        outcome = await client.wait_for_outcome(proposal, timeout=20)
        assert outcome is not None and outcome.outcome == Outcome.APPROVED
        assert sorted(r.reviewer for r in outcome.reviews) == ["compliance", "security"]
        await asyncio.sleep(1.5)
        assert len(await outcomes_for(settings, proposal.release_id)) == 1
        assert len(tap.of(proposal.release_id)) == 1  # published once, not only stored once


async def test_deadline_fires_even_when_the_coordinator_was_down_at_the_deadline(make_settings, launch):
    """The deadline is a message the NATS server schedules, so a round whose coordinator died
    before its deadline still ends, with the fallback, as soon as a coordinator runs again; the
    server fired it within a second of the round's deadline."""
    settings = make_settings(ack_wait_seconds=3)
    mesh = await asyncio.to_thread(
        launch,
        settings,
        ["security", "coordinator"],
        reviewers="security,compliance",
        deadline_seconds="3",
        fallbacks="compliance=approve_with_warning",
    )
    coordinator = next(s for s in mesh.services if s.name == "coordinator")

    async with await MeshClient.connect(settings) as client:
        store = RoundStore(await client.js.key_value(settings.subjects.rounds_bucket))
        proposal = sample("release_clean", release_id="rel-deadline-restart")
        await client.propose(proposal)

        async def opened_and_scheduled():
            round_ = await store.get(proposal.release_id, proposal.content_digest)
            info = await client.js.stream_info(settings.subjects.deadlines_stream)
            # security's review counted too: else it may come back only after the deadline tick
            counted = round_ and "security" in round_.reviews
            return counted and round_.state == RoundState.OPEN and info.state.messages >= 1

        assert await eventually(opened_and_scheduled, timeout=15)
        coordinator.kill()
        await asyncio.sleep(4.0)  # the deadline passes while no coordinator runs
        assert await outcomes_for(settings, proposal.release_id) == []

        await asyncio.to_thread(coordinator.start)
        outcome = await client.wait_for_outcome(proposal, timeout=20)
        assert outcome is not None
        assert outcome.outcome == Outcome.APPROVED
        assert outcome.fallbacks_applied == {"compliance": "approve_with_warning"}
        assert "approves with a warning" in outcome.reason
        # the server fired the deadline on time although no coordinator ran then
        s = settings.subjects
        fired = await client.js.get_last_msg(
            s.deadlines_stream, s.deadline_fired(proposal.release_id, proposal.content_digest)
        )
        assert 0 <= (fired.time - outcome.deadline).total_seconds() <= 1.0
        await asyncio.sleep(1.0)
        assert len(await outcomes_for(settings, proposal.release_id)) == 1
