"""The coordinator's approval desk: what a round waiting for a person needs on the bus, and the
handlers of people's decisions and of the approval deadline.

Same shape as every coordinator handler: change the round with compare-and-set, then make sure
the effects of its state exist, each with a deterministic message id so a redelivery repeats
them harmlessly:

- a round that began waiting (`ensure`): its view in the approvals KV bucket, its deadline and
  reminder scheduled on the NATS server (`@at`, so nothing runs while it waits), the
  `approval.requested` notice and its audit record — then the round is marked announced;
- a decision (`handle_approval_decided`): taken or refused on the round, the outcome published
  if it decided the release, its audit record, the view, and the verdict the decider waits for;
- a timer (`handle_approval_timer`): the fallback at the deadline (and its audit record), or
  the `approval.expiring` notice before it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from bus.delivery import Delivery
from bus.errors import InvalidMessage
from contracts.approvals import ApprovalDecided, ApprovalExpiring, ApprovalRequested, ApprovalTimer, DecisionVerdict
from contracts.audit import AuditKind, AuditRecord
from contracts.deadlines import rfc3339_ceil
from contracts.ids import approval_notice_msg_id, approval_timer_msg_id, approval_verdict_msg_id, audit_msg_id
from coordinator.approval_views import state_of, view_of
from coordinator.approvals import Verdict
from coordinator.rounds import Round, RoundState

if TYPE_CHECKING:
    from coordinator.service import Coordinator

_VIEW_ATTEMPTS = 10


class ApprovalDesk:
    def __init__(self, coordinator: Coordinator) -> None:
        self.c = coordinator
        self.subjects = coordinator.subjects
        self.kv: KeyValue | None = None

    async def connect(self) -> None:
        self.kv = await self.c.agent.broker.connection.jetstream().key_value(self.subjects.approvals_bucket)

    # --- handlers -----------------------------------------------------------------------

    async def handle_approval_decided(self, event: ApprovalDecided, delivery: Delivery):
        s, c = self.subjects, self.c
        channel = delivery.message.subject.split(".")[-2]
        if delivery.message.subject != s.approval_decided(channel, event.release_id):
            raise InvalidMessage(
                f"a decision on release {event.release_id!r} arrived on {delivery.message.subject}; it belongs on "
                f"{s.approval_decided(channel, event.release_id)}"
            )
        at = _stored_at(delivery) or c.clock()
        decided = await c.store.mutate(
            event.release_id,
            event.content_digest,
            c._deciding(delivery, lambda r: r.take_decision(event, channel=channel, at=at, now=c.clock())),
        )
        round_ = decided.round
        verdict = round_.verdict or Verdict(False, 404, "no approval is pending for that revision")
        if round_.approval is not None and event.approval_id != round_.approval.id:
            verdict = Verdict(False, 404, f"approval {event.approval_id!r} is not the approval of that revision")
        log = delivery.log.info if verdict.accepted else delivery.log.warning
        log(round_.note or verdict.detail, decider=event.decider, decision=event.decision, status=verdict.status)
        await c._ensure_outcome(round_, delivery, decided_now=decided.decided)
        await self.ensure(round_, delivery)
        kind = AuditKind.DECIDED if verdict.accepted else AuditKind.REFUSED
        await self._audit(
            delivery,
            round_,
            kind,
            key=event.event_id,
            at=at,
            who=event.decider,
            what=verdict.detail,
            decision=event.decision,
            note=event.note,
            release_id=event.release_id,
            digest=event.content_digest,
            approval_id=event.approval_id,
        )
        answer = DecisionVerdict(
            correlation_id=event.release_id,
            causation_id=event.event_id,
            producer="coordinator",
            decision_id=event.event_id,
            approval_id=event.approval_id,
            release_id=event.release_id,
            content_digest=event.content_digest,
            accepted=verdict.accepted,
            status=verdict.status,
            detail=verdict.detail,
            state=state_of(round_).value if round_.approval is not None else "",
        )
        await delivery.publish(
            answer, s.approval_verdict(event.event_id), msg_id=approval_verdict_msg_id(event.event_id)
        )
        return decided

    async def handle_approval_timer(self, timer: ApprovalTimer, delivery: Delivery):
        s, c = self.subjects, self.c
        if delivery.message.subject != s.approval_timer_fired(timer.kind, timer.release_id, timer.content_digest):
            raise InvalidMessage(f"an approval {timer.kind} timer arrived on {delivery.message.subject}")
        if timer.kind == "expire":
            transition = c._deciding(delivery, lambda r: r.expire_approval(now=c.clock()))
        else:
            transition = Round.remind_approval
        fired = await c.store.mutate(timer.release_id, timer.content_digest, transition)
        round_ = fired.round
        if fired.changed:
            delivery.log.info(round_.note, approval=round_.approval.id if round_.approval else None)
        await c._ensure_outcome(round_, delivery, decided_now=fired.decided)
        await self.ensure(round_, delivery)
        approval = round_.approval
        if approval is None:
            return fired
        if timer.kind == "expire" and approval.expired:
            await self._audit(
                delivery,
                round_,
                AuditKind.EXPIRED,
                key=f"{approval.id}",
                at=round_.decision.decided_at,
                who="coordinator",
                what=round_.decision.reason,
            )
        if timer.kind == "remind" and approval.reminded and round_.state == RoundState.AWAITING_APPROVAL:
            left = max(0.0, (approval.deadline - c.clock()).total_seconds())
            notice = ApprovalExpiring(
                correlation_id=round_.release_id, producer="coordinator", approval=view_of(round_), seconds_left=left
            )
            msg_id = approval_notice_msg_id("expiring", round_.release_id, round_.content_digest)
            await delivery.publish(notice, s.approval_expiring(round_.release_id), msg_id=msg_id)
        return fired

    # --- effects ------------------------------------------------------------------------

    async def ensure(self, round_: Round, delivery: Delivery) -> None:
        """Whatever a round's approval calls for now: its request announced once, its view current."""
        approval = round_.approval
        if approval is None:
            return
        await self.write_view(round_)
        if approval.announced:
            return
        s = self.subjects
        if round_.state == RoundState.AWAITING_APPROVAL:
            await self._schedule(round_, "expire", approval.deadline, delivery)
            if approval.remind_at is not None:
                await self._schedule(round_, "remind", approval.remind_at, delivery)
            notice = ApprovalRequested(
                correlation_id=round_.release_id, producer="coordinator", approval=view_of(round_)
            )
            msg_id = approval_notice_msg_id("requested", round_.release_id, round_.content_digest)
            await delivery.publish(notice, s.approval_requested(round_.release_id), msg_id=msg_id)
        await self._audit(
            delivery,
            round_,
            AuditKind.REQUESTED,
            key=approval.id,
            at=approval.requested_at,
            who="coordinator",
            what=f"waiting for {approval.needed} of {', '.join(approval.approvers)} until "
            f"{approval.deadline.isoformat()} (then {approval.fallback}): {approval.reason}",
        )
        await self.c.store.mutate(round_.release_id, round_.content_digest, Round.mark_announced)

    async def write_view(self, round_: Round) -> None:
        """Put the round's approval view in the approvals bucket, unless a newer one is there."""
        view = view_of(round_)
        data = view.model_dump_json().encode()
        for _ in range(_VIEW_ATTEMPTS):
            try:
                entry = await self.kv.get(view.id)
            except KeyNotFoundError:
                entry = None
            current = entry if entry is not None and entry.value else None
            if current is not None and json.loads(current.value).get("version_seq", 0) >= view.version_seq:
                return
            try:
                if current is None:
                    await self.kv.create(view.id, data)
                else:
                    await self.kv.update(view.id, data, last=current.revision)
                return
            except KeyWrongLastSequenceError:
                continue  # another replica wrote first: compare again

    async def _schedule(self, round_: Round, kind: str, moment: datetime, delivery: Delivery) -> None:
        """Ask the NATS server to fire the approval's `kind` timer at `moment`, whoever runs then."""
        s = self.subjects
        at = rfc3339_ceil(moment)
        timer = ApprovalTimer(
            release_id=round_.release_id,
            content_digest=round_.content_digest,
            kind=kind,
            correlation_id=round_.release_id,
            producer="coordinator",
        )
        await delivery.publish(
            timer,
            s.approval_timer_schedule(kind, round_.release_id, round_.content_digest),
            msg_id=approval_timer_msg_id(kind, round_.release_id, round_.content_digest, at),
            headers={
                "Nats-Schedule": f"@at {at}",
                "Nats-Schedule-Target": s.approval_timer_fired(kind, round_.release_id, round_.content_digest),
            },
        )

    async def _audit(
        self,
        delivery: Delivery,
        round_: Round,
        kind: AuditKind,
        *,
        key: str,
        at: datetime,
        who: str,
        what: str,
        decision: str | None = None,
        note: str = "",
        release_id: str | None = None,
        digest: str | None = None,
        approval_id: str | None = None,
    ) -> None:
        release_id = release_id or round_.release_id
        approval = round_.approval
        settled = round_.decision is not None and kind in (AuditKind.DECIDED, AuditKind.EXPIRED)
        record = AuditRecord(
            correlation_id=release_id,
            producer="coordinator",
            kind=kind,
            at=at,
            who=who,
            what=what[:2000],
            approval_id=approval.id if approval else approval_id or "",
            release_id=release_id,
            content_digest=digest if digest is not None else round_.content_digest,
            decision=decision,
            note=note,
            outcome=round_.decision.outcome.value if settled else None,
            trace_id=delivery.trace_id,
        )
        await delivery.publish(
            record, self.subjects.audit_record(kind.value, release_id), msg_id=audit_msg_id(kind.value, key)
        )


def _stored_at(delivery: Delivery) -> datetime | None:
    """When the server stored the message being handled."""
    return getattr(delivery.message.metadata, "timestamp", None)
