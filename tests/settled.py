"""Waiting for a positive signal before asserting that nothing happened.

A test that sleeps and then asserts an absence ("no second outcome", "not redelivered") passes
on a loaded machine without having checked anything: the message may not have been handled yet.
These wait until the durable consumer that would have caused the effect has settled what it was
given: everything delivered, acked or terminated, none waiting for a redelivery. Only then is
an absence evidence. They fail (AssertionError, with the consumer's last state) when that never
happens, rather than return and let the absence pass.
"""

from __future__ import annotations

import asyncio

import nats
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError


def is_settled(info: ConsumerInfo, *, through: int | None = None) -> bool:
    """Nothing left to deliver, nothing delivered and unsettled (a nak'd message waiting for its
    redelivery counts as unsettled), and acked through stream sequence `through` when given."""
    if info.num_pending or info.num_ack_pending:
        return False
    return through is None or (info.ack_floor.stream_seq or 0) >= through


async def wait_settled(
    js: JetStreamContext, stream: str, durable: str, *, through: int | None = None, timeout: float = 30.0
) -> ConsumerInfo:
    """Poll a durable consumer until `is_settled`; its info then. Call it after the PubAck of
    the last message that matters (an unstored message is not pending yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    info = None
    while True:
        try:
            info = await js.consumer_info(stream, durable)
        except NotFoundError:
            info = None  # not provisioned yet: the service is still starting
        if info is not None and is_settled(info, through=through):
            return info
        if loop.time() > deadline:
            raise AssertionError(f"consumer {stream}/{durable} not settled after {timeout:g} s: {info}")
        await asyncio.sleep(0.1)


async def consumer_settled(
    nats_url: str, stream: str, durable: str, *, through: int | None = None, timeout: float = 30.0
) -> ConsumerInfo:
    """`wait_settled` on a connection of its own, for tests that hold only settings."""
    nc = await nats.connect(nats_url)
    try:
        return await wait_settled(nc.jetstream(), stream, durable, through=through, timeout=timeout)
    finally:
        await nc.close()


async def all_settled(nats_url: str, consumers, *, timeout: float = 30.0) -> None:
    """`wait_settled` for every consumer given (anything with `.stream` and `.durable`, such as an
    agent's `consumers`), until one pass finds them all settled at once: what one consumer's
    handler published for another has been settled too."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        while True:
            for spec in consumers:
                await wait_settled(js, spec.stream, spec.durable, timeout=max(deadline - loop.time(), 0.1))
            unsettled = [
                f"{spec.stream}/{spec.durable}"
                for spec in consumers
                if not is_settled(await js.consumer_info(spec.stream, spec.durable))
            ]
            if not unsettled:
                return
            if loop.time() > deadline:
                raise AssertionError(f"consumers not settled after {timeout:g} s: {unsettled}")
    finally:
        await nc.close()
