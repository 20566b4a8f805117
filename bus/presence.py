"""Liveness on the bus: an agent's card in one KV bucket, its live instances in another.

On start a process writes its card and an instance record; every heartbeat it rewrites the
instance record with a per-message TTL (`Nats-TTL`). A clean stop deletes the record at once;
a SIGKILLed process simply stops heartbeating and its record expires (the server then leaves
a purge marker that watchers see). The process also answers the NATS micro discovery
subjects (`$SRV.PING|INFO|STATS`, with its consumers as endpoints: bus/micro.py) so standard
NATS tooling sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from nats.aio.client import Client
from nats.micro import ServiceConfig

from bus.micro import Endpoint, PulledService, serve_discovery
from bus.settings import BusSettings
from contracts.cards import AgentCard, AgentInstance
from contracts.envelope import utc_now


def instance_key(agent: str, instance_id: str) -> str:
    return f"{agent}.{instance_id}"


class Presence:
    def __init__(
        self,
        *,
        nc: Client,
        settings: BusSettings,
        card: AgentCard,
        instance_id: str,
        url: str,
        load: Callable[[], tuple[int, int]],
        endpoints: Callable[[], list[Endpoint]] = list,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._settings = settings
        self._card = card
        self._load = load
        self._endpoints = endpoints
        self._instance = AgentInstance(
            agent=card.name, instance_id=instance_id, url=url, started_at=utc_now(), heartbeat_at=utc_now()
        )
        subjects = settings.subjects
        self._cards = subjects.agents_bucket
        self._instances = subjects.instances_bucket
        self._key = instance_key(card.name, instance_id)
        self._task: asyncio.Task | None = None
        self._micro: PulledService | None = None

    async def start(self) -> None:
        cards = await self._js.key_value(self._cards)
        await cards.put(self._card.name, json.dumps(self._card.to_wire()).encode())
        await self.beat()
        self._task = asyncio.create_task(self._heartbeat())
        self._micro = await serve_discovery(
            self._nc,
            ServiceConfig(
                name=self._card.name,
                version=self._card.version,
                description=self._card.description[:200],
                metadata={"instance": self._instance.instance_id, "url": self._instance.url},
            ),
            endpoints=self._endpoints,
        )

    async def beat(self) -> None:
        in_flight, handled = self._load()
        self._instance = self._instance.model_copy(
            update={"heartbeat_at": utc_now(), "in_flight": in_flight, "handled": handled}
        )
        # kv.put cannot carry a TTL; a publish on the key's subject can (NATS >= 2.11).
        await self._js.publish(
            f"$KV.{self._instances}.{self._key}",
            json.dumps(self._instance.to_wire()).encode(),
            msg_ttl=self._settings.heartbeat_ttl_seconds,
        )

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat_seconds)
            try:
                await self.beat()
            except Exception:  # noqa: BLE001 - NATS is away; the next beat tries again
                continue

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._micro:
            with contextlib.suppress(Exception):
                await self._micro.stop()
        with contextlib.suppress(Exception):
            instances = await self._js.key_value(self._instances)
            await instances.delete(self._key)
