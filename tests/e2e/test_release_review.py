"""The release review, end to end: real services as processes, a real nats-server."""

from __future__ import annotations

import asyncio
import json

import pytest

from contracts.deadletters import DeadLetter
from contracts.outcomes import Outcome, RoundDecided
from tests.e2e.support import eventually, mesh_settled, sample, stream_messages

ALL = ["security", "compliance", "coordinator"]


@pytest.fixture
async def mesh(settings, launch):
    return await asyncio.to_thread(launch, settings, ALL)


async def test_clean_release_is_approved(mesh, client):
    """A clean release gets an approving review from each reviewer and an approved outcome."""
    proposal = sample("release_clean", release_id="rel-clean-1")
    await client.propose(proposal)
    outcome = await client.wait_for_outcome(proposal, timeout=20)

    assert outcome is not None
    assert outcome.outcome == Outcome.APPROVED
    assert {r.reviewer: r.verdict.value for r in outcome.reviews} == {"security": "approve", "compliance": "approve"}
    assert outcome.missing == []
    assert outcome.correlation_id == proposal.release_id
    assert outcome.causation_id == proposal.event_id
    assert all(r.model == "offline-rules" for r in outcome.reviews)


async def test_release_with_secret_is_blocked_with_the_finding(mesh, client):
    """A planted credential makes security reject; the outcome is blocked and names the finding."""
    proposal = sample("release_secret", release_id="rel-secret-1")
    await client.propose(proposal)
    outcome = await client.wait_for_outcome(proposal, timeout=20)

    assert outcome is not None
    assert outcome.outcome == Outcome.BLOCKED
    security = next(r for r in outcome.reviews if r.reviewer == "security")
    assert security.verdict.value == "reject"
    lines = {(f.file, f.line) for f in security.findings}
    assert ("src/provider.py", 3) in lines  # the AWS key, on the third added line
    assert "security" in outcome.reason
    assert "AKIAZ7VRSQ5TJXK3M2PL" not in outcome.model_dump_json()  # secrets are never echoed


async def test_duplicate_proposal_yields_one_outcome(mesh, client, settings):
    """The same proposal published twice (even past stream dedupe) produces exactly one outcome."""
    proposal = sample("release_clean", release_id="rel-dup-1")
    await client.propose(proposal)
    # A second copy with its own message id gets past JetStream's dedupe window check:
    # only the consumers' idempotency stands between it and a second outcome.
    await client.js.publish(
        settings.subjects.release_proposed,
        proposal.model_dump_json().encode(),
        headers={"Nats-Msg-Id": "another-id"},
    )
    first = await client.wait_for_outcome(proposal, timeout=20)
    assert first is not None and first.outcome == Outcome.APPROVED
    # both copies handled by every service, and what they published handled in turn
    await mesh_settled(settings, ALL)

    outcomes = await stream_messages(
        settings.nats_url, settings.subjects.outcomes_stream, settings.subjects.outcomes_of(proposal.release_id)
    )
    assert len(outcomes) == 1
    reviews = await stream_messages(settings.nats_url, settings.subjects.reviews_stream)
    per_reviewer = [json.loads(r)["reviewer"] for r in reviews if json.loads(r)["release_id"] == proposal.release_id]
    assert sorted(per_reviewer) == ["compliance", "security"]  # review publishes were deduplicated too


