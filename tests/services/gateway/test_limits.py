"""services/gateway/limits.py against a real nats-server: rate limits and held-request caps that
hold across gateway replicas (each replica here is a connection of its own), and a bus that
fails turns into LimitsUnavailable, never a raw NATS error."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import NamedTuple

import pytest
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from bus.connect import connect
from bus.provision import provision
from services.gateway.limits import (
    CAS_ATTEMPTS,
    HeldRequests,
    LimitExceeded,
    LimitsUnavailable,
    RateLimiter,
    client_token,
    current_window,
)


class Replica(NamedTuple):
    nc: Client
    kv: KeyValue


@pytest.fixture
async def replica(settings) -> AsyncIterator:
    """`await replica()`: the gateway bucket over a connection of its own, as one gateway
    replica sees it (the first call provisions the bucket); every connection is closed after."""
    opened: list[Client] = []

    async def open_replica() -> Replica:
        nc = await connect(settings, name="test")
        opened.append(nc)
        if len(opened) == 1:
            await provision(nc.jetstream(), settings, [], reconcile=False)
        return Replica(nc, await nc.jetstream().key_value(settings.subjects.gateway_bucket))

    yield open_replica
    for nc in opened:
        if not nc.is_closed:
            await nc.close()


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def admitted(limiter: RateLimiter, client: str, times: int) -> int:
    """How many of `times` requests, made one after another, `limiter` lets through."""
    count = 0
    for _ in range(times):
        try:
            await limiter.admit(client)
            count += 1
        except LimitExceeded:
            pass
    return count


async def until_free(held: HeldRequests, client: str, *, within: float) -> float:
    """Seconds until `client` can take a place again (taking and giving it straight back);
    fails the test if that takes longer than `within`."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        try:
            async with held.hold(client):
                return time.monotonic() - start
        except LimitExceeded:
            await asyncio.sleep(0.2)
    pytest.fail(f"no place became free within {within} s")


# --- the window ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "window", "index", "left"),
    [
        (0.0, 60.0, 0, 60.0),
        (59.5, 60.0, 0, 0.5),
        (60.0, 60.0, 1, 60.0),
        (1000.25, 2.0, 500, 1.75),
    ],
)
def test_a_window_is_numbered_from_the_epoch_and_knows_its_end(now, window, index, left):
    """Every replica numbers the same window alike from the wall clock, and a refused request
    is told how long the window still runs."""
    assert current_window(now, window) == (index, pytest.approx(left))


# --- rate ---------------------------------------------------------------------------------


async def test_the_request_past_the_limit_is_refused_until_the_window_ends(replica):
    """With a limit of 3, the fourth request in a window is refused, told to come back when
    the window ends, and the refusal names the limit."""
    clock = Clock(999_980.0)  # 20 s into a 60 s window: 40 s left
    limiter = RateLimiter((await replica()).kv, limit=3, window=60, clock=clock)

    for _ in range(3):
        await limiter.admit("key:ci")
    with pytest.raises(LimitExceeded) as refused:
        await limiter.admit("key:ci")

    assert refused.value.retry_after == pytest.approx(40.0)
    assert "3 requests per 60 s" in refused.value.detail
    assert "retry in 40 s" in refused.value.detail


async def test_two_replicas_share_one_count(replica):
    """Six requests through one replica and four through another use up a limit of 10: the
    eleventh is refused whichever replica it reaches."""
    one = RateLimiter((await replica()).kv, limit=10, window=60)
    other = RateLimiter((await replica()).kv, limit=10, window=60)

    assert await admitted(one, "key:ci", 6) == 6
    assert await admitted(other, "key:ci", 4) == 4
    with pytest.raises(LimitExceeded):
        await one.admit("key:ci")
    with pytest.raises(LimitExceeded):
        await other.admit("key:ci")


async def test_concurrent_requests_on_two_replicas_never_exceed_the_limit(replica):
    """Fifty requests at once, half through each replica, with a limit of 20: exactly 20 are
    admitted (compare-and-set lets no two requests take the same place)."""
    clock = Clock(1_000_000.0)  # stopped: the burst cannot straddle two windows
    one = RateLimiter((await replica()).kv, limit=20, window=60, clock=clock)
    other = RateLimiter((await replica()).kv, limit=20, window=60, clock=clock)

    results = await asyncio.gather(
        *(limiter.admit("key:burst") for _ in range(25) for limiter in (one, other)), return_exceptions=True
    )

    assert [type(r) for r in results if r is not None and not isinstance(r, LimitExceeded)] == []
    assert results.count(None) == 20


