"""An outcome publish the outcomes stream does not acknowledge (a real coordinator process on a
real nats-server): core NATS hands the message to subscribers all the same, the coordinator logs
the attempt as unacknowledged, looks for the outcome in the stream on the retry and sends it
again — so a subscriber hears it twice while the stream stores it once, and `mesh chaos`'s tally
tells that retry from publishing twice only by the coordinator's log line.

The stream's refusal is made by lowering its `max_msg_size` below any outcome's size for as long
as it takes one attempt to fail — the same path as a PubAck that never comes while a stream
elects its leader after a node dies (what CI hit in `mesh chaos --kill node`)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path

from bus.ops.chaos.tally import PUBLISHED, UNACKNOWLEDGED, Tally, logged
from contracts.reviews import Verdict
from coordinator.rounds import RoundState
from coordinator.store import RoundStore
from tests.e2e.support import OutcomeTap, eventually, sample, stream_messages
from tests.e2e.test_outcome_takeover import marked_published, publish_review, review


def log_counts(path: Path, release_id: str) -> tuple[int, int]:
    """(outcome publishes the coordinator logged as acknowledged, as unacknowledged) for a release."""
    lines = path.read_text(errors="replace").splitlines()
    return logged(lines, PUBLISHED)[release_id], logged(lines, UNACKNOWLEDGED)[release_id]


async def test_an_unacknowledged_outcome_is_sent_again_and_logged_so(make_settings, launch, client):
    """While the outcomes stream refuses the outcome, the deciding review's handler logs
    `outcome publish unacknowledged` and is retried; once the stream takes messages again, the
    retry stores the outcome once and marks it published. The subscriber heard one copy per
    attempt — each copy beyond the stored one matched by an unacknowledged line — and the chaos
    tally counts no duplicate with those lines, one per unexcused copy without them."""
    settings = make_settings()
    mesh = await asyncio.to_thread(
        launch, settings, ["coordinator"], reviewers="security,compliance", reviewer_discovery="false"
    )
    (coordinator_log,) = [s.log_path for s in mesh.services if s.name == "coordinator"]
    s = settings.subjects
    store = RoundStore(await client.js.key_value(s.rounds_bucket))
    proposal = sample("release_clean", release_id=f"rel-unacked-{uuid.uuid4().hex[:8]}")
    await client.propose(proposal)

    async def opened() -> bool:
        round_ = await store.get(proposal.release_id, proposal.content_digest)
        return bool(round_ and round_.state == RoundState.OPEN)

    assert await eventually(opened, timeout=15), "the coordinator never opened the round"

    async def unacknowledged_logged() -> bool:
        return log_counts(coordinator_log, proposal.release_id)[1] >= 1

    config = (await client.js.stream_info(s.outcomes_stream)).config
    async with OutcomeTap(settings.nats_url, s) as tap:
        await client.js.update_stream(dataclasses.replace(config, max_msg_size=1))  # refuses every outcome
        try:
            await publish_review(client, s, review(proposal, "security", Verdict.APPROVE))
            await publish_review(client, s, review(proposal, "compliance", Verdict.APPROVE))  # decides the round
            refused = await eventually(unacknowledged_logged, timeout=15)
            assert refused, "the coordinator never logged an unacknowledged outcome publish"
        finally:
            await client.js.update_stream(config)

        published = await eventually(lambda: marked_published(store, proposal), timeout=20)
        assert published, "the retry never published the outcome"
        await tap.nc.flush()  # every copy sent before the mark has reached the tap's connection...
        await asyncio.sleep(0.1)  # ...and its callback
        heard = tap.of(proposal.release_id)

    stored = await stream_messages(settings.nats_url, s.outcomes_stream, s.outcomes_of(proposal.release_id))
    acknowledged, unacknowledged = log_counts(coordinator_log, proposal.release_id)
    assert len(stored) == 1 and acknowledged == 1
    assert unacknowledged >= 1 and len(heard) == 1 + unacknowledged, (len(heard), unacknowledged)
    assert all(h == heard[-1] for h in heard), "the copies heard differ: not one outcome sent again"

    ours = {proposal.release_id: 0.0}
    counted = dict(heard={proposal.release_id: len(heard)}, published={proposal.release_id: acknowledged})
    with_log = Tally.count(
        ours,
        [(proposal.release_id, 1.0)],
        dead_lettered=0,
        **counted,
        unacknowledged={proposal.release_id: unacknowledged},
    )
    without_log = Tally.count(ours, [(proposal.release_id, 1.0)], dead_lettered=0, **counted)
    assert (with_log.duplicated, with_log.unacked) == (0, unacknowledged)
    assert without_log.duplicated == unacknowledged
