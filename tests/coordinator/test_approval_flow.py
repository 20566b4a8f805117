"""An escalated round waits for a person, against a real nats-server: the coordinator runs
in-process, the tests publish the reviews and the people's decisions themselves (as the
reviewers, the gateway and the operator would), and count the outcomes in the stream and with a
core NATS subscriber."""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import asynccontextmanager

import nats
import pytest

from bus.approvals import ApprovalsClient
from bus.client import MeshClient
from bus.ops.launcher import provision_mesh
from contracts.approvals import ApprovalView
from contracts.audit import AuditRecord
from contracts.ids import review_msg_id
from contracts.outcomes import Outcome, RoundDecided
from contracts.releases import ReleaseProposed
from contracts.reviews import Finding, ReviewSubmitted
from coordinator.service import build_coordinator
from tests.e2e.support import eventually, stream_messages
from tests.settled import all_settled

APPROVERS = "default=key:alice,key:bob,operator:ops;label:pci=key:alice,key:carol"


def proposal(release_id: str, **fields) -> ReleaseProposed:
    return ReleaseProposed(release_id=release_id, service="payments-api", version="2.4.0", **fields)


def review(p: ReleaseProposed, reviewer: str, verdict: str, findings: list[Finding] = ()) -> ReviewSubmitted:
    return ReviewSubmitted.answering(
        p,
        reviewer=reviewer,
        verdict=verdict,
        confidence=0.9,
        rationale=f"{reviewer} says {verdict}.",
        model="offline-rules",
        findings=list(findings),
    )


FINDING = Finding(rule="CMP010", severity="medium", message="No changelog entry.", file="CHANGELOG.md", line=3)


class Harness:
    def __init__(self, settings, client: MeshClient, nc, consumers=()) -> None:
        self.settings = settings
        self.consumers = consumers  # the coordinator's
        self.client = client
        self.approvals = ApprovalsClient(client.nc, settings, name="test")
        self.nc = nc  # a plain connection, for core NATS subscribers
        self.s = settings.subjects

    async def escalate(self, release_id: str | None = None, **fields) -> tuple[ReleaseProposed, ApprovalView]:
        """Propose a release, have security approve and compliance ask for a human; its approval."""
        p = proposal(release_id or f"rel-{uuid.uuid4().hex[:8]}", **fields)
        await self.client.propose(p)
        for r in (review(p, "security", "approve"), review(p, "compliance", "needs_human", [FINDING])):
            subject = self.s.review_submitted(r.reviewer)
            await self.client.js.publish(
                subject, r.model_dump_json().encode(), headers={"Nats-Msg-Id": review_msg_id(r)}
            )
        view = await self.approvals.wait_for_request(p.release_id, p.content_digest, timeout=10)
        assert view is not None, "the round did not begin waiting for a person"
        return p, view

    async def decide(self, view: ApprovalView, who: str, decision: str = "approve", *, note: str = "", channel=None):
        channel = channel or ("operator" if who.startswith("operator:") else "gateway")
        _, verdict = await self.approvals.decide(
            view, decision=decision, note=note, decider=who, channel=channel, via="test", timeout=10
        )
        assert verdict is not None, "the coordinator did not answer"
        return verdict

    async def settled(self) -> None:
        """The positive signal before asserting that nothing was decided: every coordinator
        consumer has acked all it was given (an outcome is published before the ack that ends
        its handling), and this connection has heard whatever the server sent it before."""
        await all_settled(self.settings.nats_url, self.consumers)
        await self.nc.flush()
        await asyncio.sleep(0.1)  # the subscriber's callback task runs what the flush brought in

    async def outcomes(self, p: ReleaseProposed) -> list[RoundDecided]:
        stored = await stream_messages(self.settings.nats_url, self.s.outcomes_stream, self.s.outcomes_of(p.release_id))
        return [RoundDecided.model_validate_json(data) for data in stored]

    async def audit(self, p: ReleaseProposed) -> list[AuditRecord]:
        stored = await stream_messages(self.settings.nats_url, self.s.audit_stream, self.s.audit_of(p.release_id))
        return [AuditRecord.model_validate_json(data) for data in stored]

    @asynccontextmanager
    async def watching(self, release_id: str):
        """Every outcome of `release_id` seen by a core NATS subscriber, as a growing list."""
        seen: list[RoundDecided] = []

        async def record(msg) -> None:
            seen.append(RoundDecided.model_validate_json(msg.data))

        sub = await self.nc.subscribe(self.s.outcomes_of(release_id), cb=record)
        try:
            yield seen
        finally:
            await sub.unsubscribe()


