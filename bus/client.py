"""A small client for systems and tools that talk to the mesh: publish events, await outcomes.

    async with MeshClient.connect(settings) as mesh:
        await mesh.propose(proposal)
        outcome = await mesh.wait_for_outcome("rel-42", timeout=30)
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import PubAck
from nats.js.errors import NotFoundError

from bus.connect import connect
from bus.settings import MeshSettings
from contracts.outcomes import RoundDecided
from contracts.releases import ReleaseProposed
from contracts.subjects import subject_token


class MeshClient:
    def __init__(self, nc: Client, settings: MeshSettings) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=settings.publish_timeout_seconds)
        self.settings = settings
        self.subjects = settings.subjects

    @classmethod
    async def connect(cls, settings: MeshSettings, *, name: str = "mesh-client") -> MeshClient:
        return cls(await connect(settings, name=name), settings)

    async def __aenter__(self) -> MeshClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        with suppress(Exception):
            await self.nc.drain()

    async def propose(self, proposal: ReleaseProposed) -> PubAck:
        """Publish a release proposal; the same release id twice in the dedupe window is stored once."""
        return await self.js.publish(
            self.subjects.release_proposed,
            proposal.model_dump_json().encode(),
            headers={"Nats-Msg-Id": f"proposal:{subject_token(proposal.release_id)}", "content-type": "application/json"},
        )

    async def outcome_of(self, release_id: str) -> RoundDecided | None:
        """The outcome already published for a release, if any."""
        try:
            msg = await self.js.get_last_msg(self.subjects.outcomes_stream, self.subjects.round_decided(release_id))
        except NotFoundError:
            return None
        return RoundDecided.model_validate_json(msg.data)

    async def wait_for_outcome(self, release_id: str, *, timeout: float) -> RoundDecided | None:
        """Wait for a release's outcome; returns at once when it was decided already."""
        sub = await self.nc.subscribe(self.subjects.round_decided(release_id))
        try:
            # Subscribe first, then look: an outcome published in between is seen either way.
            if (known := await self.outcome_of(release_id)) is not None:
                return known
            msg = await sub.next_msg(timeout=timeout)
            return RoundDecided.model_validate_json(msg.data)
        except (NatsTimeoutError, asyncio.TimeoutError):
            return None
        finally:
            with suppress(Exception):
                await sub.unsubscribe()
