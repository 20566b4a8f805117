"""coordinator/store.py against a real nats-server: compare-and-set rounds in KV, and the
remembered last write that lets a change skip its read without ever losing another's write."""

from __future__ import annotations

import asyncio

import nats
import pytest

from bus.provision import desired_buckets
from coordinator.policy import Policy
from coordinator.rounds import Round, RoundState
from coordinator.store import RoundStore
from tests.coordinator.test_rounds import EXPECTED, FALLBACKS, KNOWN, LATER, NOW, digest, proposal, review


class CountingKV:
    """The real bucket, counting reads and writes."""

    def __init__(self, kv) -> None:
        self.kv, self.reads, self.writes = kv, 0, 0

    async def get(self, key):
        self.reads += 1
        return await self.kv.get(key)

    async def create(self, key, value):
        self.writes += 1
        return await self.kv.create(key, value)

    async def update(self, key, value, last=None):
        self.writes += 1
        return await self.kv.update(key, value, last=last)


@pytest.fixture
async def bucket(settings):
    nc = await nats.connect(settings.nats_url)
    kv = await nc.jetstream().create_key_value(desired_buckets(settings)[0])
    yield kv
    await nc.close()


def open_(round_: Round) -> bool:
    return round_.open(
        proposal(round_.release_id),
        expected=EXPECTED,
        policy=Policy.parse("all"),
        fallbacks=FALLBACKS,
        deadline_seconds=60,
        now=NOW,
    )


async def test_a_round_changed_three_times_is_read_only_when_it_must_be(bucket):
    """Open (as a likely-new round), two reviews and the published mark: four writes, no reads."""
    kv = CountingKV(bucket)
    store = RoundStore(kv)

    await store.mutate("rel-42", digest("rel-42"), open_, likely_new=True)
    await store.mutate("rel-42", digest("rel-42"), lambda r: r.record(review("security"), now=NOW))
    decided, _, _ = await store.mutate("rel-42", digest("rel-42"), lambda r: r.record(review("compliance"), now=NOW))
    await store.mutate("rel-42", digest("rel-42"), Round.mark_published)

    assert (kv.reads, kv.writes) == (0, 4)
    assert decided.state == RoundState.DECIDED
    stored = await RoundStore(bucket).get("rel-42", digest("rel-42"))
    assert stored.outcome_published and set(stored.reviews) == {"security", "compliance"}


async def test_two_reviews_of_one_round_at_once_take_turns_without_a_conflict(bucket):
    """Both reviews of a round handled at the same moment in one process: each writes once,
    on the revision the other left, with no read and no lost compare-and-set."""
    kv = CountingKV(bucket)
    store = RoundStore(kv)
    await store.mutate("rel-9", digest("rel-9"), open_, likely_new=True)

    results = await asyncio.gather(
        store.mutate("rel-9", digest("rel-9"), lambda r: r.record(review("security", release_id="rel-9"), now=NOW)),
        store.mutate("rel-9", digest("rel-9"), lambda r: r.record(review("compliance", release_id="rel-9"), now=NOW)),
    )

    assert all(result.changed for result in results)
    assert (kv.reads, kv.writes) == (0, 3)
    stored = await RoundStore(bucket).get("rel-9", digest("rel-9"))
    assert stored.state == RoundState.DECIDED and set(stored.reviews) == {"security", "compliance"}


async def test_another_replicas_write_is_never_lost(bucket):
    """A store writing on a revision another replica has moved past re-reads and keeps both reviews."""
    one, two = RoundStore(bucket), RoundStore(bucket)
    await one.mutate("rel-42", digest("rel-42"), open_, likely_new=True)  # `one` remembers revision 1

    await two.mutate("rel-42", digest("rel-42"), lambda r: r.record(review("security"), now=NOW))
    round_, changed, _ = await one.mutate("rel-42", digest("rel-42"), lambda r: r.record(review("compliance"), now=NOW))

    assert changed
    assert set(round_.reviews) == {"security", "compliance"} and round_.state == RoundState.DECIDED
    assert (await RoundStore(bucket).get("rel-42", digest("rel-42"))).model_dump() == round_.model_dump()


