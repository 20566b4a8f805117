"""Crash safety of the coordinator: SIGKILL (not a graceful stop), then a restart."""

from __future__ import annotations

import asyncio

from bus.client import MeshClient
from bus.ops.embedded import free_port
from contracts.outcomes import Outcome
from coordinator.rounds import RoundState
from coordinator.service import build_coordinator
from coordinator.store import RoundStore
from tests.e2e.support import OutcomeTap, eventually, sample, stream_messages
from tests.settled import all_settled


async def outcomes_for(settings, release_id: str) -> list[bytes]:
    s = settings.subjects
    return await stream_messages(settings.nats_url, s.outcomes_stream, s.outcomes_of(release_id))


async def coordinator_settled(settings, tap: OutcomeTap | None = None) -> None:
    """Every coordinator consumer has acked all it was given, redeliveries of what a killed one
    held included (an outcome is published before the ack): a later outcome cannot come."""
    await all_settled(settings.nats_url, build_coordinator(settings).consumers, timeout=30)
    if tap is not None:
        await tap.nc.flush()  # and the tap has heard what the server sent it before
        await asyncio.sleep(0.1)


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
        s = settings.subjects

        async def compliance_reviewed():
            return await stream_messages(settings.nats_url, s.reviews_stream, s.review_submitted("compliance"))

        # the positive signal: the review that completes the round is stored, and nobody decides it
        assert await eventually(compliance_reviewed, timeout=30), "compliance never reviewed"
        assert await outcomes_for(settings, proposal.release_id) == []

        # on a port of its own: compliance, started since, may have been given the dead one's
        coordinator.port = free_port()
        await asyncio.to_thread(coordinator.start)
        outcome = await client.wait_for_outcome(proposal, timeout=20)
        assert outcome is not None and outcome.outcome == Outcome.APPROVED
        assert sorted(r.reviewer for r in outcome.reviews) == ["compliance", "security"]
        await coordinator_settled(settings, tap)
        assert len(await outcomes_for(settings, proposal.release_id)) == 1
        assert len(tap.of(proposal.release_id)) == 1  # published once, not only stored once


async def test_deadline_fires_even_when_the_coordinator_was_down_at_the_deadline(make_settings, launch):
    """The deadline is a message the NATS server schedules, so a round whose coordinator died
    before its deadline still ends, with the fallback, as soon as a coordinator runs again; the
    server fired it within a second or two of the round's deadline."""
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
        s = settings.subjects

        async def deadline_fired():
            return await stream_messages(
                settings.nats_url, s.deadlines_stream, s.deadline_fired(proposal.release_id, proposal.content_digest)
            )

        # the positive signal: the server fired the deadline while no coordinator ran, and no outcome
        assert await eventually(deadline_fired, timeout=20), "the server never fired the deadline"
        assert await outcomes_for(settings, proposal.release_id) == []

        await asyncio.to_thread(coordinator.start)
        outcome = await client.wait_for_outcome(proposal, timeout=20)
        assert outcome is not None
        assert outcome.outcome == Outcome.APPROVED
        assert outcome.fallbacks_applied == {"compliance": "approve_with_warning"}
        assert "approves with a warning" in outcome.reason
        # the server fired the deadline on time although no coordinator ran then (never early;
        # late by at most its scheduler's delay, with a margin for a loaded machine)
        fired = await client.js.get_last_msg(
            s.deadlines_stream, s.deadline_fired(proposal.release_id, proposal.content_digest)
        )
        assert 0 <= (fired.time - outcome.deadline).total_seconds() <= 2.0
        await coordinator_settled(settings)
        assert len(await outcomes_for(settings, proposal.release_id)) == 1
