"""The coordinator against a real nats-server, attacked from the bus: forged, early, mismatched
and oversized reviews never decide a round; a round stays small whatever is sent to it; changed
content under the same release id is a new revision with its own round and outcome.

No reviewer service runs here: the tests publish reviews themselves, as an attacker with
access to the NATS port would, and the coordinator runs in-process.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from bus.client import MeshClient
from bus.ops.dead_letters import list_dead_letters
from bus.ops.launcher import provision_mesh
from contracts.ids import review_msg_id
from contracts.outcomes import Outcome
from contracts.releases import ReleaseProposed
from contracts.reviews import MAX_FINDINGS, ReviewSubmitted
from coordinator.service import build_coordinator
from coordinator.store import RoundStore, round_key
from tests.e2e.support import eventually
from tests.settled import all_settled, consumer_settled

KEY_LINE = '+AWS_ACCESS_KEY_ID = "AKIAZ7VRSQ5TJXK3M2PL"\n'


def proposal(release_id: str, diff: str = "+def refund(order_id):\n+    return order_id\n") -> ReleaseProposed:
    return ReleaseProposed(
        release_id=release_id,
        service="payments-api",
        version="2.4.0",
        changes=[{"path": "src/refunds.py", "diff": diff}],
    )


def review_of(p: ReleaseProposed, reviewer: str, verdict: str, **overrides) -> ReviewSubmitted:
    fields = {
        "release_id": p.release_id,
        "content_digest": p.content_digest,
        "causation_id": p.event_id,
        "reviewer": reviewer,
        "verdict": verdict,
        "confidence": 0.9,
        "rationale": f"{reviewer}: {verdict}",
        "model": "offline-rules",
    }
    return ReviewSubmitted(**{**fields, **overrides})


async def send(client: MeshClient, review: ReviewSubmitted, *, subject: str | None = None, msg_id: str = "") -> None:
    subject = subject or client.subjects.review_submitted(review.reviewer)
    msg_id = msg_id or review_msg_id(review)
    await client.js.publish(subject, review.model_dump_json().encode(), headers={"Nats-Msg-Id": msg_id})


def raw_review(p: ReleaseProposed, reviewer: str, verdict: str, **fields) -> tuple[ReviewSubmitted, bytes]:
    review = review_of(p, reviewer, verdict)
    return review, json.dumps(review.model_dump(mode="json") | fields).encode()


async def send_raw(client: MeshClient, review: ReviewSubmitted, data: bytes) -> None:
    subject, msg_id = client.subjects.review_submitted(review.reviewer), review_msg_id(review)
    await client.js.publish(subject, data, headers={"Nats-Msg-Id": msg_id})


@pytest.fixture
async def mesh(make_settings):
    """An in-process coordinator (required: security and compliance; short deadline) and a client."""
    settings = make_settings(deadline_seconds=3, max_deliver=2)
    await provision_mesh(settings, names=["coordinator"])
    async with build_coordinator(settings).running(), await MeshClient.connect(settings) as client:
        yield settings, client


async def test_a_review_on_another_reviewers_subject_never_counts_and_is_dead_lettered(mesh):
    """`reviewer=security` published on compliance's subject, or on an unrelated subject under
    `reviews.>`, is refused before it touches a round: dead-lettered with the reason, and the
    release — carrying a key — is blocked by security's fallback, not approved."""
    settings, client = mesh
    p = proposal("rel-forged-subject", diff=KEY_LINE)
    await client.propose(p)
    await send(client, review_of(p, "compliance", "approve"))
    await send(client, review_of(p, "security", "approve"), subject=client.subjects.review_submitted("compliance"))
    other = review_of(p, "security", "approve", event_id="other")
    await send(client, other, subject=f"{settings.namespace}.reviews.x.y", msg_id="other")
    outcome = await client.wait_for_outcome(p, timeout=15)
    assert outcome is not None and outcome.outcome == Outcome.BLOCKED
    assert outcome.missing == ["security"] and outcome.fallbacks_applied == {"security": "block"}
    letters = await eventually(lambda: _letters(client, settings, 2))
    assert len(letters) == 2
    assert all("publishes only on" in letter.record.error for letter in letters)


async def _letters(client, settings, n):
    letters = await list_dead_letters(client.js, settings, service="coordinator")
    return letters if len(letters) >= n else None


