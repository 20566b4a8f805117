"""A coordinator stalled between deciding a round and publishing its outcome (its process frozen)
long enough for its message to be redelivered and the outcome published elsewhere publishes
nothing more when it resumes: consumers of the outcome subject hear one outcome, not two.

The stall is made in-process, by holding the handler right after its deciding write (no signal
stops a process reliably at that instant); the outcome the redelivered copy published is
published here, as that replica would, during the stall. The coordinator runs on a real
nats-server and the outcome is counted by a core-NATS subscriber, where the stream's dedupe
cannot hide a second publish.
"""

from __future__ import annotations

import asyncio

from bus.client import MeshClient
from bus.ops.launcher import provision_mesh
from contracts.ids import outcome_msg_id
from coordinator.service import build_coordinator
from coordinator.store import RoundStore
from tests.coordinator.test_fail_closed import proposal, review_of, send
from tests.e2e.support import eventually

ACK_WAIT = 2.0


async def test_a_publisher_stalled_past_half_its_ack_wait_looks_before_publishing(make_settings, monkeypatch):
    """The deciding review's handler stalls for `ack_wait` after its compare-and-set write, and
    meanwhile another replica publishes the outcome (as the redelivered message would): resumed,
    the handler finds it stored, logs "not again" and marks the round published — the outcome
    subject carries exactly the one publish."""
    settings = make_settings(
        reviewers="security,compliance", reviewer_discovery=False, deadline_seconds=600, ack_wait_seconds=ACK_WAIT
    )
    s = settings.subjects
    await provision_mesh(settings, names=["coordinator"])
    decide = RoundStore.mutate
    stalled: list[str] = []

    async with await MeshClient.connect(settings) as client:
        heard: list[bytes] = []

        async def hear(msg) -> None:
            heard.append(msg.data)

        listening = await client.nc.subscribe(s.rounds_decided, cb=hear)

        async def stalling(self, release_id, digest, transition, **kwargs):
            mutation = await decide(self, release_id, digest, transition, **kwargs)
            if mutation.decided:  # the write that decided the round: freeze here
                outcome = mutation.round.outcome
                await client.js.publish(  # the other replica, handling the redelivered message
                    s.round_decided(release_id, digest),
                    outcome.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": outcome_msg_id(release_id, digest)},
                )
                await asyncio.sleep(ACK_WAIT)
                stalled.append(release_id)
            return mutation

        monkeypatch.setattr(RoundStore, "mutate", stalling)
        async with build_coordinator(settings).running():
            release = proposal("rel-stalled")
            await client.propose(release)
            store = RoundStore(await client.js.key_value(s.rounds_bucket))
            assert await eventually(lambda: store.get(release.release_id, release.content_digest), timeout=15)
            await send(client, review_of(release, "security", "approve"))
            await send(client, review_of(release, "compliance", "reject"))

            async def marked_published() -> bool:
                round_ = await store.get(release.release_id, release.content_digest)
                return round_ is not None and round_.outcome_published

            assert await eventually(marked_published, timeout=20), "the stalled handler never finished"
        await client.nc.flush()
        await listening.unsubscribe()
    assert stalled == ["rel-stalled"]
    assert len(heard) == 1, f"the outcome was published {len(heard)} times on its subject"
