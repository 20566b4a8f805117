"""A coordinator that died between deciding a round and publishing its outcome: the outcome is
still published exactly once, with the decided verdict (a real coordinator process on a real
nats-server). If the message that decided the round comes back, it publishes at once; if it
never does (dead-lettered), another message about the round takes the publishing over, but only
after `ack_wait + publish_timeout`.

The dead coordinator is not a process killed at that instant, which no signal can hit reliably:
its last write is made here with the coordinator's own store and transitions — the deciding
review counted and the outcome claimed by its message in one compare-and-set write, nothing
published — which is the state such a coordinator leaves in KV.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from contracts.envelope import utc_now
from contracts.ids import review_msg_id
from contracts.outcomes import Outcome, RoundDecided
from contracts.reviews import ReviewSubmitted, Verdict
from coordinator.rounds import Round, RoundState
from coordinator.store import RoundStore
from tests.e2e.support import OutcomeTap, eventually, sample, stream_messages

ACK_WAIT, PUBLISH_TIMEOUT = 2.0, 4.0  # a review comes between the two ends: after ack_wait alone
# (a claim older than publish_timeout is overdue: a message finding it comes back at the lease's end)
LEASE = timedelta(seconds=ACK_WAIT + PUBLISH_TIMEOUT)
DEADLINE = 10.0  # the round's deadline, the next message about it, comes after the lease


def review(proposal, reviewer: str, verdict: Verdict) -> ReviewSubmitted:
    return ReviewSubmitted.answering(
        proposal,
        reviewer=reviewer,
        verdict=verdict,
        confidence=0.9,
        rationale=f"{reviewer} says {verdict}.",
        model="offline",
    )


async def settled(client, stream: str, durable: str, seq: int) -> bool:
    """The durable has acked everything through stream sequence `seq` and holds nothing."""
    info = await client.js.consumer_info(stream, durable)
    return (info.ack_floor.stream_seq or 0) >= seq and not (info.num_pending or info.num_ack_pending)


async def open_round(make_settings, launch, client, *, deadline: float = DEADLINE):
    """A live coordinator (ack_wait 2 s, publish_timeout 4 s) and a round it opened: (settings, store, proposal)."""
    settings = make_settings(ack_wait_seconds=ACK_WAIT, publish_timeout_seconds=PUBLISH_TIMEOUT)
    await asyncio.to_thread(
        launch,
        settings,
        ["coordinator"],
        reviewers="security,compliance",
        reviewer_discovery="false",
        deadline_seconds=str(deadline),
    )
    store = RoundStore(await client.js.key_value(settings.subjects.rounds_bucket))
    proposal = sample("release_clean", release_id=f"rel-takeover-{uuid.uuid4().hex[:8]}")
    await client.propose(proposal)

    async def opened() -> Round | None:
        round_ = await store.get(proposal.release_id, proposal.content_digest)
        return round_ if round_ and round_.state == RoundState.OPEN else None

    assert await eventually(opened, timeout=15), "the coordinator never opened the round"
    return settings, store, proposal


async def die_after_deciding(store: RoundStore, proposal, deciding: ReviewSubmitted, claim: str) -> Round:
    """What a coordinator that died after its deciding write leaves: `deciding` counted, the
    round decided, the outcome claimed by the message `claim` (`STREAM:seq`) — nothing published."""

    def decide_and_claim(round_: Round) -> bool:
        changed = round_.record(deciding, now=utc_now())
        return changed and round_.claim_outcome(claim, now=utc_now(), lease=LEASE)

    decided = (await store.mutate(proposal.release_id, proposal.content_digest, decide_and_claim)).round
    assert decided.state == RoundState.DECIDED and decided.publisher == claim and not decided.outcome_published
    return decided


async def marked_published(store: RoundStore, proposal) -> Round | None:
    """The round, once a coordinator has marked its outcome published."""
    round_ = await store.get(proposal.release_id, proposal.content_digest)
    return round_ if round_.outcome_published else None


async def publish_review(client, subjects, review_: ReviewSubmitted):
    """A review as its reviewer publishes it (its subject, its message id); the PubAck."""
    return await client.js.publish(
        subjects.review_submitted(review_.reviewer),
        review_.model_dump_json().encode(),
        headers={"Nats-Msg-Id": review_msg_id(review_)},
    )


def assert_the_decided_outcome(outcome: RoundDecided, decided: Round) -> None:
    assert outcome.outcome == Outcome.BLOCKED and outcome.reason == decided.decision.reason
    assert outcome.occurred_at == decided.decision.decided_at  # the dead coordinator's decision
    assert [r.reviewer for r in outcome.reviews] == ["compliance"]  # a late review is not counted


async def heard_once_as_decided(client, subjects, proposal, heard: list[dict], decided: Round):
    """Check the outcome was heard once and is the decided one; the stored message."""
    assert len(heard) == 1, f"published {len(heard)} times"
    assert_the_decided_outcome(RoundDecided.model_validate(heard[0]), decided)
    return await client.js.get_last_msg(
        subjects.outcomes_stream, subjects.round_decided(proposal.release_id, proposal.content_digest)
    )


async def test_the_deciding_message_redelivered_publishes_the_outcome_at_once(make_settings, launch, client):
    """The message whose write decided the round (compliance's reject) comes back to a live
    coordinator, as it does after ack_wait when its handler died: it still holds the claim, so
    the outcome is published at once — long before the lease would let anyone else — once, and
    as decided."""
    settings, store, proposal = await open_round(make_settings, launch, client)
    s = settings.subjects
    async with OutcomeTap(settings.nats_url, s) as tap:
        deciding = review(proposal, "compliance", Verdict.REJECT)
        claim = f"{s.reviews_stream}:{(await client.js.stream_info(s.reviews_stream)).state.last_seq + 1}"
        decided = await die_after_deciding(store, proposal, deciding, claim)
        ack = await publish_review(client, s, deciding)  # the deciding message, delivered again
        assert f"{ack.stream}:{ack.seq}" == claim

        published = await eventually(lambda: marked_published(store, proposal), timeout=10)
        assert published, "the redelivered claimant did not publish the outcome"
        assert await eventually(lambda: settled(client, s.reviews_stream, "coordinator-reviews", ack.seq), timeout=10)
        await tap.nc.flush()
        heard = tap.of(proposal.release_id)

    last = await heard_once_as_decided(client, s, proposal, heard, decided)
    assert last.time < decided.publisher_since + LEASE, "the claimant waited for its own lease"


async def test_another_coordinator_publishes_a_dead_claimants_outcome_once_after_the_lease(
    make_settings, launch, client
):
    """The round is decided (blocked by compliance) and claimed by a message that will never be
    handled again. A review arriving after ack_wait, while the claim is still younger than
    ack_wait + publish_timeout, is recorded, yet publishes nothing; the round's deadline, fired
    by the server after that, takes the claim over and publishes the outcome once — the decided
    one (blocked, compliance's review alone, the dead coordinator's reason and time), stored no
    earlier than the lease allows."""
    settings, store, proposal = await open_round(make_settings, launch, client)
    s = settings.subjects
    async with OutcomeTap(settings.nats_url, s) as tap:  # hears every publish, duplicates included
        dead_claim = f"{s.reviews_stream}:999999"  # its message was dead-lettered: it never comes back
        decided = await die_after_deciding(store, proposal, review(proposal, "compliance", Verdict.REJECT), dead_claim)
        lease_ends = decided.publisher_since + LEASE
        assert decided.deadline - lease_ends > timedelta(seconds=2), "the round opened too late for this test"

        # Past ack_wait but within the lease: security's (late) review reaches the live coordinator,
        # which records it but may not publish the outcome someone else claimed.
        past_ack_wait = decided.publisher_since + timedelta(seconds=ACK_WAIT + 1)
        await asyncio.sleep((past_ack_wait - utc_now()).total_seconds())
        ack = await publish_review(client, s, review(proposal, "security", Verdict.APPROVE))
        assert await eventually(lambda: settled(client, s.reviews_stream, "coordinator-reviews", ack.seq), timeout=10)
        handled_at = utc_now()
        seen = await store.get(proposal.release_id, proposal.content_digest)
        assert [r.reviewer for r in seen.late_reviews] == ["security"]  # the live coordinator handled it
        await tap.nc.flush()
        assert handled_at < lease_ends, "the late review was handled only after the lease; nothing was tested"
        assert handled_at - decided.publisher_since > timedelta(seconds=ACK_WAIT)
        assert tap.of(proposal.release_id) == [], "an outcome was published while its claimant's lease ran"
        assert not seen.outcome_published and seen.publisher == dead_claim

        # After the lease: the deadline fires and the coordinator handling it takes the claim over.
        taken = await eventually(lambda: marked_published(store, proposal), timeout=DEADLINE + 10)
        assert taken is not None, "nobody took over the dead coordinator's outcome"
        assert taken.publisher.startswith(f"{s.deadlines_stream}:")
        fired = await client.js.get_last_msg(
            s.deadlines_stream, s.deadline_fired(proposal.release_id, proposal.content_digest)
        )
        assert await eventually(
            lambda: settled(client, s.deadlines_stream, "coordinator-deadlines", fired.seq), timeout=10
        )
        await tap.nc.flush()
        heard = tap.of(proposal.release_id)

    assert len(heard) == 1, f"published {len(heard)} times"
    (stored,) = await stream_messages(settings.nats_url, s.outcomes_stream, s.outcomes_of(proposal.release_id))
    outcome = RoundDecided.model_validate_json(stored)
    assert outcome == RoundDecided.model_validate(heard[0])
    assert_the_decided_outcome(outcome, decided)
    last = await client.js.get_last_msg(
        s.outcomes_stream, s.round_decided(proposal.release_id, proposal.content_digest)
    )
    assert last.time >= lease_ends, f"published {(lease_ends - last.time).total_seconds():.2f} s before the lease ended"


async def test_a_message_finding_an_overdue_claim_comes_back_and_takes_it_over(make_settings, launch, client):
    """With no other message about the round to come (its deadline is a minute away), a late
    review that finds the outcome claimed, unpublished and overdue (older than publish_timeout)
    is handed back rather than acked, and on its return after the lease takes the claim over:
    the decided outcome is published once, no earlier than the lease allows, without waiting
    for the deadline."""
    settings, store, proposal = await open_round(make_settings, launch, client, deadline=60.0)
    s = settings.subjects
    async with OutcomeTap(settings.nats_url, s) as tap:
        dead_claim = f"{s.reviews_stream}:999999"  # dead-lettered: it never comes back
        decided = await die_after_deciding(store, proposal, review(proposal, "compliance", Verdict.REJECT), dead_claim)
        lease_ends = decided.publisher_since + LEASE
        overdue = decided.publisher_since + timedelta(seconds=PUBLISH_TIMEOUT + 0.5)
        await asyncio.sleep((overdue - utc_now()).total_seconds())
        ack = await publish_review(client, s, review(proposal, "security", Verdict.APPROVE))

        taken = await eventually(lambda: marked_published(store, proposal), timeout=20)
        assert taken is not None, "nobody took over the overdue claim before the deadline"
        assert taken.publisher == f"{ack.stream}:{ack.seq}", taken.publisher  # the late review's return
        assert await eventually(lambda: settled(client, s.reviews_stream, "coordinator-reviews", ack.seq), timeout=10)
        await tap.nc.flush()
        heard = tap.of(proposal.release_id)

    last = await heard_once_as_decided(client, s, proposal, heard, decided)
    assert last.time >= lease_ends, f"published {(lease_ends - last.time).total_seconds():.2f} s before the lease ended"
    assert last.time < decided.deadline, "the deadline, not the returning review, published it"
