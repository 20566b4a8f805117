"""The agent runtime against a real nats-server: acks, bounded redelivery, dead letters."""

from __future__ import annotations

import asyncio
import json

import nats

from bus.runtime import Agent, Delivery
from contracts.deadletters import DeadLetter
from contracts.releases import ReleaseProposed
from tests.settled import consumer_settled


async def dead_letters(settings, *, expect: int, timeout: float = 10.0) -> list[DeadLetter]:
    """Read the dead-letter stream until `expect` records arrived (or time ran out)."""
    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    s = settings.subjects
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while asyncio.get_running_loop().time() < deadline:
            info = await js.stream_info(s.dead_letter_stream)
            if info.state.messages >= expect:
                break
            await asyncio.sleep(0.1)
        records = []
        for seq in range(1, info.state.messages + 1):
            msg = await js.get_msg(s.dead_letter_stream, seq)
            records.append(DeadLetter.model_validate_json(msg.data))
        return records
    finally:
        await nc.close()


async def publish_raw(settings, subject: str, data: bytes, headers: dict | None = None) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().publish(subject, data, headers=headers)
    finally:
        await nc.close()


def proposal_json(release_id: str = "rel-1") -> bytes:
    return json.dumps({"release_id": release_id, "service": "svc", "version": "1.0.0"}).encode()


async def test_failing_handler_is_retried_then_dead_lettered(make_settings):
    """A handler that always fails is delivered max_deliver times, then dead-lettered once."""
    settings = make_settings(max_deliver=3)
    calls: list[int] = []
    agent = Agent("flaky", settings=settings)

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def always_fail(event: ReleaseProposed, delivery: Delivery) -> None:
        calls.append(delivery.deliveries)
        raise RuntimeError("downstream is down")

    async with agent.running():
        await publish_raw(settings, settings.subjects.release_proposed, proposal_json(), {"X-Origin": "test"})
        records = await dead_letters(settings, expect=1, timeout=15)
        # terminated after its record: the server will never deliver it again
        await consumer_settled(settings.nats_url, settings.subjects.events_stream, "flaky")

    assert calls == [1, 2, 3]
    assert len(records) == 1
    record = records[0]
    assert record.error_type == "failed"
    assert "downstream is down" in record.error
    assert record.deliveries == 3
    assert record.subject == settings.subjects.release_proposed
    assert record.headers.get("X-Origin") == "test"
    assert json.loads(record.original_payload())["release_id"] == "rel-1"


async def test_invalid_messages_are_dead_lettered_without_retry(make_settings):
    """Malformed JSON and schema-invalid events go to the dead-letter stream on the first delivery."""
    settings = make_settings(max_deliver=5)
    handled: list[str] = []
    agent = Agent("strict", settings=settings)

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def handle(event: ReleaseProposed, delivery: Delivery) -> None:
        handled.append(event.release_id)

    async with agent.running():
        subject = settings.subjects.release_proposed
        await publish_raw(settings, subject, b"{not json at all")
        await publish_raw(settings, subject, json.dumps({"service": "svc", "version": "1"}).encode())
        await publish_raw(settings, subject, b"\xff\xfe binary")
        await publish_raw(settings, subject, proposal_json("rel-ok"))
        records = await dead_letters(settings, expect=3)
        await consumer_settled(settings.nats_url, settings.subjects.events_stream, "strict")  # all four settled

    assert handled == ["rel-ok"]
    assert [r.deliveries for r in records] == [1, 1, 1]
    assert all(r.error_type == "invalid" for r in records)
    by_payload = {r.original_payload(): r for r in records}
    assert "JSON" in by_payload[b"{not json at all"].error
    assert "release_id" in by_payload[json.dumps({"service": "svc", "version": "1"}).encode()].error
    binary = by_payload[b"\xff\xfe binary"]
    assert binary.payload_encoding == "base64"


async def test_slow_handler_is_kept_alive_not_redelivered(make_settings):
    """A handler slower than ack_wait sends in-progress acks, so it runs once, not twice."""
    settings = make_settings(ack_wait_seconds=1.0)
    calls: list[int] = []
    agent = Agent("slow", settings=settings)

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def slow(event: ReleaseProposed, delivery: Delivery) -> None:
        calls.append(delivery.deliveries)
        await asyncio.sleep(3.0)

    async with agent.running():
        await publish_raw(settings, settings.subjects.release_proposed, proposal_json())
        # acked after 3 s: a redelivery at ack_wait (1 s) would have reached the handler before
        info = await consumer_settled(settings.nats_url, settings.subjects.events_stream, "slow")

    assert calls == [1]
    assert info.delivered.consumer_seq == 1  # the server delivered it once: no redelivery


async def test_garbage_published_to_a_service_inbox_is_ignored_and_the_service_keeps_working(make_settings):
    """Anything published straight to a service's pull inbox (no pull request delivered it):
    junk bytes, a fake status line, a valid-looking event. None reaches the handler, nothing is
    acked for it, and the proposal published afterwards through the stream is handled."""
    settings = make_settings()
    handled: list[str] = []
    agent = Agent("inboxed", settings=settings)

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def handle(event: ReleaseProposed, delivery: Delivery) -> None:
        handled.append(event.release_id)

    async with agent.running():
        inbox = agent._feeds[0].inbox
        nc = await nats.connect(settings.nats_url)
        try:
            await nc.publish(inbox, b"\x00\xff junk")
            await nc.publish(inbox, b"", headers={"Status": "408", "Nats-Pending-Messages": "many"})
            await nc.publish(inbox, proposal_json("rel-forged"))
            await nc.flush()
        finally:
            await nc.close()
        await publish_raw(settings, settings.subjects.release_proposed, proposal_json("rel-real"))
        # the forged ones reached the inbox (flushed) before the real one was even published
        await consumer_settled(settings.nats_url, settings.subjects.events_stream, "inboxed")

    assert handled == ["rel-real"]


async def test_redeliveries_back_off_one_two_four_seconds(make_settings):
    """A failing handler is redelivered after about 1 s, then 2 s, then 4 s (the server holds the
    nak'd message for the delay): measured on a real server, so a zeroed or flat backoff fails.
    Lower bounds only, with a margin; a loaded machine may only make the gaps longer."""
    settings = make_settings(max_deliver=4)
    seen: list[float] = []
    agent = Agent("backoff", settings=settings)

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def fail(event: ReleaseProposed, delivery: Delivery) -> None:
        seen.append(asyncio.get_running_loop().time())
        raise RuntimeError("downstream is down")

    async with agent.running():
        await publish_raw(settings, settings.subjects.release_proposed, proposal_json("rel-backoff"))
        await dead_letters(settings, expect=1, timeout=20)

    gaps = [later - earlier for earlier, later in zip(seen, seen[1:], strict=False)]
    assert len(gaps) == 3, gaps
    for gap, wanted in zip(gaps, (1.0, 2.0, 4.0), strict=True):
        assert gap >= wanted * 0.9, f"redelivered after {gap:.2f} s, not after about {wanted:g} s: {gaps}"
    assert gaps[2] > gaps[0] * 2.5  # it grows: not one flat delay
