"""Fail closed, with the real services as processes: a frozen reviewer, a frozen coordinator and
a re-proposed release never turn a release that commits an AWS key into an approval."""

from __future__ import annotations

import asyncio
import json
import signal

from nats.js.errors import NoKeysError

from contracts.outcomes import Outcome
from tests.bus.ops.test_cli import mesh
from tests.e2e.support import eventually, sample

# Short liveness, so a frozen process drops out of the registry within the test.
FAST_LIVENESS = {"heartbeat_seconds": "0.5", "heartbeat_ttl_seconds": "2"}


async def gone_from_registry(client, name: str) -> bool:
    """No live instance of `name` left in the instances bucket: its heartbeat's TTL ran out."""
    kv = await client.js.key_value(client.settings.subjects.instances_bucket)
    try:
        keys = await kv.keys()
    except NoKeysError:
        return True
    return not [key for key in keys if key.startswith(f"{name}.")]


def risky(release_id: str):
    """The sample with a planted AWS key and a Stripe key: security rejects it."""
    return sample("release_secret", release_id=release_id)


async def test_a_reviewer_frozen_past_its_heartbeat_ttl_is_still_expected_and_blocks(make_settings, launch, client):
    """SIGSTOP security (its heartbeat expires, the registry stops listing it), then propose a
    release with a key: the round still expects security (required by policy), and at the
    deadline its `block` fallback blocks the release. On main it was approved by compliance alone."""
    settings = make_settings()
    running = await asyncio.to_thread(
        launch, settings, ["security", "compliance", "coordinator"], deadline_seconds="4", **FAST_LIVENESS
    )
    security = next(s for s in running.services if s.name == "security")
    security.process.send_signal(signal.SIGSTOP)
    try:
        # the positive signal: security's heartbeat expired on the server, so it is no longer live
        assert await eventually(lambda: gone_from_registry(client, "security"), timeout=20)
        await asyncio.sleep(1.0)  # and the coordinator's reviewers, cached for 1 s, are fresher than that
        proposal = risky("rel-frozen-security")
        await client.propose(proposal)
        outcome = await client.wait_for_outcome(proposal, timeout=20)
    finally:
        security.process.send_signal(signal.SIGCONT)
    assert outcome is not None and outcome.outcome == Outcome.BLOCKED
    assert "security" in outcome.expected and outcome.missing == ["security"]
    assert outcome.fallbacks_applied == {"security": "block"}


async def test_a_coordinator_frozen_past_the_ttl_opens_its_rounds_with_the_required_reviewers(
    make_settings, launch, client
):
    """SIGSTOP the coordinator for longer than the heartbeat TTL while releases are proposed,
    then SIGCONT it: every round still expects security and compliance (never an empty or
    partial set from a stale view), and each outcome matches its content."""
    # what reached the frozen process may be lost with its connection: it comes back after ack_wait
    settings = make_settings(ack_wait_seconds=8)
    running = await asyncio.to_thread(
        launch, settings, ["security", "compliance", "coordinator"], deadline_seconds="10", **FAST_LIVENESS
    )
    coordinator = next(s for s in running.services if s.name == "coordinator")
    clean = [sample("release_clean", release_id=f"rel-paused-clean-{i}") for i in range(3)]
    keyed = [risky(f"rel-paused-key-{i}") for i in range(3)]
    coordinator.process.send_signal(signal.SIGSTOP)
    try:
        for proposal in clean + keyed:
            await client.propose(proposal)
        # frozen past the TTL: its own heartbeat expired, so its view of the registry is stale too
        assert await eventually(lambda: gone_from_registry(client, "coordinator"), timeout=20)
    finally:
        coordinator.process.send_signal(signal.SIGCONT)
    outcomes = await asyncio.gather(*(client.wait_for_outcome(p, timeout=60) for p in clean + keyed))
    assert all(o is not None for o in outcomes), coordinator.log_path.read_text()[-4000:]
    for outcome in outcomes:
        assert outcome.expected == ["compliance", "security"], outcome.reason
    assert [o.outcome for o in outcomes[:3]] == [Outcome.APPROVED] * 3
    assert [o.outcome for o in outcomes[3:]] == [Outcome.BLOCKED] * 3


async def test_publish_wait_answers_for_the_content_it_published(settings, launch, tmp_path):
    """`mesh publish --wait`: a release approved, then the same release id re-proposed with a
    key in it, is reviewed again and blocked (exit 1) — not answered with the old approval;
    each printed outcome names its own content digest."""
    await asyncio.to_thread(launch, settings, ["security", "compliance", "coordinator"])
    clean = sample("release_clean", release_id="rel-revise")
    changed = risky("rel-revise")
    clean_file, changed_file = tmp_path / "clean.json", tmp_path / "changed.json"
    clean_file.write_text(clean.model_dump_json())
    changed_file.write_text(changed.model_dump_json())

    first = await asyncio.to_thread(
        mesh, "publish", "release.proposed", str(clean_file), "--wait", "20", "--json", settings=settings
    )
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["content_digest"] == clean.content_digest

    second = await asyncio.to_thread(
        mesh, "publish", "release.proposed", str(changed_file), "--wait", "20", "--json", settings=settings
    )
    assert second.returncode == 1, second.stdout + second.stderr
    body = json.loads(second.stdout)
    assert body["outcome"] == "blocked" and body["content_digest"] == changed.content_digest
