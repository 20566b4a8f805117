"""services/gateway/front.py against a real nats-server: what a revision's status says."""

from __future__ import annotations

import nats

from bus.ops.launcher import provision_mesh
from contracts.outcomes import Outcome, RoundDecided
from services.gateway.front import Front, Revision
from services.gateway.settings import GatewaySettings


async def test_an_outcome_heard_on_the_wire_is_the_status_before_the_stream_has_stored_it(settings):
    """`?wait` hears the outcome on a core subscription, which the server may serve before the
    outcomes stream has stored it: given to `status`, it is the answer (decided), not `open`."""
    await provision_mesh(settings, names=["gateway", "coordinator"])
    own = GatewaySettings(**{**settings.model_dump(), "home": settings.home})
    heard = RoundDecided(
        release_id="rel-heard", content_digest="d1", outcome=Outcome.APPROVED, reason="because", policy="all"
    )
    nc = await nats.connect(settings.nats_url)
    try:
        front = Front(nc, own)
        revision = Revision("rel-heard", "d1")
        assert await front.outcome(revision) is None  # nothing stored: the moment the race leaves us in
        status = await front.status(revision, outcome=heard)
    finally:
        await nc.close()

    assert status["state"] == "decided" and status["outcome"]["outcome"] == "approved"


async def test_follow_tells_every_review_when_the_round_is_decided_while_the_watch_starts(settings):
    """The round moves on (the second review counted, decided, outcome published) between the
    value the watch starts with and the watch's end-of-history marker: `follow` still tells both
    reviews, numbered 1 and 2, then the outcome — it does not skip to the outcome."""
    from contracts.reviews import ReviewSubmitted, Verdict
    from coordinator.policy import Policy
    from coordinator.store import RoundStore
    from tests.e2e.support import sample

    await provision_mesh(settings, names=["gateway", "coordinator"])
    own = GatewaySettings(**{**settings.model_dump(), "home": settings.home})
    proposal = sample("release_clean", release_id="rel-race")
    now = proposal.occurred_at

    def reviewed(reviewer: str) -> ReviewSubmitted:
        return ReviewSubmitted.answering(
            proposal, reviewer=reviewer, verdict=Verdict.APPROVE, confidence=0.9, rationale="ok", model="offline"
        )

    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    store = RoundStore(await js.key_value(settings.subjects.rounds_bucket))

    def opened(round_) -> bool:
        round_.open(
            proposal,
            expected=["compliance", "security"],
            policy=Policy.parse("all"),
            fallbacks={},
            deadline_seconds=60,
            now=now,
        )
        return round_.record(reviewed("security"), now=now)

    await store.mutate(proposal.release_id, proposal.content_digest, opened)

    class RacedFront(Front):
        advanced = False

        async def outcome(self, revision):
            if not self.advanced:  # first asked at the watch's end marker: the round moves on now
                self.advanced = True
                decided = await store.mutate(
                    proposal.release_id, proposal.content_digest, lambda r: r.record(reviewed("compliance"), now=now)
                )
                outcome = decided.round.outcome
                subject = settings.subjects.round_decided(outcome.release_id, outcome.content_digest)
                await js.publish(subject, outcome.model_dump_json().encode())
            return await super().outcome(revision)

    try:
        front = RacedFront(nc, own)
        told = [(e.kind, e.id) async for e in front.follow(Revision(proposal.release_id, proposal.content_digest))]
    finally:
        await nc.close()
    assert told == [("review", "1"), ("review", "2"), ("outcome", "outcome")], told
