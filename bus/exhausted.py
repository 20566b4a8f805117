"""Dead letters for messages whose consumer gave up without a word.

The runtime dead-letters a message itself when the handler raises on its last delivery. But
when the process *dies* (SIGKILL, OOM, a poison message that crashes it) or hangs on the last
attempt, nobody is left to write the record: JetStream just stops redelivering and publishes a
`MAX_DELIVERIES` advisory. The advisories stream keeps those advisories, and every service
reads the ones about its own consumers (one small durable consumer each, shared by its
replicas): it fetches the original message from its stream and writes the same dead-letter
record the runtime would have written — same message id, so a record written twice (the
process died between writing it and terminating the message) is stored once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nats.js.errors import NotFoundError
from pydantic import BaseModel, ConfigDict

from bus.dead_letter_writer import DeadLetterWriter
from bus.delivery import Delivery, Subscription
from bus.provision import ConsumerSpec
from bus.settings import BusSettings
from contracts.deadletters import DeadLetter


class MaxDeliveriesAdvisory(BaseModel):
    """`io.nats.jetstream.advisory.v1.max_deliver`, as the server sends it."""

    model_config = ConfigDict(extra="allow")

    stream: str
    consumer: str
    stream_seq: int
    deliveries: int


def exhausted_subscriptions(
    service: str,
    settings: BusSettings,
    subscriptions: list[Subscription],
    *,
    dead_letters: DeadLetterWriter,
    connection: Callable[[], Any],
) -> list[Subscription]:
    """One advisory subscription per consumer of the service (not shown on its card)."""
    s = settings.subjects
    found = []
    record = _recorder(service, dead_letters, connection)
    for sub in subscriptions:
        subject = s.max_deliveries_advisory(sub.spec.stream, sub.spec.durable)
        spec = ConsumerSpec(
            s.advisories_stream,
            f"{sub.spec.durable}-exhausted",
            subject,
            f"{service}: dead-letter what {sub.spec.durable} gave up on",
        )
        found.append(Subscription(spec, subject, MaxDeliveriesAdvisory, record))
    return found


def _recorder(service: str, dead_letters: DeadLetterWriter, connection: Callable[[], Any]):
    async def record_exhausted(advisory: MaxDeliveriesAdvisory, delivery: Delivery) -> None:
        js = connection().jetstream()
        try:
            original: Any = await js.get_msg(advisory.stream, advisory.stream_seq)
        except NotFoundError:
            original = None  # aged out of its stream: record what we know
        payload, encoding = DeadLetter.wrap_payload((original.data or b"") if original else b"")
        record = DeadLetter(
            subject=original.subject if original else "",
            payload=payload,
            payload_encoding=encoding,
            headers=dict(original.headers or {}) if original else {},
            error=(
                f"delivered {advisory.deliveries} times and never acked: the service died, hung or lost "
                "NATS on its last attempt (max deliveries reached)"
                + ("" if original else "; the original message is no longer in its stream")
            ),
            error_type="failed",
            service=service,
            stream=advisory.stream,
            stream_seq=advisory.stream_seq,
            consumer=advisory.consumer,
            deliveries=advisory.deliveries,
        )
        # The advisory starts a trace of its own; the dead letter links to the original's.
        attributes = {"error.type": record.error_type, "mesh.dead_letter.reason": record.error}
        with delivery.telemetry.span("dead-letter", attributes, link=record.headers):
            await dead_letters.write_record(record)
        delivery.log.warning(
            "✗ dead-lettered after max deliveries",
            stream=advisory.stream,
            stream_seq=advisory.stream_seq,
            consumer=advisory.consumer,
            deliveries=advisory.deliveries,
        )

    return record_exhausted
