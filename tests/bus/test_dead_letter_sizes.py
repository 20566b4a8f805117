"""Dead letters of messages too large to wrap, and what a record keeps (and redacts), on a real server."""

from __future__ import annotations

import asyncio
import hashlib
import json

import nats
import pytest

from bus.dead_letter_writer import HEADROOM, PREVIEW_BYTES, DeadLetterWriter
from bus.ops import dead_letters as dlq
from bus.provision import provision
from bus.runtime import Agent, Delivery
from contracts.deadletters import DeadLetter
from contracts.releases import ReleaseProposed
from tests.bus.ops.test_cli import mesh
from tests.bus.test_runtime import dead_letters, proposal_json, publish_raw

# Invalid JSON (a bad escape; no release_id either), with escapes and two-byte characters, just under the server's 1 MiB max payload.
BIG = b'{"service": "svc", "version": "1", "blob": "' + b"\xc3\xa9x\\" * 259_000 + b'"'


def strict_agent(settings, name: str = "strict") -> tuple[Agent, list[str]]:
    handled: list[str] = []
    agent = Agent(name, settings=settings)

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def handle(event: ReleaseProposed, delivery: Delivery) -> None:
        handled.append(event.release_id)

    return agent, handled


async def last_event(settings) -> bytes:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(settings.subjects.events_stream)
        return (await js.get_msg(settings.subjects.events_stream, info.state.last_seq)).data
    finally:
        await nc.close()


async def test_a_one_megabyte_invalid_payload_is_dead_lettered_whole_and_replayed(make_settings):
    """A ~1 MB invalid message ends in the DLQ as a record of *it* (its subject, headers, size and
    SHA-256, the start of its payload) with the whole payload in the dead-letter payloads object
    store; `mesh dlq show` says so, and `mesh dlq replay` re-publishes the exact original bytes."""
    settings = make_settings(max_deliver=2)
    agent, handled = strict_agent(settings)
    async with agent.running():
        assert agent.broker.connection.max_payload == 1024 * 1024
        await publish_raw(settings, settings.subjects.release_proposed, BIG, {"X-Origin": "ci"})
        [record] = await dead_letters(settings, expect=1, timeout=15)

        assert handled == []
        assert (record.subject, record.stream_seq, record.error_type) == (
            settings.subjects.release_proposed,
            1,
            "invalid",
        )
        assert record.headers["X-Origin"] == "ci" and "Invalid JSON" in record.error
        assert (record.payload_size, record.payload_sha256) == (len(BIG), hashlib.sha256(BIG).hexdigest())
        assert record.payload_truncated and record.payload_object == f"dlq:{record.stream}:1:strict"
        kept = record.kept_payload()
        assert BIG.startswith(kept) and 0.75 * PREVIEW_BYTES <= len(kept) <= PREVIEW_BYTES  # escapes take room

        shown = await asyncio.to_thread(mesh, "dlq", "show", "1", settings=settings)
        assert shown.returncode == 0, shown.stderr
        note = json.loads(shown.stdout)["payload_kept"]
        assert note.startswith("stored in object store") and str(len(BIG)) in note
        listed = await asyncio.to_thread(mesh, "dlq", "list", settings=settings, COLUMNS="250")
        assert "(payload in object store)" in listed.stdout

        replayed = await asyncio.to_thread(mesh, "dlq", "replay", "1", settings=settings)
        assert replayed.returncode == 0, replayed.stderr
        assert await last_event(settings) == BIG
        [_, again] = await dead_letters(settings, expect=2, timeout=15)  # still invalid: dead again
        assert again.headers["Mesh-Replay-Of"] == "1" and again.payload_sha256 == record.payload_sha256

    purged = await asyncio.to_thread(mesh, "dlq", "purge", "--yes", settings=settings)
    assert purged.returncode == 0 and "deleted 2 dead letters" in purged.stdout
    nc = await nats.connect(settings.nats_url)
    try:
        store = await nc.jetstream().object_store(settings.subjects.dead_letter_payloads_bucket)
        assert [o.name for o in await store.list(ignore_deletes=True)] == []
    except nats.js.errors.NotFoundError:
        pass  # no objects left at all
    finally:
        await nc.close()