async def test_nothing_to_do_on_a_remembered_round_is_checked_against_the_bucket(bucket):
    """A deadline on a round remembered as awaiting its proposal, opened since by a replica, still decides it."""
    one, two = RoundStore(bucket), RoundStore(bucket)
    await one.mutate("rel-42", digest("rel-42"), lambda r: r.record(review("security"), now=NOW, known=KNOWN))  # early
    await two.mutate("rel-42", digest("rel-42"), open_)

    round_, changed, _ = await one.mutate("rel-42", digest("rel-42"), lambda r: r.expire(now=LATER))

    assert changed and round_.state == RoundState.DECIDED
    assert round_.outcome.missing == ["compliance"]


async def test_a_likely_new_round_that_exists_is_read_and_changed(bucket):
    """A proposal whose round a review already created: the create fails, the round is read and opened."""
    await RoundStore(bucket).mutate(
        "rel-42", digest("rel-42"), lambda r: r.record(review("security"), now=NOW, known=KNOWN)
    )

    round_, changed, _ = await RoundStore(bucket).mutate("rel-42", digest("rel-42"), open_, likely_new=True)

    assert changed and round_.state == RoundState.OPEN and set(round_.reviews) == {"security"}


async def test_a_duplicate_proposal_changes_nothing_even_when_likely_new(bucket):
    """The second opening of a round, from a store that never saw it, writes nothing."""
    await RoundStore(bucket).mutate("rel-42", digest("rel-42"), open_, likely_new=True)
    kv = CountingKV(bucket)

    round_, changed, _ = await RoundStore(kv).mutate("rel-42", digest("rel-42"), open_, likely_new=True)

    assert not changed and round_.state == RoundState.OPEN
    assert kv.writes == 1  # the create that found the round; nothing was written


async def test_the_remembered_rounds_are_bounded(bucket):
    """Beyond `remember` rounds the oldest is forgotten (and simply read again next time)."""
    kv = CountingKV(bucket)
    store = RoundStore(kv, remember=2)
    for release in ("rel-1", "rel-2", "rel-3"):
        await store.mutate(
            release,
            digest(release),
            lambda r: r.record(review("security", release_id=r.release_id), now=NOW, known=KNOWN),
        )

    await store.mutate(
        "rel-1", digest("rel-1"), lambda r: r.record(review("compliance", release_id="rel-1"), now=NOW, known=KNOWN)
    )
    await store.mutate(
        "rel-3", digest("rel-3"), lambda r: r.record(review("compliance", release_id="rel-3"), now=NOW, known=KNOWN)
    )

    assert kv.reads == 3 + 1  # the first three rounds, then rel-1 again; rel-3 was remembered


async def test_a_mutation_says_whether_its_own_write_decided_the_round(bucket):
    """`mutate` returns what happened: unchanged, changed, or changed and decided by this write."""
    store = RoundStore(bucket)
    opened = await store.mutate("rel-42", digest("rel-42"), open_, likely_new=True)
    assert (opened.changed, opened.decided) == (True, False)
    first = await store.mutate("rel-42", digest("rel-42"), lambda r: r.record(review("security"), now=NOW))
    assert (first.changed, first.decided) == (True, False)
    deciding = await store.mutate("rel-42", digest("rel-42"), lambda r: r.record(review("compliance"), now=NOW))
    assert (deciding.changed, deciding.decided) == (True, True)
    again = await store.mutate("rel-42", digest("rel-42"), lambda r: r.record(review("compliance"), now=NOW))
    assert (again.changed, again.decided) == (False, False)
    marked = await store.mutate("rel-42", digest("rel-42"), Round.mark_published)
    assert (marked.changed, marked.decided) == (True, False)
