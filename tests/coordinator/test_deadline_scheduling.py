"""coordinator/service.py against a real nats-server: a round's deadline is scheduled before
the round is opened, so no open round is ever without one."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from bus.client import MeshClient
from bus.ops.dead_letters import list_dead_letters, replay
from bus.ops.launcher import provision_mesh
from contracts.deadlines import rfc3339_ceil
from contracts.releases import ReleaseProposed
from coordinator.rounds import RoundState
from coordinator.service import build_coordinator
from coordinator.store import RoundStore
from tests.settled import consumer_settled


def proposal(release_id: str) -> ReleaseProposed:
    return ReleaseProposed(release_id=release_id, service="payments-api", version="1.0.0")


async def eventually(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)


async def open_round(store: RoundStore, release_id: str):
    """The round, once it is open; None before."""
    round_ = await store.get(release_id, proposal(release_id).content_digest)
    return round_ if round_ and round_.state == RoundState.OPEN else None


async def scheduled_at(client: MeshClient, release_id: str) -> str:
    s = client.settings.subjects
    msg = await client.js.get_last_msg(
        s.deadlines_stream, s.deadline_schedule(release_id, proposal(release_id).content_digest)
    )
    return msg.headers["Nats-Schedule"].removeprefix("@at ")


@pytest.fixture
def coordinator_settings(make_settings):
    # No reviewers run: rounds stay open. A long deadline: it never fires during a test.
    return make_settings(reviewers="security,compliance", reviewer_discovery=False, deadline_seconds=600, max_deliver=2)


async def test_an_open_round_has_its_deadline_scheduled_at_the_rounds_deadline(coordinator_settings):
    """Proposed: the round is open, and the deadlines stream holds its schedule for exactly
    the round's deadline (rounded up to the millisecond)."""
    settings = coordinator_settings
    await provision_mesh(settings, names=["coordinator"])
    client = await MeshClient.connect(settings)
    try:
        async with build_coordinator(settings).running():
            await client.propose(proposal("rel-d1"))
            store = RoundStore(await client.js.key_value(settings.subjects.rounds_bucket))
            round_ = await eventually(lambda: open_round(store, "rel-d1"))
        assert round_ is not None
        assert await scheduled_at(client, "rel-d1") == rfc3339_ceil(round_.deadline)
    finally:
        await client.nc.close()


async def test_a_proposal_that_cannot_schedule_its_deadline_opens_no_round_until_replayed(coordinator_settings):
    """With the deadlines stream gone, the proposal fails, is retried, is dead-lettered, and
    opens no round (nothing waits forever without a deadline). Replayed once the stream is
    back, it opens the round with its deadline scheduled."""
    settings = coordinator_settings
    s = settings.subjects
    await provision_mesh(settings, names=["coordinator"])
    client = await MeshClient.connect(settings)
    try:
        async with build_coordinator(settings).running():
            await client.js.delete_stream(s.deadlines_stream)
            await client.propose(proposal("rel-d2"))
            letters = await eventually(
                lambda: list_dead_letters(client.js, settings, service="coordinator"), timeout=20
            )
            assert [letter.record.error_type for letter in letters] == ["failed"]
            store = RoundStore(await client.js.key_value(s.rounds_bucket))
            assert await store.get("rel-d2", proposal("rel-d2").content_digest) is None

            await provision_mesh(settings, names=["coordinator"])  # the stream is back
            await replay(client.js, settings, letters[0].seq)
            round_ = await eventually(lambda: open_round(store, "rel-d2"))
            assert round_ is not None
            assert await scheduled_at(client, "rel-d2") == rfc3339_ceil(round_.deadline)
    finally:
        await client.nc.close()


async def test_a_proposal_delivered_again_never_moves_the_deadline_earlier(coordinator_settings):
    """The same proposal handled a second time, a minute later by the coordinator's clock
    (past the events stream's dedupe: a new message id): the round keeps its deadline, and the
    schedule left on the server is never before it."""
    settings = coordinator_settings
    await provision_mesh(settings, names=["coordinator"])
    client = await MeshClient.connect(settings)
    offset = {"seconds": 0.0}

    def clock() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=offset["seconds"])

    try:
        async with build_coordinator(settings, clock=clock).running():
            store = RoundStore(await client.js.key_value(settings.subjects.rounds_bucket))
            await client.propose(proposal("rel-d3"))
            first = await eventually(lambda: store.get("rel-d3", proposal("rel-d3").content_digest))
            assert first is not None and first.state == RoundState.OPEN

            offset["seconds"] = 60.0
            again = proposal("rel-d3").model_dump_json().encode()
            await client.js.publish(settings.subjects.release_proposed, again, headers={"Nats-Msg-Id": "again"})
            # handled (acked): only now does "the deadline did not move" say anything
            await consumer_settled(settings.nats_url, settings.subjects.events_stream, "coordinator-proposals")

            round_ = await store.get("rel-d3", proposal("rel-d3").content_digest)
            assert round_.deadline == first.deadline
            assert await scheduled_at(client, "rel-d3") >= rfc3339_ceil(round_.deadline)
    finally:
        await client.nc.close()
