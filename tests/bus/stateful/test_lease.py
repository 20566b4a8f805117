"""The lease on a KV key: one holder, lost unless renewed, fenced by revision (real nats-server)."""

from __future__ import annotations

import asyncio

import pytest

from bus.errors import LeaseLost
from bus.stateful.lease import Lease


def lease(js, settings, holder: str, *, ttl: int = 1, clock=None) -> Lease:
    options = {"clock": clock} if clock else {}
    return Lease(js, bucket=settings.subjects.daemons_bucket, key="d.lease", holder=holder, ttl=ttl, **options)


async def test_of_several_racing_for_a_free_lease_exactly_one_wins(js, settings):
    """Five standbys try at once: one holds the lease, the others see who."""
    contenders = [lease(js, settings, f"i{n}") for n in range(5)]
    won = await asyncio.gather(*(c.acquire() for c in contenders))
    assert sum(won) == 1
    winner = contenders[won.index(True)]
    holder, revision = await contenders[0].current()
    assert holder["holder"] == winner.holder and revision == winner.token
    assert winner.held() and not any(c.held() for c in contenders if c is not winner)


async def test_a_renewed_lease_stays_and_an_abandoned_one_passes_on(js, settings):
    """Renewed within its TTL the lease stays; left alone it expires, another instance takes it
    (a later revision: a larger fencing token), and the old holder's renewal fails."""
    first, second = lease(js, settings, "first"), lease(js, settings, "second")
    assert await first.acquire()
    for _ in range(3):
        await asyncio.sleep(0.4)
        await first.renew()
        assert not await second.acquire()
    await asyncio.sleep(1.3)  # first stops renewing: its 1 s TTL runs out
    assert not first.held()
    with pytest.raises(LeaseLost):
        first.ensure()
    assert await second.acquire()
    assert second.token > first.token
    with pytest.raises(LeaseLost):
        await first.renew()


async def test_a_released_lease_is_free_at_once(js, settings):
    """A clean stop hands the lease on without waiting for its TTL."""
    first, second = lease(js, settings, "first", ttl=30), lease(js, settings, "second", ttl=30)
    assert await first.acquire()
    await first.release()
    assert not first.held()
    assert await second.acquire()


async def test_the_holder_counts_its_lease_on_its_own_clock(js, settings):
    """Frozen past the lease (its clock jumped), the holder knows it holds nothing before acting."""
    now = [100.0]
    holder = lease(js, settings, "frozen", ttl=5, clock=lambda: now[0])
    assert await holder.acquire()
    holder.ensure()
    now[0] += 5.0
    with pytest.raises(LeaseLost, match="not renewed within 5 s"):
        holder.ensure()