@asynccontextmanager
async def harness(settings):
    await provision_mesh(settings, names=["coordinator"])
    nc = await nats.connect(settings.nats_url)
    try:
        coordinator = build_coordinator(settings)
        async with coordinator.running(), await MeshClient.connect(settings) as client:
            yield Harness(settings, client, nc, coordinator.consumers)
    finally:
        await nc.close()


@pytest.fixture
async def mesh(make_settings):
    settings = make_settings(
        deadline_seconds=5, approvers=APPROVERS, two_person_rule="label:pci", approval_deadline_seconds=60
    )
    async with harness(settings) as h:
        yield h


async def test_an_escalated_release_waits_then_an_allowed_person_approves_it_once(mesh):
    """needs_human -> pending (no outcome) -> approved by key:alice -> exactly one approved outcome,
    in the stream and on the wire, carrying the reviews, the decision and the reason."""
    p = proposal(f"rel-{uuid.uuid4().hex[:8]}")
    async with mesh.watching(p.release_id) as seen:
        _, view = await mesh.escalate(p.release_id)
        assert view.state == "pending" and view.approvers == ["key:alice", "key:bob", "operator:ops"]
        assert view.needed == 1 and view.findings[0].path == "CHANGELOG.md" and view.findings[0].line == 3
        assert view.rationales["compliance"] == "compliance says needs_human."
        await mesh.settled()
        assert await mesh.outcomes(p) == [] and seen == []  # nothing is decided while it waits

        verdict = await mesh.decide(view, "key:alice", note="changelog checked")
        assert verdict.accepted and verdict.status == 200 and verdict.state == "approved"

        outcome = await mesh.client.wait_for_outcome(p, timeout=10)
        await eventually(lambda: asyncio.sleep(0, result=len(seen) >= 1), timeout=5)
        await mesh.settled()  # a second outcome would be published before the coordinator acks
        assert len(seen) == 1 and len(await mesh.outcomes(p)) == 1
    assert outcome.outcome == Outcome.APPROVED and outcome.decided_by == "people"
    assert [(d.who, d.decision, d.note) for d in outcome.human_decisions] == [
        ("key:alice", "approve", "changelog checked")
    ]
    assert sorted(r.reviewer for r in outcome.reviews) == ["compliance", "security"]
    assert outcome.reason.startswith("Approved by key:alice after escalation.")
    assert "compliance asked for a human" in outcome.approval.escalation_reason
    after = await mesh.approvals.get(view.id)
    assert after.state == "approved" and after.outcome.outcome == Outcome.APPROVED


async def test_a_rejection_blocks_the_release(mesh):
    """One approver's reject blocks it at once, with the note in the reason."""
    p, view = await mesh.escalate()
    verdict = await mesh.decide(view, "operator:ops", "reject", note="no changelog")
    outcome = await mesh.client.wait_for_outcome(p, timeout=10)

    assert verdict.accepted and verdict.state == "rejected"
    assert outcome.outcome == Outcome.BLOCKED and outcome.reason.startswith("Blocked: operator:ops rejected it")
    assert outcome.human_decisions[0].via == "test"
    assert (await mesh.approvals.get(view.id)).state == "rejected"