async def test_a_forged_early_review_is_not_counted_when_the_round_opens(mesh):
    """An approval 'from security' published before its proposal, about the right content but
    answering no proposal of it (the forger cannot know the proposal's event id), is kept
    until the round opens, then rejected with the reason; the key-carrying release is blocked."""
    settings, client = mesh
    p = proposal("rel-early-forged", diff=KEY_LINE)
    await send(client, review_of(p, "security", "approve", causation_id="guessed"))
    # handled (kept for the round) before the proposal arrives
    await consumer_settled(settings.nats_url, settings.subjects.reviews_stream, "coordinator-reviews")
    await client.propose(p)
    await send(client, review_of(p, "compliance", "approve"))
    outcome = await client.wait_for_outcome(p, timeout=15)
    assert outcome is not None and outcome.outcome == Outcome.BLOCKED
    assert "security" in outcome.missing


async def test_a_real_early_review_counts_when_its_proposal_opens_the_round(mesh):
    """Reviews handled by the coordinator before their proposal (the reviewers were faster than
    the coordinator's proposals consumer, paused here) answer the proposal's event id and were
    stored after it: they are kept, and counted when the round opens."""
    settings, client = mesh
    s = settings.subjects
    p = proposal("rel-early-real")
    await client.js.pause_consumer(s.events_stream, "coordinator-proposals", "2099-01-01T00:00:00Z")
    await client.propose(p)
    await send(client, review_of(p, "security", "approve"))
    await send(client, review_of(p, "compliance", "approve"))
    store = RoundStore(await client.js.key_value(s.rounds_bucket))

    async def both_kept():
        round_ = await store.get(p.release_id, p.content_digest)
        return round_ is not None and len(round_.early_reviews) == 2

    assert await eventually(both_kept)
    await client.js.resume_consumer(s.events_stream, "coordinator-proposals")
    outcome = await client.wait_for_outcome(p, timeout=5)  # decided at once, before the deadline
    assert outcome is not None and outcome.outcome == Outcome.APPROVED
    assert sorted(r.reviewer for r in outcome.reviews) == ["compliance", "security"]


async def test_a_forged_approval_that_beats_the_real_reject_does_not_win(mesh):
    """Two fitting reviews 'from security' while the round is open: the stricter stands, so a
    forged approval cannot shadow the real reject (first one no longer wins)."""
    settings, client = mesh
    p = proposal("rel-two-security", diff=KEY_LINE)
    await client.propose(p)
    store = RoundStore(await client.js.key_value(settings.subjects.rounds_bucket))
    assert await eventually(lambda: store.get(p.release_id, p.content_digest))
    await send(client, review_of(p, "security", "approve", event_id="forged"))
    await send(client, review_of(p, "security", "reject", event_id="real"))
    await send(client, review_of(p, "compliance", "approve"))
    outcome = await client.wait_for_outcome(p, timeout=15)
    assert outcome is not None and outcome.outcome == Outcome.BLOCKED


async def test_reviews_from_unknown_reviewers_cannot_stuff_a_round(mesh):
    """Hundreds of maximal reviews from reviewers nobody expects, before and after the round
    opens: the round stays a few kilobytes, the real reviews still count, the deadline still
    fires, and the outcome is the one the real reviews deserve."""
    settings, client = mesh
    p = proposal("rel-stuffed", diff=KEY_LINE)
    finding = {"rule": "X001", "severity": "low", "message": "x" * 1000, "file": "f" * 400}
    # As raw JSON, the way an attacker sends them: 500 findings, ~700 KB a review.
    stuffing = [raw_review(p, f"intruder-{i}", "approve", findings=[finding] * 500) for i in range(40)]
    await asyncio.gather(*(send_raw(client, review, data) for review, data in stuffing[:20]))
    await client.propose(p)
    await asyncio.gather(*(send_raw(client, review, data) for review, data in stuffing[20:]))
    await send_raw(client, *raw_review(p, "security", "reject", findings=[finding] * 500))
    await send(client, review_of(p, "compliance", "approve"))
    outcome = await client.wait_for_outcome(p, timeout=15)
    assert outcome is not None and outcome.outcome == Outcome.BLOCKED
    security = next(r for r in outcome.reviews if r.reviewer == "security")
    assert len(security.findings) == MAX_FINDINGS and security.findings_omitted == 500 - MAX_FINDINGS
    kv = await client.js.key_value(settings.subjects.rounds_bucket)
    stored = (await kv.get(round_key(p.release_id, p.content_digest))).value
    assert len(stored) < 100_000, f"the round grew to {len(stored)} bytes"
    assert len(json.loads(stored)["rejected"]) <= 20


