"""A small client for systems and tools that talk to the mesh: publish events, await outcomes.

async with MeshClient.connect(settings) as mesh:
    await mesh.propose(proposal)
    outcome = await mesh.wait_for_outcome(proposal, timeout=30)  # the outcome of *this* content
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import PubAck
from nats.js.errors import NoStreamResponseError, NotFoundError, ServiceUnavailableError

from bus.connect import connect
from bus.settings import BusSettings
from bus.telemetry import Telemetry
from contracts.ids import proposal_msg_id
from contracts.outcomes import RoundDecided
from contracts.releases import ReleaseProposed

# What a restarting server or a stream electing a new leader answers for a few seconds.
TRANSIENT_ERRORS = (
    NatsTimeoutError,
    asyncio.TimeoutError,
    NoRespondersError,
    NoStreamResponseError,
    ServiceUnavailableError,
)


class MeshClient:
    def __init__(
        self, nc: Client, settings: BusSettings, *, telemetry: Telemetry | None = None, name: str = "mesh-client"
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=settings.publish_timeout_seconds)
        self.settings = settings
        self.subjects = settings.subjects
        self.name = name
        # With tracing (bus/tracing.py), a proposal's `send` span starts the flow's trace.
        self.telemetry = telemetry or Telemetry()

    @classmethod
    async def connect(
        cls, settings: BusSettings, *, name: str = "mesh-client", telemetry: Telemetry | None = None
    ) -> MeshClient:
        return cls(await connect(settings, name=name), settings, telemetry=telemetry, name=name)

    async def __aenter__(self) -> MeshClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        with suppress(Exception):
            await self.nc.drain()

    async def propose(self, proposal: ReleaseProposed, *, retry_for: float = 15.0) -> PubAck:
        """Publish a release proposal; the same content twice in the dedupe window is stored once
        (changed content under the same release id is a new revision, and is published).

        While NATS restarts or a stream elects a new leader, the publish is retried for up to
        `retry_for` seconds — safe, because every attempt carries the same message id.
        """
        loop = asyncio.get_running_loop()
        give_up = loop.time() + retry_for
        pause = 0.1
        subject = self.subjects.release_proposed
        headers = {
            "Nats-Msg-Id": proposal_msg_id(proposal.release_id, proposal.content_digest),
            "content-type": "application/json",
        }
        with self.telemetry.publishing(self.name, subject, headers, proposal) as headers:
            while True:
                try:
                    return await self.js.publish(subject, proposal.model_dump_json().encode(), headers=headers)
                except TRANSIENT_ERRORS:
                    if loop.time() + pause > give_up:
                        raise
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 1.0)

    async def outcome_of(self, proposal: ReleaseProposed) -> RoundDecided | None:
        """The outcome already published for this proposal's content (its revision), if any."""
        return await self.outcome_of_revision(proposal.release_id, proposal.content_digest)

    async def outcome_of_revision(self, release_id: str, digest: str) -> RoundDecided | None:
        """The outcome already published for one revision (release id and content digest), if any."""
        subject = self.subjects.round_decided(release_id, digest)
        try:
            msg = await self.js.get_last_msg(self.subjects.outcomes_stream, subject)
        except NotFoundError:
            return None
        return RoundDecided.model_validate_json(msg.data)

    async def wait_for_outcome(self, proposal: ReleaseProposed, *, timeout: float) -> RoundDecided | None:
        """Wait for the outcome of this proposal's content; returns at once when it was decided
        already. Another revision of the same release (other content) never answers it."""
        return await self.wait_for_revision(proposal.release_id, proposal.content_digest, timeout=timeout)

    async def wait_for_revision(self, release_id: str, digest: str, *, timeout: float) -> RoundDecided | None:
        """Wait up to `timeout` seconds for the outcome of one revision; None if none came."""
        sub = await self.nc.subscribe(self.subjects.round_decided(release_id, digest))
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        try:
            # Subscribe first, then look: an outcome published in between is seen either way.
            # Look again every few seconds: a message sent while we reconnected is not resent.
            while True:
                with suppress(*TRANSIENT_ERRORS):
                    if (known := await self.outcome_of_revision(release_id, digest)) is not None:
                        return known
                remaining = give_up - loop.time()
                if remaining <= 0:
                    return None
                with suppress(*TRANSIENT_ERRORS):
                    msg = await sub.next_msg(timeout=min(remaining, 3.0))
                    return RoundDecided.model_validate_json(msg.data)
        finally:
            with suppress(Exception):
                await sub.unsubscribe()