async def test_a_burst_within_the_limit_is_admitted_in_full(replica):
    """Two hundred requests at once through one replica, with a limit of 200, are all admitted:
    a replica counts one client's requests one at a time, so they do not lose races to each
    other and get refused while places are left."""
    limiter = RateLimiter((await replica()).kv, limit=200, window=60, clock=Clock(1_000_000.0))

    results = await asyncio.gather(*(limiter.admit("key:burst") for _ in range(200)), return_exceptions=True)

    assert results == [None] * 200


async def test_a_new_window_admits_again(replica):
    """A client refused in one window is admitted again in the next."""
    clock = Clock(1_000_000.0)
    limiter = RateLimiter((await replica()).kv, limit=2, window=2, clock=clock)
    assert await admitted(limiter, "key:ci", 3) == 2

    clock.now += 2.0

    assert await admitted(limiter, "key:ci", 3) == 2


async def test_a_windows_count_leaves_nothing_behind(replica):
    """A window's count expires from the bucket soon after the window ends (two windows after
    its last request), so clients that come and go leave no keys behind."""
    one = await replica()
    clock = Clock(1_000_000.0)
    await RateLimiter(one.kv, limit=5, window=1, clock=clock).admit("key:ci")
    key = f"rate.{client_token('key:ci')}.1000000"
    assert (await one.kv.get(key)).value == b"1"

    async def gone() -> bool:
        try:
            return (await one.kv.get(key)).value is None  # its expiry marker (no value)
        except KeyNotFoundError:
            return True

    started = time.monotonic()
    while not await gone():  # two one-second windows; polled, as the server's expiry runs late under load
        assert time.monotonic() - started < 15, "the window's count never expired"
        await asyncio.sleep(0.2)
    assert time.monotonic() - started > 0.5  # not at once: it lived past its window


async def test_a_client_over_its_limit_is_refused_again_without_the_bus(replica):
    """Once a replica has seen a client's window used up, it refuses that client's next
    requests in the window without asking the bus (a flood of refused requests costs it
    nothing): here the connection is gone and the refusal is still a 429, not a 503."""
    one = await replica()
    limiter = RateLimiter(one.kv, limit=1, window=60, clock=Clock(999_980.0))
    await limiter.admit("key:flood")
    with pytest.raises(LimitExceeded):
        await limiter.admit("key:flood")
    await one.nc.close()

    with pytest.raises(LimitExceeded) as refused:
        await limiter.admit("key:flood")

    assert refused.value.retry_after == pytest.approx(40.0)


async def test_clients_are_counted_apart(replica):
    """One client using up its limit leaves another's untouched."""
    limiter = RateLimiter((await replica()).kv, limit=2, window=60)
    assert await admitted(limiter, "key:greedy", 5) == 2

    assert await admitted(limiter, "key:polite", 2) == 2


async def test_a_closed_connection_is_unavailable_not_a_crash(replica):
    """With the connection gone, admitting and holding raise LimitsUnavailable (a 503), not a
    NATS error that would surface as a 500."""
    one = await replica()
    limiter = RateLimiter(one.kv, limit=5, window=60)
    held = HeldRequests(one.kv, per_client=2, lease=3)
    await one.nc.close()

    with pytest.raises(LimitsUnavailable) as unavailable:
        await limiter.admit("key:ci")
    assert unavailable.value.retry_after > 0
    with pytest.raises(LimitsUnavailable):
        async with held.hold("key:ci"):
            pass


class SilentBus:
    """A KV whose reads never answer: a bus stalled mid-request."""

    async def get(self, key: str):
        await asyncio.sleep(3600)


class CrowdedBus:
    """A KV where some other request always wrote the count first."""

    async def get(self, key: str) -> KeyValue.Entry:
        return KeyValue.Entry(
            bucket="gateway", key=key, value=b"1", revision=7, delta=None, created=None, operation=None
        )

    async def _update(self, key: str, value: bytes, **kwargs):
        raise KeyWrongLastSequenceError("wrong last sequence: 8")


async def test_a_stalled_bus_is_unavailable_within_the_timeout():
    """A bus that does not answer makes admit raise LimitsUnavailable after `timeout`, rather
    than hold the request until the client gives up."""
    limiter = RateLimiter(SilentBus(), limit=5, window=60, timeout=0.2)
    start = time.monotonic()

    with pytest.raises(LimitsUnavailable, match="within 0.2 s: the bus is slow or unreachable"):
        await limiter.admit("key:ci")

    took = time.monotonic() - start
    assert took < 3.0, f"unavailable after {took:.1f} s"  # else held for ever; the margin is for load


