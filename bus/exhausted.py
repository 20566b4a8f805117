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

from typing import TYPE_CHECKING, Any

from nats.js.errors import NotFoundError
from pydantic import BaseModel, ConfigDict

from bus.provision import ConsumerSpec
from contracts.deadletters import DeadLetter

if TYPE_CHECKING:
    from bus.runtime import Agent, Delivery, Subscription


class MaxDeliveriesAdvisory(BaseModel):
    """`io.nats.jetstream.advisory.v1.max_deliver`, as the server sends it."""

    model_config = ConfigDict(extra="allow")

    stream: str
    consumer: str
    stream_seq: int
    deliveries: int


def exhausted_subscriptions(agent: Agent) -> list[Subscription]:
    """One advisory subscription per consumer of `agent` (not shown on its card)."""
    from bus.runtime import Subscription

    s = agent.settings.subjects
    subscriptions = []
    for sub in agent.subscriptions:
        subject = s.max_deliveries_advisory(sub.spec.stream, sub.spec.durable)
        spec = ConsumerSpec(
            s.advisories_stream,
            f"{sub.spec.durable}-exhausted",
            subject,
            f"{agent.name}: dead-letter what {sub.spec.durable} gave up on",
        )
        subscriptions.append(Subscription(spec, subject, MaxDeliveriesAdvisory, _recorder(agent)))
    return subscriptions


def _recorder(agent: Agent):
    async def record_exhausted(advisory: MaxDeliveriesAdvisory, delivery: Delivery) -> None:
        js = agent.broker.connection.jetstream()
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
            service=agent.name,
            stream=advisory.stream,
            stream_seq=advisory.stream_seq,
            consumer=advisory.consumer,
            deliveries=advisory.deliveries,
        )
        await agent.dead_letters.write_record(record)
        delivery.log.warning(
            "✗ dead-lettered after max deliveries",
            stream=advisory.stream,
            stream_seq=advisory.stream_seq,
            consumer=advisory.consumer,
            deliveries=advisory.deliveries,
        )

    return record_exhausted
