"""The publish path: every message a service sends is a JetStream publish that waits for its
PubAck, carries a `Nats-Msg-Id`, and passes the telemetry seam once (whose span covers the
PubAck wait, and whose headers carry the trace on)."""

from __future__ import annotations

from faststream.nats import NatsBroker
from nats.js.api import PubAck
from pydantic import BaseModel

from bus.settings import BusSettings
from bus.telemetry import Telemetry


class Publisher:
    def __init__(self, *, service: str, broker: NatsBroker, settings: BusSettings, telemetry: Telemetry) -> None:
        self._service = service
        self._broker = broker
        self._settings = settings
        self._telemetry = telemetry

    async def publish(self, model: BaseModel, subject: str, *, msg_id: str, headers: dict | None = None) -> PubAck:
        """Publish `model` as JSON; `msg_id` makes a retried or redelivered publish a no-op."""
        correlation = getattr(model, "correlation_id", None) or None
        all_headers = {**(headers or {}), "Nats-Msg-Id": msg_id, "content-type": "application/json"}
        return await self.publish_raw(model.model_dump_json().encode(), subject, all_headers, correlation, model=model)

    async def publish_raw(
        self,
        data: bytes,
        subject: str,
        headers: dict,
        correlation: str | None = None,
        *,
        model: BaseModel | None = None,
    ) -> PubAck:
        """Publish bytes as they are (dead letters, replays) and wait for the PubAck."""
        with self._telemetry.publishing(self._service, subject, headers, model) as sent:
            ack = await self._broker.publish(
                data,
                subject,
                headers=sent,
                correlation_id=correlation,
                stream=self._settings.subjects.stream_for(subject),  # a JetStream publish: wait for its PubAck
                timeout=self._settings.publish_timeout_seconds,
            )
            if getattr(ack, "duplicate", False):  # stored before: a redelivered handler's publish
                self._telemetry.annotate({"mesh.duplicate": True})
            return ack
