"""The dead-letter stream: where a message goes when the mesh cannot process it.

A record keeps the original payload verbatim, its headers and subject, the error, and how
many times it was delivered, so a person can read it and `mesh dlq replay` can resend it.
The error and header values are redacted (`contracts.deadletters`); the payload is not.

A message too large to wrap in a record (a ~1 MB payload plus the record around it exceeds the
server's max payload) is still dead-lettered: its whole payload goes to the namespace's
dead-letter payloads object store, under the record's id, and the record keeps the start of it
(`payload_truncated`, `payload_object`), with its size and SHA-256. If the object store cannot
take it, the record keeps as much of the payload as fits and says so (`payload_object` unset).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from structlog import get_logger

from bus.settings import BusSettings
from contracts.deadletters import DeadLetter
from contracts.ids import dead_letter_msg_id

PublishRaw = Callable[[bytes, str, dict], Awaitable[object]]

DEFAULT_MAX_PAYLOAD = 1024 * 1024  # nats-server's default, when there is no connection to ask
HEADROOM = 4096  # what the record's headers and the protocol line may take beside its JSON
PREVIEW_BYTES = 64 * 1024  # room (as JSON) for the start of an offloaded payload, for people to read


def dead_letter_record(msg: Msg, *, service: str, error_type: str, error: str) -> DeadLetter:
    meta = msg.metadata
    data = msg.data or b""
    payload, encoding = DeadLetter.wrap_payload(data)
    return DeadLetter(
        subject=msg.subject,
        payload=payload,
        payload_encoding=encoding,
        payload_size=len(data),
        payload_sha256=hashlib.sha256(data).hexdigest(),
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
    """Publishes dead-letter records; `connection` gives the server's max payload and the object store."""

    def __init__(
        self,
        settings: BusSettings,
        *,
        service: str,
        publish: PublishRaw,
        connection: Callable[[], Client | None] | None = None,
    ) -> None:
        self._subject = settings.subjects.dead_letter(service)
        self._bucket = settings.subjects.dead_letter_payloads_bucket
        self._service = service
        self._publish = publish
        self._connection = connection or (lambda: None)

    async def write(self, msg: Msg, *, error_type: str, error: str) -> DeadLetter:
        record = dead_letter_record(msg, service=self._service, error_type=error_type, error=error)
        return await self.write_record(record)

    async def write_record(self, record: DeadLetter) -> DeadLetter:
        record = with_digest(record)
        data = record.model_dump_json().encode()
        limit = self._max_payload() - HEADROOM
        if len(data) > limit:
            record = await self._offload(record, limit)
            data = record.model_dump_json().encode()
        await self._publish(
            data,
            self._subject,
            {"Nats-Msg-Id": dead_letter_msg_id(record), "content-type": "application/json"},
        )
        return record

    def _nc(self) -> Client | None:
        try:
            return self._connection()
        except Exception:  # noqa: BLE001 - not connected (yet): the defaults apply
            return None

    def _max_payload(self) -> int:
        nc = self._nc()
        return (nc.max_payload if nc is not None else 0) or DEFAULT_MAX_PAYLOAD

    async def _offload(self, record: DeadLetter, limit: int) -> DeadLetter:
        """The record with its payload in the object store (or cut to fit) and only its start kept."""
        original = record.kept_payload()
        name = dead_letter_msg_id(record)
        stored = await self._store(name, original)
        cut = record.model_copy(
            update={"payload": "", "payload_truncated": True, "payload_object": name if stored else None}
        )
        budget = limit - len(cut.model_dump_json().encode())
        return fit_payload(cut, original, min(budget, PREVIEW_BYTES) if stored else budget)

    async def _store(self, name: str, data: bytes) -> bool:
        nc = self._nc()
        if nc is None:
            return False
        try:
            store = await nc.jetstream().object_store(self._bucket)
            await store.put(name, data)  # the same name again (a record written twice) replaces it
        except Exception as exc:  # noqa: BLE001 - keep what fits rather than lose the message
            get_logger().warning(
                "dead-letter payload not stored; keeping its start only",
                bucket=self._bucket,
                object=name,
                error=f"{type(exc).__name__}: {exc}",
            )
            return False
        return True


def with_digest(record: DeadLetter) -> DeadLetter:
    """`record` with the size and SHA-256 of its payload filled in, when it holds the whole of it."""
    if record.payload_size is not None or record.payload_truncated:
        return record
    data = record.kept_payload()
    return record.model_copy(update={"payload_size": len(data), "payload_sha256": hashlib.sha256(data).hexdigest()})


def fit_payload(record: DeadLetter, original: bytes, budget: int) -> DeadLetter:
    """`record` holding the longest start of `original` whose JSON takes at most `budget` bytes."""
    utf8 = record.payload_encoding == "utf-8"
    n = min(len(original), max(budget, 0))
    empty = len(record.model_dump_json().encode())
    while n > 0:
        start = original[:n]
        # a cut through a multi-byte character drops that character, nothing else
        payload = start.decode("utf-8", errors="ignore") if utf8 else base64.b64encode(start).decode("ascii")
        candidate = record.model_copy(update={"payload": payload})
        size = len(candidate.model_dump_json().encode()) - empty
        if size <= budget:
            return candidate
        n = min(n - 1, n * budget // size)  # escapes and base64 grow the text: shrink in proportion
    return record