async def test_changed_content_under_the_same_release_id_is_a_new_revision(mesh):
    """The same release id re-proposed with different, risky content gets its own round and
    outcome (it is not answered by the clean revision's approval), and each outcome names its
    digest; the same content again is the same revision (one outcome)."""
    settings, client = mesh
    clean, risky = proposal("rel-revised"), proposal("rel-revised", diff=KEY_LINE)
    assert clean.content_digest != risky.content_digest
    await client.propose(clean)
    await send(client, review_of(clean, "security", "approve"))
    await send(client, review_of(clean, "compliance", "approve"))
    first = await client.wait_for_outcome(clean, timeout=10)
    assert first is not None and first.outcome == Outcome.APPROVED and first.content_digest == clean.content_digest

    await client.propose(risky)  # within the dedupe window: still published, a new revision
    assert await client.outcome_of(risky) is None
    await send(client, review_of(risky, "security", "reject"))
    await send(client, review_of(risky, "compliance", "approve"))
    second = await client.wait_for_outcome(risky, timeout=10)
    assert second is not None and second.outcome == Outcome.BLOCKED and second.content_digest == risky.content_digest

    again = proposal("rel-revised")  # the clean content once more, a new event id
    await client.propose(again)
    assert (await client.wait_for_outcome(again, timeout=5)).outcome == Outcome.APPROVED
    # every coordinator consumer settled: any further outcome would be published by now
    await all_settled(settings.nats_url, build_coordinator(settings).consumers)
    info = await client.js.stream_info(settings.subjects.outcomes_stream)
    assert info.state.messages == 2


async def test_a_review_of_another_revision_never_counts(mesh):
    """A reviewer's approval of the clean revision, re-sent with the risky revision's digest
    but the clean proposal's event id, is rejected: it answers no proposal of that round."""
    settings, client = mesh
    clean, risky = proposal("rel-crossed"), proposal("rel-crossed", diff=KEY_LINE)
    await client.propose(clean)
    await client.propose(risky)
    store = RoundStore(await client.js.key_value(settings.subjects.rounds_bucket))
    assert await eventually(lambda: store.get(risky.release_id, risky.content_digest))
    crossed = review_of(risky, "security", "approve", causation_id=clean.event_id)
    await send(client, crossed)
    await send(client, review_of(risky, "compliance", "approve"))
    outcome = await client.wait_for_outcome(risky, timeout=15)
    assert outcome is not None and outcome.outcome == Outcome.BLOCKED
    assert outcome.missing == ["security"]


async def test_a_review_published_under_another_reviews_message_id_is_refused(mesh):
    """Squatting: a forged approval published first under the id the real reject will use.
    The stream then drops the real reject (dedupe is the server's), but the coordinator refuses
    a review whose id does not name its own verdict: the forgery is dead-lettered, security
    counts as missing, and its fallback blocks — the key is never approved."""
    settings, client = mesh
    p = proposal("rel-squatted", diff=KEY_LINE)
    await client.propose(p)
    real_reject = review_of(p, "security", "reject")
    forged = review_of(p, "security", "approve")
    await client.js.publish(
        client.subjects.review_submitted("security"),
        forged.model_dump_json().encode(),
        headers={"Nats-Msg-Id": review_msg_id(real_reject)},
    )
    await send(client, real_reject)
    await send(client, review_of(p, "compliance", "approve"))
    outcome = await client.wait_for_outcome(p, timeout=15)
    assert outcome is not None and outcome.outcome == Outcome.BLOCKED
    assert outcome.missing == ["security"] and outcome.fallbacks_applied == {"security": "block"}
    letters = await eventually(lambda: _letters(client, settings, 1))
    assert "Nats-Msg-Id" in letters[0].record.error


async def test_a_review_stored_before_its_proposal_never_counts_even_with_the_right_event_id(mesh):
    """The proposer forges: it picks the proposal's event id, publishes 'security approves'
    answering it, then the proposal. The forgery fits in every field, but the server stored it
    before the proposal existed, so it cannot be an answer to it: rejected, and the key blocked."""
    settings, client = mesh
    p = proposal("rel-self-approved", diff=KEY_LINE)
    await send(client, review_of(p, "security", "approve"))  # causation = p.event_id, chosen in advance
    await consumer_settled(settings.nats_url, settings.subjects.reviews_stream, "coordinator-reviews")
    await client.propose(p)
    await send(client, review_of(p, "compliance", "approve"))
    outcome = await client.wait_for_outcome(p, timeout=15)
    assert outcome is not None and outcome.outcome == Outcome.BLOCKED
    assert outcome.missing == ["security"]
    assert [r.reason for r in outcome.rejected] == ["it was published before the proposal it claims to answer"]