async def test_a_one_megabyte_message_whose_consumer_died_is_dead_lettered_not_its_advisory(make_settings):
    """A ~1 MB message delivered max_deliver times and never acked (the process died) is dead-
    lettered from its max-deliveries advisory as a record of the original message, whole in the
    object store, not as a record of the advisory."""
    settings = make_settings(max_deliver=2, ack_wait_seconds=1.0)
    agent, handled = strict_agent(settings, "victim")
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await provision(js, settings, agent.consumers, reconcile=False)
        await publish_raw(settings, settings.subjects.release_proposed, BIG)
        psub = await js.pull_subscribe_bind("victim", settings.subjects.events_stream)
        for _ in range(settings.max_deliver):
            await psub.fetch(1, timeout=5)
            await asyncio.sleep(1.3)  # never acked
        await psub.unsubscribe()
    finally:
        await nc.close()

    async with agent.running():
        [record] = await dead_letters(settings, expect=1, timeout=20)
        stored = await dlq_get(settings, 1)
        data = await dlq_payload(settings, stored)

    assert record.subject == settings.subjects.release_proposed and record.consumer == "victim"
    assert "never acked" in record.error and record.payload_object
    assert data == BIG


async def dlq_get(settings, seq: int) -> dlq.StoredDeadLetter:
    nc = await nats.connect(settings.nats_url)
    try:
        return await dlq.get_dead_letter(nc.jetstream(), settings, seq)
    finally:
        await nc.close()


async def dlq_payload(settings, stored: dlq.StoredDeadLetter) -> bytes:
    nc = await nats.connect(settings.nats_url)
    try:
        return await dlq.original_payload(nc.jetstream(), settings, stored)
    finally:
        await nc.close()


async def test_a_record_redacts_its_error_and_credential_headers_but_keeps_the_payload(make_settings):
    """A failure whose message quotes a password, with an Authorization header, is dead-lettered
    with both redacted; the payload stays verbatim (it is what replay sends)."""
    settings = make_settings(max_deliver=1)
    agent = Agent("leaky", settings=settings)

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def handle(event: ReleaseProposed, delivery: Delivery) -> None:
        raise ConnectionError("cannot reach postgres://app:hunter2@db:5432 with password=hunter2 refused")

    payload = proposal_json("rel-creds")[:-1] + b', "description": "db password=s3cret"}'
    async with agent.running():
        await publish_raw(
            settings,
            settings.subjects.release_proposed,
            payload,
            {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz", "X-Origin": "ci"},
        )
        [record] = await dead_letters(settings, expect=1)

    assert "hunter2" not in record.error
    assert (
        record.error
        == "ConnectionError: cannot reach postgres://app:[REDACTED]@db:5432 with password=[REDACTED] refused"
    )
    assert record.headers == {"Authorization": "[REDACTED]", "X-Origin": "ci"}
    assert record.original_payload() == payload and not record.payload_truncated


@pytest.mark.parametrize(
    "data",
    [b"x" * 2_000_000, bytes(range(256)) * 8_000, "é".encode() * 700_000],
    ids=["ascii", "binary", "two-byte utf-8"],
)
async def test_without_an_object_store_a_record_keeps_as_much_as_fits(settings, data):
    """With no object store to take it, a payload too large to wrap is cut to what fits under the
    max payload (on a character boundary for text), flagged truncated, and cannot be replayed."""
    published: list[bytes] = []

    async def publish(body: bytes, subject: str, headers: dict) -> None:
        published.append(body)

    writer = DeadLetterWriter(settings, service="svc", publish=publish)  # no connection: no store
    payload, encoding = DeadLetter.wrap_payload(data)
    record = await writer.write_record(
        DeadLetter(
            subject="mesh.events.x",
            payload=payload,
            payload_encoding=encoding,
            error="too big",
            error_type="invalid",
            service="svc",
            stream="S",
            stream_seq=9,
            consumer="svc",
        )
    )
    [body] = published
    assert 1024 * 1024 - HEADROOM - 64 <= len(body) <= 1024 * 1024 - HEADROOM
    kept = DeadLetter.model_validate_json(body).kept_payload()
    assert data.startswith(kept) and record.payload_truncated and record.payload_object is None
    assert (record.payload_size, record.payload_sha256) == (len(data), hashlib.sha256(data).hexdigest())
    stored = dlq.StoredDeadLetter(1, None, record)
    assert dlq.payload_note(stored, settings).startswith("truncated")
    with pytest.raises(dlq.NothingToReplay, match="kept only the first"):
        await dlq.original_payload(None, settings, stored)