async def test_refused_decisions_are_answered_with_a_reason_and_recorded(mesh):
    """Someone not allowed (403), a channel speaking for someone it may not (403), the same person
    twice and a decision after the outcome (409), a revision that never waited (404): each refused,
    none changes the one outcome, and each is on the audit trail."""
    p, view = await mesh.escalate(labels=["pci"])  # two-person rule: alice and carol both needed
    assert view.needed == 2 and view.approvers == ["key:alice", "key:carol"]

    stranger = await mesh.decide(view, "key:mallory")
    forged = await mesh.decide(view, "key:alice", channel="operator")  # the operator may not speak for key:alice
    first = await mesh.decide(view, "key:alice")
    again = await mesh.decide(view, "key:alice")
    second = await mesh.decide(view, "key:carol", note="second pair of eyes")
    late = await mesh.decide(view, "key:carol", "reject")

    assert (stranger.accepted, stranger.status) == (False, 403) and "key:mallory may not decide" in stranger.detail
    assert (forged.accepted, forged.status) == (False, 403)
    assert (first.accepted, first.status) == (True, 202)  # one of two
    assert (again.accepted, again.status) == (False, 409) and "second decision" in again.detail
    assert (second.accepted, second.status) == (True, 200)
    assert (late.accepted, late.status) == (False, 409) and "settled" in late.detail
    outcomes = await mesh.outcomes(p)
    assert len(outcomes) == 1 and outcomes[0].outcome == Outcome.APPROVED
    assert [d.who for d in outcomes[0].human_decisions] == ["key:alice", "key:carol"]  # the outcome lists both

    never = proposal(f"rel-{uuid.uuid4().hex[:8]}")
    ghost = view.model_copy(update={"release_id": never.release_id, "revision": never.content_digest})
    nothing = await mesh.decide(ghost, "key:alice")
    assert (nothing.accepted, nothing.status) == (False, 404)

    records = await eventually(lambda: mesh.audit(p), timeout=5)
    kinds = [(r.kind.value, r.who) for r in records]
    assert kinds[0] == ("requested", "coordinator")
    assert ("refused", "key:mallory") in kinds and kinds.count(("refused", "key:alice")) == 2
    assert ("decided", "key:alice") in kinds and ("decided", "key:carol") in kinds and ("refused", "key:carol") in kinds
    decided = next(r for r in records if r.kind == "decided" and r.who == "key:carol")
    assert decided.outcome == "approved" and decided.note == "second pair of eyes"
    refused = (await mesh.approvals.get(view.id)).refused
    assert {r.who for r in refused} == {"key:mallory", "key:alice", "key:carol"}


async def test_nobody_deciding_by_the_approval_deadline_applies_its_fallback(make_settings):
    """A short approval deadline: the reminder goes out (approval.expiring), then the fallback
    blocks it — one outcome, decided by the approval deadline, and an `expired` audit record."""
    settings = make_settings(approvers=APPROVERS, approval_deadline_seconds=2.5, approval_reminder=0.4)
    async with harness(settings) as h:
        p, view = await h.escalate()
        outcome = await h.client.wait_for_outcome(p, timeout=15)
        s = settings.subjects
        expiring = await stream_messages(settings.nats_url, s.approvals_stream, s.approval_expiring(p.release_id))

        async def expired_recorded():
            records = await h.audit(p)
            return records if any(r.kind == "expired" for r in records) else None

        records = await eventually(expired_recorded, timeout=5)
        await h.settled()
        outcomes = await h.outcomes(p)
        after = await h.approvals.get(view.id)

    assert outcome.outcome == Outcome.BLOCKED and outcome.decided_by == "approval_deadline"
    assert outcome.approval.expired and "nobody decided by the approval deadline" in outcome.reason
    assert len(outcomes) == 1
    assert len(expiring) == 1 and json.loads(expiring[0])["approval"]["id"] == view.id
    assert [r.kind.value for r in records] == ["requested", "expired"]
    assert records[-1].outcome == "blocked" and records[-1].who == "coordinator"
    assert after.state == "expired"


async def test_with_no_approver_configured_an_escalation_stays_final(make_settings):
    """Without MESH_APPROVERS nobody could decide: the round ends `escalated` at once, as it always did."""
    async with harness(make_settings()) as h:
        p = proposal(f"rel-{uuid.uuid4().hex[:8]}")
        await h.client.propose(p)
        for r in (review(p, "security", "approve"), review(p, "compliance", "needs_human", [FINDING])):
            subject = h.s.review_submitted(r.reviewer)
            await h.client.js.publish(subject, r.model_dump_json().encode(), headers={"Nats-Msg-Id": review_msg_id(r)})
        outcome = await h.client.wait_for_outcome(p, timeout=10)

    assert outcome.outcome == Outcome.ESCALATED and outcome.approval is None and outcome.decided_by == "reviewers"
