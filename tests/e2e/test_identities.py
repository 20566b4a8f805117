"""Identities on the broker, end to end: the mesh as `mesh up` starts it (embedded nats-server
with every service's generated identity), attacked from loopback with real credentials.

Each forgery that worked before identities existed — a review published as another reviewer,
a forged outcome, a forged max-deliveries advisory — is refused by the server and changes
nothing; so are pulling another service's consumer, writing a bucket one does not own and
deleting a stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import nats
import pytest

from bus.client import MeshClient
from bus.ops.identities import OPERATOR
from bus.ops.launcher import RunningMesh, start_mesh
from bus.ops.settings import MeshSettings
from contracts.ids import review_msg_id
from contracts.outcomes import Outcome, RoundDecided
from contracts.reviews import ReviewSubmitted, Verdict
from contracts.subjects import Subjects
from services.index import SERVICES
from tests.e2e.support import sample

S = Subjects("mesh")


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> RunningMesh:
    """The whole mesh on its own embedded server, secured the way `mesh up` secures it."""
    home = tmp_path_factory.mktemp("secured")
    settings = MeshSettings(home=home, deadline_seconds=4.0)
    mesh = start_mesh(settings, names=list(SERVICES), home=home, embedded=True)
    mesh.write_run_file()
    yield mesh
    mesh.stop()


class Intruder:
    """A connection with one identity's credential that records what the server refused."""

    def __init__(self, nc: nats.NATS, refused: list[str]) -> None:
        self.nc, self.refused = nc, refused

    @classmethod
    async def connect(cls, mesh: RunningMesh, identity: str, *, seed: Path | None = None) -> Intruder:
        refused: list[str] = []

        async def record(error: Exception) -> None:
            refused.append(str(error).lower())

        seed = seed or mesh.identities.credential(identity)
        nc = await nats.connect(mesh.nats_url, nkeys_seed=str(seed), inbox_prefix=f"_INBOX.{identity}", error_cb=record)
        return cls(nc, refused)

    async def publish(self, subject: str, data: bytes = b"{}", headers: dict | None = None) -> bool:
        """Publish once; True when the server refused it as a permissions violation."""
        await self.nc.publish(subject, data, headers=headers)
        await self.nc.flush()  # the server answers PING after it handled (or refused) the PUB
        await asyncio.sleep(0.05)  # the error callback runs as its own task
        return any("permissions violation" in r and f'"{subject.lower()}"' in r for r in self.refused)

    async def subscribe(self, subject: str) -> bool:
        """Subscribe; True when the server refused the subscription as a permissions violation."""
        await self.nc.subscribe(subject)
        await self.nc.flush()
        await asyncio.sleep(0.05)
        return any("permissions violation for subscription" in r and f'"{subject.lower()}"' in r for r in self.refused)

    async def close(self) -> None:
        await self.nc.close()


async def stored(mesh: RunningMesh, stream: str, subject: str) -> int:
    """How many messages `stream` holds on `subject` (read with the operator's identity)."""
    client = await MeshClient.connect(mesh.settings, name="test-count")
    try:
        info = await client.js.stream_info(stream, subjects_filter=subject)
        return sum((info.state.subjects or {}).values())
    finally:
        await client.close()


def forged_review(proposal, reviewer: str) -> tuple[ReviewSubmitted, dict]:
    review = ReviewSubmitted.answering(
        proposal,
        reviewer=reviewer,
        verdict=Verdict.APPROVE,
        confidence=1.0,
        rationale="forged",
        model="forged",
        findings=[],
    )
    return review, {"Nats-Msg-Id": review_msg_id(review)}


async def test_a_connection_without_credentials_is_refused(secured):
    """The embedded server of `mesh up` admits nobody without a credential."""
    with pytest.raises(Exception, match="(?i)authorization"):
        await nats.connect(secured.nats_url, allow_reconnect=False, max_reconnect_attempts=0)


async def test_forged_review_outcome_and_advisory_are_refused_and_change_nothing(secured):
    """A release that commits an AWS key, attacked while its round is open: `security` publishing
    an approval as `compliance`, every identity publishing a forged `approved` outcome and a forged
    max-deliveries advisory. The server refuses each one; nothing forged is stored; the release is
    blocked by the real reviews."""
    proposal = sample("release_secret")
    identities = [name for name in SERVICES if name != "coordinator"] + [OPERATOR]
    intruders = {name: await Intruder.connect(secured, name) for name in identities}
    outcome_subject = S.round_decided(proposal.release_id, proposal.content_digest)
    advisory = S.max_deliveries_advisory(S.events_stream, "security")
    forged_outcome = RoundDecided.model_construct(outcome=Outcome.APPROVED).model_dump_json().encode()
    try:
        async with await MeshClient.connect(secured.settings, name="test-operator") as client:
            await client.propose(proposal)
            review, headers = forged_review(proposal, "compliance")
            assert await intruders["security"].publish(
                S.review_submitted("compliance"), review.model_dump_json().encode(), headers
            ), "a reviewer published a review as another reviewer"
            for name, intruder in intruders.items():
                assert await intruder.publish(outcome_subject, forged_outcome), f"{name} published an outcome"
                body = json.dumps({"stream": S.events_stream, "consumer": "security", "stream_seq": 1}).encode()
                assert await intruder.publish(advisory, body), f"{name} forged a server advisory"
            decided = await client.wait_for_outcome(proposal, timeout=20)
    finally:
        for intruder in intruders.values():
            await intruder.close()

    assert decided is not None and decided.outcome == Outcome.BLOCKED
    assert await stored(secured, S.outcomes_stream, outcome_subject) == 1  # the coordinator's, only
    assert await stored(secured, S.advisories_stream, advisory) == 0
    compliance = [r for r in decided.reviews if r.reviewer == "compliance"]
    assert all(r.model != "forged" for r in compliance), "the forged review was counted"


