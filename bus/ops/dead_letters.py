"""Reading and managing the dead-letter stream: what `mesh dlq` does, as plain functions.

    records = await list_dead_letters(js, settings, service="coordinator")
    ack = await replay(js, settings, seq=17)     # the original payload and headers, re-published
    await purge(js, settings, service="security")

A replay re-publishes the original payload and headers to the original subject under a new
message id, `replay:<dead-letter stream>:<seq>` (`contracts.ids`), so replaying the same record
twice within the stream's duplicate window stores it once; the message says where it came from
(`Mesh-Replay-Of`, `Mesh-Original-Msg-Id`), and if it dies again its new record carries those
headers too. It keeps the original's trace: its `traceparent` is the original's, or, with
tracing on in the replaying process, that of a `send` span under a `mesh dlq replay` span that
continues the original's trace.

A record whose payload was too large to wrap points at the whole payload in the dead-letter
payloads object store (`payload_object`); replay fetches it from there and checks its SHA-256.
A record that kept only the start of its payload (the object store could not take it) cannot
be replayed; the original may still be in its source stream at `stream_seq`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectDeletedError, ObjectNotFoundError

from bus.errors import MeshError
from bus.ops.settings import MeshSettings
from bus.telemetry import Telemetry
from contracts.deadletters import DeadLetter
from contracts.ids import replay_msg_id

REPLAY_OF = "Mesh-Replay-Of"
ORIGINAL_MSG_ID = "Mesh-Original-Msg-Id"
# Set by the server or nats-py for one publish; never carried over to another.
_TRANSPORT = {
    "nats-msg-id",
    "nats-expected-stream",
    "nats-expected-last-sequence",
    "nats-expected-last-subject-sequence",
    "nats-expected-last-msg-id",
}


class DeadLetterNotFound(MeshError):
    """No dead-letter record at that sequence."""


class NothingToReplay(MeshError):
    """The record has no original message to send again."""


@dataclass(frozen=True)
class StoredDeadLetter:
    """A dead-letter record and where it sits in the stream."""

    seq: int
    stored_at: datetime | None
    record: DeadLetter


async def read_stream(js: JetStreamContext, stream: str, subject: str, *, batch: int = 500) -> AsyncIterator[Msg]:
    """Every message of `stream` on `subject` (wildcards allowed) stored right now, oldest first."""
    try:
        psub = await js.pull_subscribe(
            subject,
            stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=60.0),
        )
    except NotFoundError:
        return
    try:
        remaining = (await psub.consumer_info()).num_pending
        while remaining > 0:
            try:
                msgs = await psub.fetch(min(batch, remaining), timeout=5)
            except TimeoutError:
                return
            for msg in msgs:
                yield msg
            remaining = msgs[-1].metadata.num_pending
    finally:
        await psub.unsubscribe()


async def list_dead_letters(
    js: JetStreamContext, settings: MeshSettings, *, service: str | None = None, limit: int | None = None
) -> list[StoredDeadLetter]:
    """Dead-letter records, oldest first (the newest `limit` when a limit is given)."""
    s = settings.subjects
    subject = s.dead_letter(service) if service else s.dead_letters
    found: list[StoredDeadLetter] = []
    async for msg in read_stream(js, s.dead_letter_stream, subject):
        found.append(_stored(msg.metadata.sequence.stream, msg.metadata.timestamp, msg.data))
    return found[-limit:] if limit else found


async def get_dead_letter(js: JetStreamContext, settings: MeshSettings, seq: int) -> StoredDeadLetter:
    stream = settings.subjects.dead_letter_stream
    try:
        msg = await js.get_msg(stream, seq)
    except NotFoundError:
        raise DeadLetterNotFound(
            f"no dead letter at sequence {seq} in {stream}; `mesh dlq list` shows the sequences there are"
        ) from None
    return _stored(seq, getattr(msg, "time", None), msg.data)


def replay_headers(stored: StoredDeadLetter, settings: MeshSettings) -> dict[str, str]:
    """The original headers, minus per-publish ones, plus where the replay came from."""
    original = stored.record.headers
    headers = {k: v for k, v in original.items() if k.lower() not in _TRANSPORT}
    headers["Nats-Msg-Id"] = replay_msg_id(settings.subjects.dead_letter_stream, stored.seq)
    headers[REPLAY_OF] = str(stored.seq)
    if msg_id := next((v for k, v in original.items() if k.lower() == "nats-msg-id"), None):
        headers[ORIGINAL_MSG_ID] = msg_id
    return headers


async def replay(
    js: JetStreamContext, settings: MeshSettings, seq: int, *, telemetry: Telemetry | None = None
) -> tuple[StoredDeadLetter, PubAck]:
    """Re-publish record `seq`'s original message; `ack.duplicate` means it was replayed already."""
    stored = await get_dead_letter(js, settings, seq)
    record = stored.record
    if not record.subject:
        raise NothingToReplay(
            f"dead letter {seq} has no original message (it had left its stream when the record was "
            "written); nothing to replay"
        )
    data = await original_payload(js, settings, stored)
    telemetry = telemetry or Telemetry()
    with (
        telemetry.span("mesh dlq replay", {"mesh.dead_letter.seq": seq}, parent=record.headers),
        telemetry.publishing("mesh-cli", record.subject, replay_headers(stored, settings)) as headers,
    ):
        ack = await js.publish(record.subject, data, headers=headers)
    return stored, ack