async def test_losing_every_race_is_a_refusal_after_bounded_tries():
    """A count that another replica always updates first is refused after CAS_ATTEMPTS tries,
    not retried for ever; as a 429, since only the client's own requests race for its count."""
    limiter = RateLimiter(CrowdedBus(), limit=5, window=60)

    with pytest.raises(LimitExceeded, match=f"{CAS_ATTEMPTS} tries") as refused:
        await limiter.admit("key:ci")

    assert refused.value.retry_after == 1.0


# --- held requests ------------------------------------------------------------------------


async def test_a_third_hold_is_refused_until_one_ends(replica):
    """With two places per client, a third concurrent hold is refused, with a retry hint, and
    succeeds once one of the first two has ended."""
    held = HeldRequests((await replica()).kv, per_client=2, lease=3)

    async with held.hold("key:ci") as first:
        async with held.hold("key:ci") as second:
            assert first.key != second.key
            with pytest.raises(LimitExceeded) as refused:
                async with held.hold("key:ci"):
                    pass
            assert refused.value.retry_after > 0
            assert "2 at once per client" in refused.value.detail
        async with held.hold("key:ci"):
            pass


async def test_a_request_cancelled_while_held_gives_its_place_back(replica):
    """A held request cancelled mid-wait (its client went away) gives its place back at once,
    not when the lease ends."""
    held = HeldRequests((await replica()).kv, per_client=1, lease=30)
    waiting = asyncio.Event()

    async def wait_for_an_outcome() -> None:
        async with held.hold("key:ci"):
            waiting.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(wait_for_an_outcome())
    await waiting.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    async with held.hold("key:ci"):
        pass


async def test_holds_count_across_replicas(replica):
    """One place held through each of two replicas uses up a limit of two: a third hold is
    refused on either replica, and other clients are unaffected."""
    one = HeldRequests((await replica()).kv, per_client=2, lease=3)
    other = HeldRequests((await replica()).kv, per_client=2, lease=3)

    async with one.hold("key:ci"), other.hold("key:ci"):
        for held in (one, other):
            with pytest.raises(LimitExceeded):
                async with held.hold("key:ci"):
                    pass
        async with one.hold("key:someone-else"):
            pass


async def test_a_held_place_is_kept_past_its_lease_while_held(replica):
    """A place held for longer than its lease stays taken: the holder renews it."""
    held = HeldRequests((await replica()).kv, per_client=1, lease=2)

    async with held.hold("key:ci") as hold:
        await asyncio.sleep(3.0)  # one and a half leases
        with pytest.raises(LimitExceeded):
            async with held.hold("key:ci"):
                pass
        assert not hold.lost


async def test_a_dead_replicas_places_free_themselves_after_the_lease(replica):
    """A replica that dies holding a place (its connection gone, nothing given back) blocks
    the client only until the lease ends; its own exit, when it comes, raises nothing."""
    dying, survivor = await replica(), await replica()
    lease = 3.0
    held_there = HeldRequests(dying.kv, per_client=1, lease=lease)
    held_here = HeldRequests(survivor.kv, per_client=1, lease=lease)

    hold = held_there.hold("key:ci")
    await hold.__aenter__()
    await dying.nc.close()  # the replica is gone: no renewal, no give-back reaches the bus
    with pytest.raises(LimitExceeded):
        async with held_here.hold("key:ci"):
            pass

    waited = await until_free(held_here, "key:ci", within=lease + 3)

    assert waited > 1.0  # freed by the lease, not at once
    await hold.__aexit__(None, None, None)


async def test_a_holder_whose_place_was_taken_stops_and_frees_nothing(replica):
    """When a renewal finds the place taken by another request (the holder's lease had
    lapsed), the hold is marked lost and leaving it does not free the other request's place."""
    one = await replica()
    held = HeldRequests(one.kv, per_client=1, lease=3)

    async with held.hold("key:ci") as hold:
        await one.kv.put(hold.key, b"someone else")  # as if the lease had lapsed and the slot been retaken
        started = time.monotonic()
        while not hold.lost:  # the next renewal (every lease / 3) finds the place taken
            assert time.monotonic() - started < 10, "no renewal noticed the place was taken"
            await asyncio.sleep(0.05)

    assert (await one.kv.get(hold.key)).value == b"someone else"
    with pytest.raises(LimitExceeded):
        async with held.hold("key:ci"):
            pass