async def test_a_service_cannot_pull_another_services_consumer_or_write_what_it_does_not_own(secured):
    """`security` may not pull `compliance`'s consumer, write the rounds bucket, overwrite another
    agent's card, or publish on the coordinator's deadline schedules."""
    intruder = await Intruder.connect(secured, "security")
    try:
        assert await intruder.publish(f"$JS.API.CONSUMER.MSG.NEXT.{S.events_stream}.compliance", b'{"batch":1}')
        assert await intruder.publish(f"$KV.{S.rounds_bucket}.rel-x", b"{}")
        assert await intruder.publish(f"$KV.{S.agents_bucket}.compliance", b"{}")
        assert await intruder.publish(S.deadline_schedule("rel-x", "d"), b"{}")
        # and what it does own is allowed: its own card key
        assert not await intruder.publish(f"$KV.{S.agents_bucket}.security", _own_card(secured))
    finally:
        await intruder.close()


def _own_card(mesh: RunningMesh) -> bytes:
    """The security card as it is: rewriting it with itself changes nothing."""
    return json.dumps(SERVICES["security"].load().build(mesh.settings).card.to_wire()).encode()


@pytest.mark.parametrize("identity", ["digest", "watch"])
async def test_readers_by_message_get_cannot_listen_to_dead_letters_live(secured, identity):
    """The digest and the watch read streams by message gets only: their identities may not
    subscribe to dead letters (which carry payloads) or outcomes, while the gateway, which
    follows outcomes live, may."""
    intruder = await Intruder.connect(secured, identity)
    try:
        assert await intruder.subscribe(S.dead_letters)
        assert await intruder.subscribe(S.rounds_decided)
    finally:
        await intruder.close()
    gateway = await Intruder.connect(secured, "gateway")
    try:
        assert not await gateway.subscribe(S.rounds_decided)
    finally:
        await gateway.close()


@pytest.mark.parametrize("identity", ["security", "coordinator", OPERATOR])
async def test_no_identity_can_delete_a_stream(secured, identity):
    """Deleting a stream is refused for the services and for the operator alike."""
    intruder = await Intruder.connect(secured, identity)
    try:
        assert await intruder.publish(f"$JS.API.STREAM.DELETE.{S.events_stream}", b"")
    finally:
        await intruder.close()
    async with await MeshClient.connect(secured.settings, name="test-operator") as client:
        assert (await client.js.stream_info(S.events_stream)).config.name == S.events_stream  # still there


async def test_a_publisher_proposes_and_reads_its_outcome_and_may_do_nothing_else(secured):
    """`mesh identities add-publisher ci --events release.proposed` gives an external system an
    identity the running server accepts at once (reload, no restart); with it a client publishes a
    proposal and reads its outcome, and is refused a review, an outcome and another event type."""
    home = secured.home
    env = {**os.environ, "MESH_HOME": str(home)}
    added = subprocess.run(
        [sys.executable, "-m", "bus.ops.cli", "identities", "add-publisher", "ci", "--events", "release.proposed"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    assert "reloaded" in added.stdout
    seed = home / "identities" / "ci.nk"
    assert oct(seed.stat().st_mode & 0o777) == "0o600"

    ci = secured.settings.model_copy(update={"nats_credentials": seed})
    proposal = sample("release_clean")
    client = await _connect_when_reloaded(ci)
    try:
        await client.propose(proposal)
        decided = await client.wait_for_outcome(proposal, timeout=20)
    finally:
        await client.close()
    assert decided is not None and decided.outcome == Outcome.APPROVED

    publisher = await Intruder.connect(secured, "ci", seed=seed)
    try:
        review, headers = forged_review(proposal, "security")
        assert await publisher.publish(S.review_submitted("security"), review.model_dump_json().encode(), headers)
        assert await publisher.publish(S.round_decided("rel-x", "d"), b"{}")
        assert await publisher.publish(f"{S.namespace}.events.release.withdrawn", b"{}")
    finally:
        await publisher.close()


async def _connect_when_reloaded(settings: MeshSettings, timeout: float = 10.0) -> MeshClient:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        try:
            return await MeshClient.connect(settings, name="ci")
        except Exception:
            if loop.time() > give_up:
                raise
            await asyncio.sleep(0.05)
