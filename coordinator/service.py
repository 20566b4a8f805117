"""The coordinator service: opens a round per proposal, counts reviews, fires deadlines,
and publishes exactly one outcome per round.

Every handler follows one shape: change the round with compare-and-set, then make sure the
effects of its current state exist — a decided round's outcome is published (by the handler
whose write decided it). A round's deadline is scheduled before the round is opened, so no
open round is ever without one. A message is acked only after its effects'
PubAcks, and effects carry deterministic message ids, so the redelivery that follows a crash
does them again harmlessly. A round the reviewers escalate may wait for a person instead of
ending: coordinator/approval_desk.py handles that wait, its decisions and its deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from nats.js.errors import NotFoundError

from bus.directory import AgentDirectory
from bus.errors import InvalidMessage, NotYet
from bus.inflight import ack_period
from bus.runtime import Agent, Delivery
from bus.telemetry import Telemetry
from contracts.approvals import (
    ApprovalDecided,
    ApprovalExpiring,
    ApprovalRequested,
    ApprovalTimer,
    DecisionVerdict,
)
from contracts.audit import AuditRecord
from contracts.cards import AgentSkill
from contracts.deadlines import RoundDeadline, rfc3339_ceil
from contracts.envelope import utc_now
from contracts.ids import deadline_msg_id, outcome_msg_id, review_msg_id
from contracts.outcomes import RoundDecided
from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted
from coordinator.approval_desk import ApprovalDesk
from coordinator.policy import Policy
from coordinator.rounds import Round, RoundState
from coordinator.settings import CoordinatorSettings
from coordinator.store import RoundStore

MAX_OPTIONAL_REVIEWERS = 8  # reviewers a round may add to the required ones
_REVIEWERS_FRESH_SECONDS = 1.0


class Coordinator:
    def __init__(self, *, settings: CoordinatorSettings, agent: Agent, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.subjects = settings.subjects
        self.agent = agent
        self.clock = clock
        self.policy = Policy.parse(settings.policy)
        # How long an outcome's publisher may take before another handler may take over.
        self._lease = timedelta(seconds=settings.ack_wait_seconds + settings.publish_timeout_seconds)
        # A publisher alive and well has published within one publish timeout of its claim.
        self._overdue = timedelta(seconds=settings.publish_timeout_seconds)
        # In-progress acks go out one `ack_period` apart: a message redelivered while its handler
        # lives means that handler stalled for at least ack_wait - ack_period. Half that: margin for
        # an acker itself late on a starved event loop.
        self._stalled_after = max(settings.ack_wait_seconds - ack_period(settings.ack_wait_seconds), 0.0) / 2
        self.store: RoundStore | None = None
        self.directory: AgentDirectory | None = None
        self._reviewers: dict[str, tuple[float, tuple[list[str], list[str]]]] = {}  # event type -> (until, answer)
        self.approvals = ApprovalDesk(self)
        self.approval_rules = settings.approval_rules()  # None: an escalation is final, nobody may decide it

    async def connect(self) -> None:
        nc = self.agent.broker.connection
        self.store = RoundStore(
            await nc.jetstream().key_value(self.subjects.rounds_bucket), telemetry=self.agent.telemetry
        )
        await self.approvals.connect()
        if self.settings.reviewer_discovery:
            self.directory = await AgentDirectory.watch(nc, self.settings)

    async def disconnect(self) -> None:
        if self.directory:
            await self.directory.close()

    def required_reviewers(self) -> list[str]:
        """The reviewers policy requires, live or not: the agent named after each required skill
        (`review.security` -> `security`). Never read from cards: anyone who can write a card could
        otherwise make themselves a required voter."""
        return sorted({agent_named_after(skill) for skill in self.settings.required_skills})

    def reviewers_for(self, event_type: str) -> tuple[list[str], list[str]]:
        """(expected, required): the required reviewers, plus pinned ones and live agents with a
        matching review skill, minus the excluded — who can never be a required one. Called once
        per round; the round keeps this snapshot. A view of the registry that is not in sync adds
        nobody: the required reviewers are expected whatever it says."""
        now = time.monotonic()
        cached = self._reviewers.get(event_type)
        if cached is not None and now < cached[0]:
            return cached[1]
        required = self.required_reviewers()
        optional = set(self.settings.reviewers)
        if self.directory is not None and self.directory.synced:
            optional.update(self.directory.reviewers_for(event_type))
        optional.difference_update(self.settings.exclude_reviewers)
        optional.difference_update(required)
        # Anyone who can write a card can make an agent "live": a round waits for a few of them at most.
        added = sorted(optional)[:MAX_OPTIONAL_REVIEWERS]
        chosen = sorted([*required, *added]), required
        # Liveness changes on heartbeat time (seconds): a second-old answer is as good, and every
        # review asks (for the reviewers a round that has no proposal yet may hold).
        self._reviewers[event_type] = (now + _REVIEWERS_FRESH_SECONDS, chosen)
        return chosen

    # --- handlers -----------------------------------------------------------------------

    async def handle_release_proposed(self, proposal: ReleaseProposed, delivery: Delivery) -> None:
        expected, required = self.reviewers_for("release.proposed")
        digest = proposal.content_digest
        now = self.clock()
        deadline = now + timedelta(seconds=self.settings.deadline_seconds)
        # The deadline is scheduled before the round is opened, so an open round always has one:
        # a proposal that cannot schedule it is retried, then dead-lettered, and opens nothing.
        await self._schedule_deadline(proposal.release_id, digest, deadline, proposal.event_id, delivery)
        opened = await self.store.mutate(
            proposal.release_id,
            digest,
            self._deciding(
                delivery,
                lambda r: r.open(
                    proposal,
                    expected=expected,
                    required=required,
                    policy=self.policy,
                    fallbacks={name: self.settings.fallback_for(name) for name in expected},
                    deadline_seconds=self.settings.deadline_seconds,
                    now=now,
                    stored_at=_stored_at(delivery),
                    approvals=self.approval_rules,
                ),
            ),
            likely_new=True,  # skips a read; a create that finds the round reads it then
        )
        round_ = opened.round
        if opened.changed and round_.opened_at == now:  # this very write opened it
            self.agent.metrics.round_opened()
        delivery.log.info(
            round_.note or "duplicate proposal ignored",
            state=round_.state,
            expected=round_.expected,
            digest=digest[:12],
        )
        if round_.state == RoundState.OPEN and rfc3339_ceil(round_.deadline) != rfc3339_ceil(deadline):
            # Opened by an earlier delivery of this proposal: our schedule replaced its own (one
            # schedule per round subject), so put the round's deadline back. Within the duplicate
            # window the server keeps ours instead, and the round closes that much later.
            await self._schedule_deadline(
                round_.release_id, digest, round_.deadline, round_.proposal_event_id, delivery
            )
        await self._ensure_outcome(round_, delivery, decided_now=opened.decided)
        await self.approvals.ensure(round_, delivery)
        return opened

    async def handle_review_submitted(self, review: ReviewSubmitted, delivery: Delivery) -> None:
        # A review speaks for the reviewer its subject names, about the revision it names.
        # Anything else is refused before it can touch a round (and dead-lettered, with why).
        subject = self.subjects.review_submitted(review.reviewer)
        if delivery.message.subject != subject:
            raise InvalidMessage(
                f"a review from {review.reviewer!r} arrived on {delivery.message.subject}; "
                f"{review.reviewer!r} publishes only on {subject}"
            )
        if not review.content_digest:
            raise InvalidMessage("the review has no content_digest, so it belongs to no revision of the release")
        msg_id = (delivery.message.headers or {}).get("Nats-Msg-Id")
        if msg_id != review_msg_id(review):
            # Else a review published first under another's id would make the stream drop that one.
            raise InvalidMessage(
                f"the review's Nats-Msg-Id is {msg_id!r}; a review is published as {review_msg_id(review)!r}"
            )
        known = frozenset(self.reviewers_for("release.proposed")[0])
        recorded = await self.store.mutate(
            review.release_id,
            review.content_digest,
            self._deciding(
                delivery, lambda r: r.record(review, now=self.clock(), known=known, stored_at=_stored_at(delivery))
            ),
        )
        round_ = recorded.round
        note = round_.note or "duplicate review ignored"
        # A review counted as expected is the common case (debug, like "→ received"); anything
        # else is worth a line of its own.
        log = delivery.log.warning if "rejected" in note else delivery.log.info
        if note in ("review counted", "review kept until its proposal arrives"):
            log = delivery.log.debug
        log(note, reviewer=review.reviewer, verdict=review.verdict.value, digest=review.content_digest[:12])
        await self._ensure_outcome(round_, delivery, decided_now=recorded.decided)
        await self.approvals.ensure(round_, delivery)
        return recorded

    async def handle_round_deadline(self, tick: RoundDeadline, delivery: Delivery) -> None:
        expired = await self.store.mutate(
            tick.release_id, tick.content_digest, self._deciding(delivery, lambda r: r.expire(now=self.clock()))
        )
        round_ = expired.round
        decision = round_.decision if expired.changed else None
        missing = decision.missing if decision else []
        fallbacks = [f"{name}={fallback}" for name, fallback in decision.fallbacks_applied.items()] if decision else []
        # The fired message keeps the schedule's headers (its traceparent): this span sits in the
        # trace of the round that scheduled it, under that `send …deadlines.schedule.*.*`.
        delivery.telemetry.event(
            "mesh.deadline.fired",
            {
                "mesh.deadline.decided": expired.changed,
                "mesh.round.state": round_.state.value,
                "mesh.missing": missing,
                "mesh.fallbacks_applied": fallbacks,
            },
        )
        if expired.changed:
            delivery.log.info("deadline passed", missing=missing)
        await self._ensure_outcome(round_, delivery, decided_now=expired.decided)
        await self.approvals.ensure(round_, delivery)
        return expired

    # --- effects ------------------------------------------------------------------------

    def _deciding(self, delivery: Delivery, transition: Callable[[Round], bool]) -> Callable[[Round], bool]:
        """`transition`; if it decides the round, this message becomes the outcome's publisher
        in the same compare-and-set write, so no other handler or replica publishes it."""

        def apply(round_: Round) -> bool:
            was_open = round_.state != RoundState.DECIDED
            changed = transition(round_)
            if changed and was_open and round_.state == RoundState.DECIDED:
                round_.claim_outcome(_message_ref(delivery), now=self.clock(), lease=self._lease)
            return changed

        return apply

    async def _ensure_outcome(self, round_: Round, delivery: Delivery, *, decided_now: bool) -> None:
        if decided_now:  # counted once per round, by the message whose write decided it
            self.agent.metrics.round_decided(round_.outcome)
        if round_.state == RoundState.DECIDED and not round_.outcome_published:
            await self._publish_outcome_once(round_, delivery, decided_now=decided_now)

    async def _publish_outcome_once(self, round_: Round, delivery: Delivery, *, decided_now: bool) -> None:
        me = _message_ref(delivery)
        if round_.publisher != me:  # not ours: take it over only if its holder is gone
            claimed = await self.store.mutate(
                round_.release_id,
                round_.content_digest,
                lambda r: r.claim_outcome(me, now=self.clock(), lease=self._lease),
            )
            if not claimed.changed:
                held, now = claimed.round, self.clock()
                since = held.publisher_since
                if not held.outcome_published and since is not None and now - since >= self._overdue:
                    # Its publisher is late: come back when the claim may be taken over. If it died
                    # and its message was dead-lettered, nothing else about this round may arrive.
                    left = (since + self._lease - now).total_seconds()
                    raise NotYet(f"the outcome claimed by {held.publisher} is overdue", seconds=max(left, 0.0) + 1.0)
                return
            round_ = claimed.round
            decided_now = False
        # If this very write decided the round, nobody can have published its outcome, unless this
        # handler stalled (its process frozen) long enough for its message to be redelivered and
        # handled elsewhere: the stream would drop our copy, but core subscribers would hear it twice.
        # Otherwise it may have been published before a crash, longer ago than the duplicate window.
        look = not decided_now or delivery.handling_seconds > self._stalled_after
        if look and await self._outcome_stored(round_.release_id, round_.content_digest):
            delivery.log.info("outcome already published; not again")
        else:
            await self._publish_outcome(round_.outcome, delivery)
        await self.store.mutate(round_.release_id, round_.content_digest, Round.mark_published)

    async def _outcome_stored(self, release_id: str, digest: str) -> bool:
        js = self.agent.broker.connection.jetstream()
        try:
            await js.get_last_msg(self.subjects.outcomes_stream, self.subjects.round_decided(release_id, digest))
        except NotFoundError:
            return False
        return True

    async def _schedule_deadline(
        self, release_id: str, digest: str, deadline: datetime, causation_id: str | None, delivery: Delivery
    ) -> None:
        """Ask the NATS server to fire the deadline: it fires even if no coordinator runs then.

        The server keeps one schedule per subject (a newer one replaces it), and the message id
        carries the time, so rescheduling to another time is never mistaken for a duplicate."""
        at = rfc3339_ceil(deadline)
        tick = RoundDeadline(
            release_id=release_id,
            content_digest=digest,
            correlation_id=release_id,
            causation_id=causation_id,
            producer="coordinator",
        )
        await delivery.publish(
            tick,
            self.subjects.deadline_schedule(release_id, digest),
            msg_id=deadline_msg_id(release_id, digest, at),
            headers={
                "Nats-Schedule": f"@at {at}",
                "Nats-Schedule-Target": self.subjects.deadline_fired(release_id, digest),
            },
        )

    async def _publish_outcome(self, outcome: RoundDecided, delivery: Delivery) -> None:
        if trace_id := delivery.trace_id:  # the trace of the message whose handling decided the round
            outcome = outcome.model_copy(update={"trace_id": trace_id})
        try:
            ack = await delivery.publish(
                outcome,
                self.subjects.round_decided(outcome.release_id, outcome.content_digest),
                msg_id=outcome_msg_id(outcome.release_id, outcome.content_digest),
            )
        except (Exception, asyncio.CancelledError) as exc:
            # No PubAck (a stream electing its leader, NATS gone, the handler's budget spent): the
            # message may still have reached core subscribers. The retry looks in the stream first
            # and sends it again only if it is not there, so such a subscriber may hear it twice;
            # this line is how `mesh chaos` tells that from publishing twice.
            delivery.log.warning(
                "outcome publish unacknowledged", outcome=outcome.outcome.value, error=f"{type(exc).__name__}: {exc}"
            )
            raise
        delivery.log.info(
            "outcome published", outcome=outcome.outcome.value, reason=outcome.reason, duplicate=ack.duplicate
        )


def agent_named_after(skill_id: str) -> str:
    """The agent that answers a required skill when no card offers it: `review.security` -> `security`."""
    return skill_id.removeprefix("review.")


def _stored_at(delivery: Delivery) -> datetime | None:
    """When the server stored the message being handled (the same clock for every stream)."""
    return getattr(delivery.message.metadata, "timestamp", None)


def _message_ref(delivery: Delivery) -> str:
    """The message being handled, as `STREAM:seq`: the same for each of its redeliveries."""
    meta = delivery.message.metadata
    return f"{meta.stream}:{meta.sequence.stream}"


SKILL = AgentSkill(
    id="coordinate.release-review",
    name="Release review coordination",
    description="Opens a round for each proposed release, asks every live reviewer, applies the "
    "policy (all, veto, majority, quorum:K) with a deadline and per-reviewer fallbacks, puts an "
    "escalated release before its approvers (with a deadline and a fallback), and publishes exactly "
    "one outcome: approved, blocked or escalated.",
    tags=["coordination", "release.proposed", "review.submitted", "round.decided"],
    examples=["Decide release rel-42 once security and compliance have reviewed it."],
)


def build_coordinator(
    settings: CoordinatorSettings, *, clock: Callable[[], datetime] = utc_now, telemetry: Telemetry | None = None
) -> Agent:
    agent = Agent(
        "coordinator",
        settings=settings,
        description="Gathers the reviews of each proposed release into exactly one outcome.",
        skills=[SKILL],
        telemetry=telemetry,  # None: as the OTEL_* variables say
    )
    coordinator = Coordinator(settings=settings, agent=agent, clock=clock)
    s = settings.subjects
    agent.publishes(s.rounds_decided, RoundDecided)
    agent.publishes(s.deadline_schedules, RoundDeadline)
    agent.publishes(s.approvals_requested, ApprovalRequested)
    agent.publishes(s.approvals_expiring, ApprovalExpiring)
    agent.publishes(s.approval_verdicts, DecisionVerdict)
    agent.publishes(s.approval_timer_schedules, ApprovalTimer)
    agent.publishes(s.audit_records, AuditRecord)
    # an outcome published by someone else's claim or before a crash is looked for first (`_outcome_stored`)
    agent.reads_stream(s.outcomes_stream, s.rounds_decided, live=False)
    agent.writes_bucket(s.rounds_bucket)
    agent.writes_bucket(s.approvals_bucket)
    if settings.reviewer_discovery:
        agent.reads_bucket(s.agents_bucket)
        agent.reads_bucket(s.instances_bucket)
    agent.consumes(
        stream=s.events_stream, subject=s.release_proposed, model=ReleaseProposed, durable="coordinator-proposals"
    )(coordinator.handle_release_proposed)
    agent.consumes(stream=s.reviews_stream, subject=s.reviews, model=ReviewSubmitted, durable="coordinator-reviews")(
        coordinator.handle_review_submitted
    )
    agent.consumes(
        stream=s.deadlines_stream, subject=s.deadlines_fired, model=RoundDeadline, durable="coordinator-deadlines"
    )(coordinator.handle_round_deadline)
    agent.consumes(
        stream=s.approvals_stream,
        subject=s.approval_decisions,
        model=ApprovalDecided,
        durable="coordinator-approvals",
        description="coordinator: people's decisions on escalated releases",
    )(coordinator.approvals.handle_approval_decided)
    agent.consumes(
        stream=s.approvals_stream,
        subject=s.approval_timers_fired,
        model=ApprovalTimer,
        durable="coordinator-approval-timers",
        description="coordinator: approval deadlines and reminders, fired by the server",
    )(coordinator.approvals.handle_approval_timer)
    agent.on_start.append(coordinator.connect)
    agent.on_stop.append(coordinator.disconnect)
    return agent
