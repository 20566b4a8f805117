"""services/gateway/front.py against a real nats-server: what a revision's status says."""

from __future__ import annotations

import nats

from bus.ops.launcher import provision_mesh
from contracts.outcomes import Outcome, RoundDecided
from services.gateway.front import Front, Revision
from services.gateway.settings import GatewaySettings


async def test_an_outcome_heard_on_the_wire_is_the_status_before_the_stream_has_stored_it(settings):
    """`?wait` hears the outcome on a core subscription, which the server may serve before the
    outcomes stream has stored it: given to `status`, it is the answer (decided), not `open`."""
    await provision_mesh(settings, names=["gateway", "coordinator"])
    own = GatewaySettings(**{**settings.model_dump(), "home": settings.home})
    heard = RoundDecided(
        release_id="rel-heard", content_digest="d1", outcome=Outcome.APPROVED, reason="because", policy="all"
    )
    nc = await nats.connect(settings.nats_url)
    try:
        front = Front(nc, own)
        revision = Revision("rel-heard", "d1")
        assert await front.outcome(revision) is None  # nothing stored: the moment the race leaves us in
        status = await front.status(revision, outcome=heard)
    finally:
        await nc.close()

    assert status["state"] == "decided" and status["outcome"]["outcome"] == "approved"
