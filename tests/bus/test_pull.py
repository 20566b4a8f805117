"""bus/pull.py: pull requests for exactly the free workers, kept outstanding, renewed when
they end and re-sent when the server that held them went away — against a real nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import time

import nats
import pytest
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from bus.ops.embedded import EmbeddedNats
from bus.pull import PullFeed, new_inbox


@contextlib.asynccontextmanager
async def feeding(url: str, *, stream: str, free, received: list[Msg] | None = None, **options):
    """A stream `stream` on `<stream>.>`, a durable pull consumer `d`, and a feed on an inbox;
    yields (feed, received, js), `received` (a new list unless given) filling with every
    delivered message."""
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    await js.add_consumer(stream, ConsumerConfig(durable_name="d", ack_policy=AckPolicy.EXPLICIT, ack_wait=30))
    received = [] if received is None else received
    feed = PullFeed(stream=stream, durable="d", inbox=new_inbox("_INBOX.test"), free=free, **options)

    async def on_message(msg: Msg) -> None:
        if not feed.heard(msg):
            received.append(msg)
            await msg.ack()

    await nc.subscribe(feed.inbox, cb=on_message)
    await feed.start(nc)
    try:
        yield feed, received, js
    finally:
        await feed.stop()
        await nc.close()


async def until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


def status(code: str, **headers: str) -> Msg:
    return Msg(_client=None, subject="_INBOX.x", headers={"Status": code, **headers})


def test_a_request_that_ends_hands_back_what_it_did_not_deliver():
    """A 408 (expired) or 409 with Nats-Pending-Messages lowers `requested` by that count;
    a heartbeat changes nothing; one refused request changes nothing yet (we cannot tell which
    it was); a leadership change ends every request, so the feed starts over."""
    errors: list[str] = []
    feed = PullFeed(stream="S", durable="d", inbox="_INBOX.x", free=lambda: 4, on_error=errors.append)
    feed.requested = 4
    assert feed.heard(status("100", Description="Idle Heartbeat")) and feed.requested == 4
    assert feed.heard(status("408", **{"Nats-Pending-Messages": "3"})) and feed.requested == 1
    assert feed.heard(status("409", Description="Exceeded MaxWaiting")) and feed.requested == 1
    assert feed.heard(status("409", Description="Leadership Change")) and feed.requested == 0
    assert errors == ["pull request refused: 409 Exceeded MaxWaiting", "409 Leadership Change: asking again"]


def test_a_message_no_pull_request_delivered_is_ignored():
    """Something published straight to the inbox (no JetStream ack subject) is not processed
    and not counted as a delivery."""
    errors: list[str] = []
    feed = PullFeed(stream="S", durable="d", inbox="_INBOX.x", free=lambda: 4, on_error=errors.append)
    feed.requested = 2
    stray = Msg(_client=None, subject="_INBOX.x", reply="", data=b"{not json")
    assert feed.heard(stray) is True
    assert feed.requested == 2 and "ignored" in errors[0]


def test_the_heartbeat_must_be_at_most_half_the_expiry():
    """The server refuses a request whose idle heartbeat is over half its expiry, so the
    feed refuses to be built that way rather than loop on refused requests."""
    with pytest.raises(ValueError, match="heartbeat"):
        PullFeed(stream="S", durable="d", inbox="_INBOX.x", free=lambda: 1, heartbeat_seconds=3, expires_seconds=5)


async def test_asks_only_for_the_free_slots_and_tops_up_as_they_free(nats_url, namespace):
    """With 3 free slots the consumer hands out 3 messages and no more, though 10 wait; each
    slot freed is asked for again and its message arrives."""
    stream = f"{namespace}_PULL".upper()
    slots, received = {"n": 3}, []  # each message received keeps its slot busy, as a worker would
    async with feeding(nats_url, stream=stream, free=lambda: slots["n"] - len(received), received=received) as (
        feed,
        _,
        js,
    ):
        for i in range(10):
            await js.publish(f"{stream}.x", str(i).encode())
        assert await until(lambda: len(received) == 3)
        info = await asked_no_more(feed, js, stream)
        assert len(received) == 3 and feed.requested == 0  # asked for 3, got 3, asked no more
        assert (info.delivered.stream_seq, info.num_pending) == (3, 7)
        slots["n"] = 5  # two slots freed
        feed.wake()
        assert await until(lambda: len(received) == 5)
        info = await asked_no_more(feed, js, stream)
        assert len(received) == 5
        assert (info.delivered.stream_seq, info.num_pending) == (5, 5)


async def asked_no_more(feed: PullFeed, js, stream: str):
    """Once the server holds no request of ours and every delivery is acked, let the feed top up
    (what its watchdog and a freed slot do): it must send nothing, and the server confirms it."""
    assert await until_async(lambda: _idle(js, stream))
    sent = feed.requests_sent
    await feed.top_up()
    assert feed.requests_sent == sent, "topped up with no free slot"
    info = await js.consumer_info(stream, "d")  # same connection: after any request it sent
    assert info.num_waiting == 0
    return info


async def _idle(js, stream: str) -> bool:
    info = await js.consumer_info(stream, "d")
    return info.num_waiting == 0 and info.num_ack_pending == 0


async def until_async(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return True
        await asyncio.sleep(0.05)
    return await condition()


async def test_an_expired_request_is_renewed_and_the_next_message_arrives_at_once(nats_url, namespace):
    """Requests expire (here after 1 s) and are renewed; a message published later is
    delivered without waiting for a fetch timeout."""
    stream = f"{namespace}_EXPIRE".upper()
    async with feeding(nats_url, stream=stream, free=lambda: 2, expires_seconds=1.0, heartbeat_seconds=0.4) as (
        feed,
        received,
        js,
    ):
        assert await until(lambda: feed.requests_sent >= 3, timeout=15)  # two expiries, each renewed
        # a renewed request waits on the server (the positive proof), so the message goes out at once
        assert await until_async(lambda: _waiting(js, stream), timeout=5)
        assert feed.requested == 2
        started = time.monotonic()
        await js.publish(f"{stream}.x", b"late")
        assert await until(lambda: len(received) == 1, timeout=5.0)
        # at once: a request was waiting; the bound is loose, for a loaded machine
        assert time.monotonic() - started < 1.5


async def _waiting(js, stream: str) -> bool:
    return (await js.consumer_info(stream, "d")).num_waiting >= 1


async def test_a_lost_end_of_request_does_not_stall_the_feed(nats_url, namespace):
    """The 408 that ends an expired request never reaches the feed (as when the server's
    notice is lost): the feed still learns the request is gone and a later message arrives."""
    stream = f"{namespace}_LOST".upper()
    async with feeding(nats_url, stream=stream, free=lambda: 2, expires_seconds=1.0, heartbeat_seconds=0.4) as (
        feed,
        received,
        js,
    ):
        heard, swallowed = feed.heard, []

        def losing_the_first_408(msg: Msg) -> bool:
            if not swallowed and msg.headers and msg.headers.get("Status") == "408":
                swallowed.append(msg)
                return True
            return heard(msg)

        feed.heard = losing_the_first_408
        assert await until(lambda: bool(swallowed), timeout=5)
        await js.publish(f"{stream}.x", b"after")
        assert await until(lambda: len(received) == 1, timeout=5)


async def test_requests_lost_with_a_restarted_server_are_sent_again(tmp_path):
    """The server is SIGKILLed and restarted on the same port and store: the client
    reconnects, the feed notices its requests are gone, asks again, and a message published
    after the restart is delivered."""
    server = EmbeddedNats(store_dir=tmp_path / "nats").start()
    try:
        async with feeding(server.url, stream="RESTART", free=lambda: 2, heartbeat_seconds=0.5, expires_seconds=5) as (
            feed,
            received,
            js,
        ):
            await js.publish("RESTART.x", b"before")
            assert await until(lambda: len(received) == 1)
            sent_before = feed.requests_sent
            server.kill()
            server.process.wait()
            server.start()
            await asyncio.sleep(0.5)
            for _ in range(50):  # the stream may take a moment to be back
                with contextlib.suppress(Exception):
                    await js.publish("RESTART.x", b"after", timeout=1)
                    break
                await asyncio.sleep(0.2)
            assert await until(lambda: len(received) == 2, timeout=10)
            assert received[1].data == b"after"
            assert feed.requests_sent > sent_before
    finally:
        server.stop()