async def test_bad_events_are_dead_lettered_and_services_survive(mesh, client, settings):
    """Malformed JSON and schema-invalid events land in the dead-letter stream, once per
    consuming service, with payload, headers, subject, error and delivery count; the mesh
    still decides the next valid proposal."""
    subject = settings.subjects.release_proposed
    await client.js.publish(subject, b'{"release_id": ', headers={"X-Source": "fuzzer"})
    await client.js.publish(subject, json.dumps({"release_id": "rel-x", "changes": "oops"}).encode())

    async def three_each():
        records = [
            DeadLetter.model_validate_json(m)
            for m in await stream_messages(settings.nats_url, settings.subjects.dead_letter_stream)
        ]
        return records if len(records) >= 6 else None

    records = await eventually(three_each, timeout=15)
    assert records, "expected 6 dead letters (2 bad events x 3 consumers)"
    assert sorted({r.service for r in records}) == ["compliance", "coordinator", "security"]
    malformed = [r for r in records if r.payload == '{"release_id": ']
    assert len(malformed) == 3
    assert all(r.headers.get("X-Source") == "fuzzer" and r.subject == subject for r in malformed)
    assert all(r.deliveries == 1 and r.error_type == "invalid" for r in records)
    invalid = [r for r in records if r.payload != '{"release_id": ']
    assert all("service" in r.error and "changes" in r.error for r in invalid)

    proposal = sample("release_clean", release_id="rel-after-garbage")
    await client.propose(proposal)
    outcome = await client.wait_for_outcome(proposal, timeout=20)
    assert outcome is not None and outcome.outcome == Outcome.APPROVED
    assert all(s.alive() for s in mesh.services)


async def test_absent_reviewer_gets_its_fallback_at_the_deadline(make_settings, launch):
    """With compliance not running, the round waits for the deadline, then applies compliance's
    fallback (here: block) and reports it missing."""
    settings = make_settings()
    await asyncio.to_thread(
        launch,
        settings,
        ["security", "coordinator"],
        reviewers="security,compliance",  # pinned: expected even though compliance is not running
        deadline_seconds="3",
        fallbacks="compliance=block",
    )
    from bus.client import MeshClient

    async with await MeshClient.connect(settings) as client:
        proposal = sample("release_clean", release_id="rel-absent-1")
        started = asyncio.get_running_loop().time()
        await client.propose(proposal)
        outcome = await client.wait_for_outcome(proposal, timeout=20)
        waited = asyncio.get_running_loop().time() - started

    assert outcome is not None
    assert outcome.outcome == Outcome.BLOCKED
    assert outcome.missing == ["compliance"]
    assert outcome.fallbacks_applied == {"compliance": "block"}
    assert [r.reviewer for r in outcome.reviews] == ["security"]
    # not before the deadline; the upper bound has room for a loaded machine
    assert 2.0 <= waited <= 12.0, f"deadline of 3 s fired after {waited:.1f} s"
    assert "compliance did not answer" in outcome.reason


async def test_late_review_is_recorded_but_never_changes_the_outcome(make_settings, launch):
    """A review arriving after the deadline decided the round is kept on the round, and the
    published outcome stays the only one."""
    settings = make_settings()
    mesh = await asyncio.to_thread(
        launch,
        settings,
        ["security", "coordinator"],
        reviewers="security,compliance",
        deadline_seconds="2",
        fallbacks="compliance=escalate",
    )
    from bus.client import MeshClient
    from coordinator.store import RoundStore

    async with await MeshClient.connect(settings) as client:
        proposal = sample("release_clean", release_id="rel-late-1")
        await client.propose(proposal)
        outcome = await client.wait_for_outcome(proposal, timeout=15)
        assert outcome is not None and outcome.outcome == Outcome.ESCALATED

        late = await asyncio.to_thread(launch, settings, ["compliance"])
        store = RoundStore(await client.js.key_value(settings.subjects.rounds_bucket))

        async def late_recorded():
            round_ = await store.get(proposal.release_id, proposal.content_digest)
            return round_ if round_ and round_.late_reviews else None

        round_ = await eventually(late_recorded, timeout=15)
        assert round_ is not None, "the late compliance review was not recorded"
        assert [r.reviewer for r in round_.late_reviews] == ["compliance"]
        assert round_.outcome.outcome == Outcome.ESCALATED
        outcomes = await stream_messages(
            settings.nats_url, settings.subjects.outcomes_stream, settings.subjects.outcomes_of(proposal.release_id)
        )
        assert len(outcomes) == 1
        assert RoundDecided.model_validate_json(outcomes[0]).outcome == Outcome.ESCALATED
    assert mesh and late
