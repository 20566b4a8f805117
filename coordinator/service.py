"""The coordinator service: opens a round per proposal, counts reviews, fires deadlines,
and publishes exactly one outcome per round.

Every handler follows one shape: change the round with compare-and-set, then make sure the
effects of its current state exist (deadline scheduled, outcome published). Effects carry
deterministic message ids, so doing them again after a crash or redelivery is harmless.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

from bus.runtime import Agent, Delivery
from bus.settings import MeshSettings
from contracts.envelope import utc_now
from contracts.outcomes import RoundDecided
from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted
from contracts.rounds import RoundDeadline
from contracts.subjects import subject_token
from coordinator.policy import Policy
from coordinator.rounds import Round, RoundState
from coordinator.store import RoundStore


class Coordinator:
    def __init__(self, *, settings: MeshSettings, agent: Agent, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.subjects = settings.subjects
        self.agent = agent
        self.clock = clock
        self.policy = Policy.parse(settings.policy)
        self.store: RoundStore | None = None

    async def connect_store(self) -> None:
        js = self.agent.broker.connection.jetstream()
        self.store = RoundStore(await js.key_value(self.subjects.rounds_bucket))

    # --- handlers -----------------------------------------------------------------------

    async def handle_release_proposed(self, proposal: ReleaseProposed, delivery: Delivery) -> None:
        expected = list(self.settings.reviewers)
        round_, changed = await self.store.mutate(
            proposal.release_id,
            lambda r: r.open(
                proposal,
                expected=expected,
                policy=self.policy,
                fallbacks={name: self.settings.fallback_for(name) for name in expected},
                deadline_seconds=self.settings.deadline_seconds,
                now=self.clock(),
            ),
        )
        delivery.log.info("round opened" if changed else "duplicate proposal ignored", state=round_.state)
        await self._ensure_effects(round_, delivery)

    async def handle_review_submitted(self, review: ReviewSubmitted, delivery: Delivery) -> None:
        round_, changed = await self.store.mutate(review.release_id, lambda r: r.record(review, now=self.clock()))
        if not changed:
            delivery.log.info("duplicate review ignored", reviewer=review.reviewer)
        elif any(late.reviewer == review.reviewer for late in round_.late_reviews):
            delivery.log.info("late review recorded; outcome unchanged", reviewer=review.reviewer)
        await self._ensure_effects(round_, delivery)

    async def handle_round_deadline(self, tick: RoundDeadline, delivery: Delivery) -> None:
        round_, changed = await self.store.mutate(tick.release_id, lambda r: r.expire(now=self.clock()))
        if changed:
            delivery.log.info("deadline passed", missing=round_.outcome.missing if round_.outcome else [])
        await self._ensure_effects(round_, delivery)

    # --- effects ------------------------------------------------------------------------

    async def _ensure_effects(self, round_: Round, delivery: Delivery) -> None:
        if round_.state == RoundState.OPEN:
            await self._schedule_deadline(round_, delivery)
        elif round_.state == RoundState.DECIDED and not round_.outcome_published:
            await self._publish_outcome(round_.outcome, delivery)
            await self.store.mutate(round_.release_id, Round.mark_published)

    async def _schedule_deadline(self, round_: Round, delivery: Delivery) -> None:
        """Ask the NATS server to fire the deadline: it fires even if no coordinator runs then."""
        tick = RoundDeadline(
            release_id=round_.release_id,
            correlation_id=round_.release_id,
            causation_id=round_.proposal_event_id,
            producer="coordinator",
        )
        await delivery.publish(
            tick,
            self.subjects.deadline_schedule(round_.release_id),
            msg_id=f"deadline:{subject_token(round_.release_id)}",
            headers={
                "Nats-Schedule": f"@at {_rfc3339_ceil(round_.deadline)}",
                "Nats-Schedule-Target": self.subjects.deadline_fired(round_.release_id),
            },
        )

    async def _publish_outcome(self, outcome: RoundDecided, delivery: Delivery) -> None:
        await delivery.publish(
            outcome,
            self.subjects.round_decided(outcome.release_id),
            msg_id=f"outcome:{subject_token(outcome.release_id)}",
        )
        delivery.log.info("outcome published", outcome=outcome.outcome.value, reason=outcome.reason)


def _rfc3339_ceil(moment: datetime) -> str:
    """Whole seconds, rounded up: a deadline may fire a little late, never early."""
    seconds = math.ceil(moment.timestamp())
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_coordinator(settings: MeshSettings, *, clock: Callable[[], datetime] = utc_now) -> Agent:
    agent = Agent("coordinator", settings=settings, description="Gathers reviews into one outcome per release.")
    coordinator = Coordinator(settings=settings, agent=agent, clock=clock)
    s = settings.subjects
    agent.consumes(stream=s.events_stream, subject=s.release_proposed, model=ReleaseProposed, durable="coordinator-proposals")(
        coordinator.handle_release_proposed
    )
    agent.consumes(stream=s.reviews_stream, subject=s.reviews, model=ReviewSubmitted, durable="coordinator-reviews")(
        coordinator.handle_review_submitted
    )
    agent.consumes(stream=s.deadlines_stream, subject=s.deadlines_fired, model=RoundDeadline, durable="coordinator-deadlines")(
        coordinator.handle_round_deadline
    )
    agent.on_start.append(coordinator.connect_store)
    return agent