async def original_payload(js: JetStreamContext, settings: MeshSettings, stored: StoredDeadLetter) -> bytes:
    """Record `stored`'s original payload: from the record, or whole from the object store."""
    record = stored.record
    if not record.payload_truncated:
        return record.original_payload()
    bucket = settings.subjects.dead_letter_payloads_bucket
    if record.payload_object is None:
        raise NothingToReplay(
            f"dead letter {stored.seq} kept only the first {len(record.kept_payload())} of its {record.payload_size} "
            f"payload bytes; the original may still be in stream {record.stream} at sequence {record.stream_seq}"
        )
    try:
        data = (await (await js.object_store(bucket)).get(record.payload_object)).data or b""
    except (BucketNotFoundError, ObjectNotFoundError, ObjectDeletedError, NotFoundError):
        raise NothingToReplay(
            f"dead letter {stored.seq}'s payload is no longer in object store {bucket} "
            f"(object {record.payload_object!r}); nothing to replay"
        ) from None
    if record.payload_sha256 and hashlib.sha256(data).hexdigest() != record.payload_sha256:
        raise NothingToReplay(
            f"dead letter {stored.seq}'s stored payload does not match its SHA-256 {record.payload_sha256}; "
            "not replayed"
        )
    return data


def payload_note(stored: StoredDeadLetter, settings: MeshSettings) -> str:
    """What the record holds of its payload, in a sentence for `mesh dlq show`."""
    record = stored.record
    if not record.payload_truncated:
        return "complete: the record holds the whole original payload"
    kept = f"the record holds the first {len(record.kept_payload())} of {record.payload_size} bytes"
    if record.payload_object:
        bucket = settings.subjects.dead_letter_payloads_bucket
        return (
            f"stored in object store: {kept}; the whole payload is object {record.payload_object!r} "
            f"in bucket {bucket}, and `mesh dlq replay {stored.seq}` sends it"
        )
    return f"truncated: {kept}; the rest was not kept, so it cannot be replayed from here"


async def purge(
    js: JetStreamContext, settings: MeshSettings, *, service: str | None = None, seq: int | None = None
) -> int:
    """Delete one record (`seq`), one service's records, or all of them; returns how many went."""
    s = settings.subjects
    if seq is not None:
        stored = await get_dead_letter(js, settings, seq)  # a clear error when it is not there
        await js.delete_msg(s.dead_letter_stream, seq)
        await _delete_payloads(js, settings, [stored])
        return 1
    offloaded = [d for d in await list_dead_letters(js, settings, service=service) if d.record.payload_object]
    try:
        before = (await js.stream_info(s.dead_letter_stream)).state.messages
    except NotFoundError:
        return 0  # no dead-letter stream (never provisioned): nothing to delete
    await js.purge_stream(s.dead_letter_stream, subject=s.dead_letter(service) if service else None)
    after = (await js.stream_info(s.dead_letter_stream)).state.messages
    await _delete_payloads(js, settings, offloaded)
    return before - after


async def _delete_payloads(js: JetStreamContext, settings: MeshSettings, gone: list[StoredDeadLetter]) -> None:
    names = {d.record.payload_object for d in gone if d.record.payload_object}
    if not names:
        return
    try:
        store = await js.object_store(settings.subjects.dead_letter_payloads_bucket)
    except BucketNotFoundError:
        return  # deleted with everything in it
    for name in names:
        try:
            await store.delete(name)
        except (ObjectNotFoundError, ObjectDeletedError, NotFoundError):
            pass  # expired with the bucket's TTL, or deleted already


def _stored(seq: int, stored_at: datetime | None, data: bytes) -> StoredDeadLetter:
    return StoredDeadLetter(seq, stored_at, DeadLetter.model_validate_json(data))
