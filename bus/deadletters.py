"""The dead-letter stream: where a message goes when the mesh cannot process it.

A record keeps the original payload verbatim, its headers and subject, the error, and how
many times it was delivered, so a person can read it and `mesh dlq replay` can resend it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg

from bus.settings import MeshSettings
from contracts.deadletters import DeadLetter

PublishRaw = Callable[[bytes, str, dict], Awaitable[object]]


def dead_letter_record(msg: Msg, *, service: str, error_type: str, error: str) -> DeadLetter:
    meta = msg.metadata
    payload, encoding = DeadLetter.wrap_payload(msg.data or b"")
    return DeadLetter(
        subject=msg.subject,
        payload=payload,
        payload_encoding=encoding,
        headers={k: v for k, v in (msg.headers or {}).items()},
        error=error,
        error_type=error_type,
        service=service,
        stream=meta.stream,
        stream_seq=meta.sequence.stream,
        consumer=meta.consumer,
        deliveries=meta.num_delivered,
    )


class DeadLetterWriter:
    def __init__(self, settings: MeshSettings, *, service: str, publish: PublishRaw) -> None:
        self._subject = settings.subjects.dead_letter(service)
        self._service = service
        self._publish = publish

    async def write(self, msg: Msg, *, error_type: str, error: str) -> DeadLetter:
        record = dead_letter_record(msg, service=self._service, error_type=error_type, error=error)
        return await self.write_record(record)

    async def write_record(self, record: DeadLetter) -> DeadLetter:
        await self._publish(
            record.model_dump_json().encode(),
            self._subject,
            {"Nats-Msg-Id": dead_letter_id(record), "content-type": "application/json"},
        )
        return record


def dead_letter_id(record: DeadLetter) -> str:
    """One record per original message and consumer, however often (and by whom) it is written."""
    return f"dlq:{record.stream}:{record.stream_seq}:{record.consumer}"
