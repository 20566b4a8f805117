"""Crash safety with replicas: real processes, a real nats-server, SIGKILL mid-work."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from tests.e2e.support import OutcomeTap, eventually, mesh_settled, sample, stream_messages
from tests.fakes.anthropic_server import FakeAnthropic

SONNET = "claude-sonnet-4-6"


def log_events(path: Path, event: str) -> list[dict]:
    """The JSON log lines of one service process whose event is `event`."""
    found = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event:
            found.append(record)
    return found


async def test_a_reviewer_killed_mid_review_is_replaced_and_two_coordinators_publish_once(
    make_settings, launch, client
):
    """Two security replicas review through a slow model (4 s, longer than the 2 s ack_wait);
    one is SIGKILLed mid-review. Its reviews are redelivered to the other replica, no release is
    reviewed twice (in-progress acks keep the slow calls from being redelivered), every round
    counts exactly one security review, and of the two coordinator replicas exactly one
    publishes each outcome — one outcome per release in the stream."""
    settings = make_settings(ack_wait_seconds=2)
    with FakeAnthropic(seed=3) as api:
        api.profile(SONNET, latency=4.0)
        mesh = await asyncio.to_thread(
            launch,
            settings,
            ["security", "compliance", "coordinator"],
            replicas={"security": 2, "coordinator": 2},
            anthropic_api_key="sk-test",
            anthropic_base_url=api.url,
            reviewer_discovery="false",
            reviewers="security,compliance",
            llm_chains=f"security={SONNET}>offline,compliance=offline",
            deadline_seconds="60",
            log_level="DEBUG",  # "→ received" is a debug line
        )
        security = [s for s in mesh.services if s.name == "security"]
        coordinators = [s for s in mesh.services if s.name == "coordinator"]
        releases = [sample("release_clean", release_id=f"rel-kill-{i}") for i in range(6)]
        tap = await OutcomeTap(settings.nats_url, settings.subjects).__aenter__()  # hears every publish
        for proposal in releases:
            await client.propose(proposal)

        async def reviewing():  # a security replica with a review under way
            for replica in security:
                if log_events(replica.log_path, "→ received"):
                    return replica
            return None

        victim = await eventually(reviewing, timeout=20, interval=0.05)
        assert victim is not None, "no security replica received a proposal"
        victim.kill()  # SIGKILL while its model calls are in flight
        killed = {r["correlation_id"] for r in log_events(victim.log_path, "→ received")}
        killed -= {r["correlation_id"] for r in log_events(victim.log_path, "reviewed")}
        assert killed, "the victim had finished its reviews before the kill"

        outcomes = await asyncio.gather(*(client.wait_for_outcome(r, timeout=45) for r in releases))
        # every consumer settled, redeliveries of what the victim held included: a wrong second
        # review or outcome would have been published (and heard by the tap) by now
        await mesh_settled(settings, ["security", "compliance", "coordinator"], tap, timeout=60)
        requests = len(api.requests)
        await tap.__aexit__(None, None, None)

    assert all(outcome is not None for outcome in outcomes)
    # of the two coordinators exactly one *published* each outcome: not one stored after dedupe
    assert {r.release_id: len(tap.of(r.release_id)) for r in releases} == {r.release_id: 1 for r in releases}
    for outcome in outcomes:
        assert [r.reviewer for r in outcome.reviews].count("security") == 1
        assert outcome.reviews[0].model == SONNET or outcome.reviews[1].model == SONNET
    [survivor] = [s for s in security if s is not victim]
    redelivered = {r["correlation_id"] for r in log_events(survivor.log_path, "→ received") if r["delivery"] >= 2}
    assert killed <= redelivered
    reviewed = Counter(r["correlation_id"] for s in security for r in log_events(s.log_path, "reviewed"))
    assert reviewed == Counter({proposal.release_id: 1 for proposal in releases})
    assert requests <= len(releases) + len(killed)  # at most the killed calls again; no other second call
    published = Counter(r["correlation_id"] for c in coordinators for r in log_events(c.log_path, "outcome published"))
    assert published == Counter({proposal.release_id: 1 for proposal in releases})
    s = settings.subjects
    stored = [json.loads(m)["release_id"] for m in await stream_messages(settings.nats_url, s.outcomes_stream)]
    assert Counter(stored) == Counter({proposal.release_id: 1 for proposal in releases})
