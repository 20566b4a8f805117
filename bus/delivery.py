"""What a handler sees: its event, and a `Delivery` to publish results and read delivery facts."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import PubAck
from pydantic import BaseModel

from bus.provision import ConsumerSpec
from bus.telemetry import Telemetry

Handler = Callable[[Any, "Delivery"], Awaitable[Any]]
Publish = Callable[..., Awaitable[PubAck]]  # (model, subject, *, msg_id, headers) -> PubAck


@dataclass
class Delivery:
    """What a handler gets besides its event: how to publish results, delivery facts, and the
    telemetry seam to describe what it did on the message's span (bus/telemetry.py)."""

    publisher: Publish
    message: Msg
    log: Any
    telemetry: Telemetry = field(default_factory=Telemetry)
    started: float = field(default_factory=time.monotonic)  # made as its handler starts

    @property
    def handling_seconds(self) -> float:
        """How long this handler has run so far, by a clock that keeps running while the process
        is frozen: a handler that ran for much of `ack_wait` may have been overtaken by its own
        message, redelivered and handled elsewhere."""
        return time.monotonic() - self.started

    @property
    def deliveries(self) -> int:
        return self.message.metadata.num_delivered

    @property
    def trace_id(self) -> str | None:
        """The trace this message belongs to (None without tracing): what results record as `trace_id`."""
        return self.telemetry.trace_id()

    async def publish(self, model: BaseModel, subject: str, *, msg_id: str, headers: dict | None = None) -> PubAck:
        """Publish and wait for the PubAck. `msg_id` makes a redelivered handler's publish a no-op."""
        return await self.publisher(model, subject, msg_id=msg_id, headers=headers)


@dataclass
class Subscription:
    """One handler on one durable consumer."""

    spec: ConsumerSpec
    subject: str
    model: type[BaseModel]
    handler: Handler
