"""Idempotency that does not rest on the stream's dedupe window: the same proposal published
again after the window has passed is stored twice, and still decided once."""

from __future__ import annotations

import asyncio

from bus.client import MeshClient
from tests.e2e.support import OutcomeTap, eventually, mesh_settled, sample, stream_messages


async def test_the_same_proposal_after_the_dedupe_window_still_gets_one_outcome(make_settings, launch):
    """With a 1 s dedupe window, the same proposal sent twice 2.5 s apart is stored twice in the
    events stream (the window did not catch it), and a core-NATS subscriber on the outcome
    subjects hears exactly one outcome: the round, not the window, makes it idempotent."""
    settings = make_settings(duplicate_window_seconds=1.0)
    await asyncio.to_thread(launch, settings, ["security", "compliance", "coordinator"])
    proposal = sample("release_clean", release_id="rel-beyond-window")
    s = settings.subjects
    async with (
        OutcomeTap(settings.nats_url, s) as tap,
        await MeshClient.connect(settings, name="idempotency-test") as mesh,
    ):
        await mesh.propose(proposal)
        assert await mesh.wait_for_outcome(proposal, timeout=20) is not None
        await asyncio.sleep(2.5)  # past the window
        ack = await mesh.propose(proposal)
        assert not ack.duplicate  # stored again: only the round can tell

        async def proposal_handled_again():  # the positive signal: every consumer acked it
            for durable in ("coordinator-proposals", "security", "compliance"):
                info = await mesh.js.consumer_info(s.events_stream, durable)
                if info.num_pending or info.num_ack_pending:
                    return False
            return True

        assert await eventually(proposal_handled_again, timeout=20)
        # and what handling it published (reviews, perhaps an outcome) was handled in turn
        await mesh_settled(settings, ["security", "compliance", "coordinator"], tap)
    stored = await stream_messages(settings.nats_url, s.events_stream)
    assert len(stored) == 2
    assert [o["outcome"] for o in tap.of("rel-beyond-window")] == ["approved"]


async def test_a_decided_round_publishes_nothing_more_when_its_deadline_fires(make_settings, launch):
    """A round decided before its deadline still gets the deadline message (the server fires it
    anyway); the coordinator handles it — its deadline consumer acks it — and a core-NATS
    subscriber hears no second outcome."""
    settings = make_settings()
    await asyncio.to_thread(launch, settings, ["security", "compliance", "coordinator"], deadline_seconds="3")
    proposal = sample("release_clean", release_id="rel-late-deadline")
    s = settings.subjects
    async with (
        OutcomeTap(settings.nats_url, s) as tap,
        await MeshClient.connect(settings, name="late-deadline-test") as mesh,
    ):
        await mesh.propose(proposal)
        assert await mesh.wait_for_outcome(proposal, timeout=20) is not None

        async def deadline_handled():  # the positive signal: the fired deadline was delivered and acked
            info = await mesh.js.consumer_info(s.deadlines_stream, "coordinator-deadlines")
            return info.delivered.stream_seq > 0 and info.num_ack_pending == 0 and info.num_pending == 0

        assert await eventually(deadline_handled, timeout=15)
        await mesh_settled(settings, ["coordinator"], tap)  # the tap has heard all the server sent
    assert [o["outcome"] for o in tap.of("rel-late-deadline")] == ["approved"]