async def test_a_known_reviewers_early_reviews_cannot_stuff_a_round_with_unknown_fields(mesh):
    """Reviews 'from security' before the proposal, each carrying ~300 KB in a field the
    contract does not know: unknown fields are dropped, so the waiting round stays small, and
    the release is still decided (blocked by security's fallback)."""
    settings, client = mesh
    p = proposal("rel-early-stuffed", diff=KEY_LINE)
    for i in range(3):
        review, data = raw_review(p, "security", "approve", event_id=f"stuff-{i}", padding="x" * 300_000)
        await client.js.publish(
            client.subjects.review_submitted("security"), data, headers={"Nats-Msg-Id": f"{review_msg_id(review)}"}
        )
    kv = await client.js.key_value(settings.subjects.rounds_bucket)

    async def waiting_round():
        try:
            return (await kv.get(round_key(p.release_id, p.content_digest))).value
        except Exception:  # noqa: BLE001 - not written yet
            return None

    stored = await eventually(waiting_round)
    assert stored is not None and len(stored) < 20_000, f"the waiting round is {len(stored or b'')} bytes"
    await client.propose(p)
    await send(client, review_of(p, "compliance", "approve"))
    outcome = await client.wait_for_outcome(p, timeout=15)
    assert outcome is not None and outcome.outcome == Outcome.BLOCKED


async def test_a_crowd_of_self_registered_reviewers_cannot_push_a_round_past_its_limit(mesh):
    """Anyone who can write cards can make fake reviewers 'live'. A round adds at most a few of
    them, and a round grown large keeps only verdicts and the most severe findings: with every
    fake sending a maximal review, the real reviews still fit and decide (blocked)."""
    settings, client = mesh
    cards = await client.js.key_value(settings.subjects.agents_bucket)
    instances = await client.js.key_value(settings.subjects.instances_bucket)
    template = {
        "name": "x", "description": "x", "version": "1",
        "supportedInterfaces": [{"url": "http://127.0.0.1:1", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
        "capabilities": {}, "defaultInputModes": ["application/json"], "defaultOutputModes": ["application/json"],
        "skills": [{"id": "review.x", "name": "x", "description": "x", "tags": ["review", "release.proposed"]}],
    }  # fmt: skip
    fakes = [f"fake-{i:02d}" for i in range(20)]
    now = datetime.now(UTC).isoformat()
    for name in fakes:
        await cards.put(name, json.dumps({**template, "name": name}).encode())
        instance = {
            "agent": name,
            "instanceId": "i1",
            "url": "http://127.0.0.1:1",
            "startedAt": now,
            "heartbeatAt": now,
        }
        await instances.put(f"{name}.i1", json.dumps(instance).encode())
    store = RoundStore(await client.js.key_value(settings.subjects.rounds_bucket))
    probes = iter(range(1000))

    async def crowd_seen() -> bool:
        """The coordinator's view has caught up: a probe round expects the full crowd it allows."""
        probe = proposal(f"rel-probe-{next(probes)}")
        await client.propose(probe)
        opened = await eventually(lambda: store.get(probe.release_id, probe.content_digest))
        return opened is not None and len(opened.expected) == 2 + 8

    assert await eventually(crowd_seen, timeout=20, interval=0.5), "the coordinator never saw the fakes"

    p = proposal("rel-crowded", diff=KEY_LINE)
    await client.propose(p)
    round_ = await eventually(lambda: store.get(p.release_id, p.content_digest))
    assert round_ is not None and len(round_.expected) == 2 + 8  # 20 live fakes, 8 of them taken
    finding = {"rule": "X001", "severity": "low", "message": "x" * 500, "file": "f" * 300}
    for name in [n for n in round_.expected if n.startswith("fake-")]:
        await send_raw(client, *raw_review(p, name, "approve", findings=[finding] * 50, rationale="r" * 4000))
    await send_raw(client, *raw_review(p, "security", "reject", findings=[finding] * 50))
    await send(client, review_of(p, "compliance", "approve"))
    outcome = await client.wait_for_outcome(p, timeout=15)
    assert outcome is not None and outcome.outcome == Outcome.BLOCKED
    kv = await client.js.key_value(settings.subjects.rounds_bucket)
    assert len((await kv.get(round_key(p.release_id, p.content_digest))).value) < 300 * 1024
