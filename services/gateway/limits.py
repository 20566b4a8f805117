"""Ingress limits per client, counted on the bus so they hold across every gateway replica:
a rate (requests per fixed window) and a cap on requests held open (`?wait`, event streams).

    LimitExceeded        the client is over a limit: answer 429 with `Retry-After: retry_after`
    LimitsUnavailable    the bus did not answer in time, so nothing could be counted: answer 503

Both counters live in the gateway's KV bucket (provisioned with limit markers, so every key
carries its own TTL and cleans itself up):

- `rate.<client>.<window index>`: how many requests the client made in that window, raised by
  compare-and-set, so two replicas racing for the last place cannot both win it. The key
  outlives its window by one window and then expires.
- `held.<client>.<slot>`: one key per request held open, at most `per_client` slots. A holder
  renews its key's TTL (the lease) while it holds it, so a gateway that dies holding places
  gives them back when their leases end, with nobody cleaning up after it.

Both fail closed. The counters live on the same bus every request is going to use: when the bus
cannot answer a KV read in `timeout`, the request's own publish or status read would stall or
fail as well, so answering 503 at once costs little availability and keeps a flood off a bus
that is already struggling ("load is shed at the door"). Letting requests through uncounted
would turn a slow bus into an unlimited one exactly when limits matter most.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import random
import time
import weakref
from collections.abc import AsyncIterator, Callable
from types import TracebackType

import nats.errors
import structlog
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = structlog.get_logger(__name__)

# How often a rate count may lose a compare-and-set race before the request is refused. Races
# are only between replicas counting the same client at the same moment (each client has its
# own key, and a replica counts one client's requests one at a time), so losing this many in a
# row means the client is bursting through many replicas at once: a 429 is right for it, and
# the bus is spared unbounded retries.
CAS_ATTEMPTS = 10
# When to retry after the bus failed to answer: a client reconnects within a second or two
# after a NATS restart (reconnect_time_wait), so a few seconds is enough to find it back.
UNAVAILABLE_RETRY_AFTER = 5.0


class LimitExceeded(Exception):
    """The client is over one of its limits: `detail` says which, how many and when to retry;
    `retry_after` is in seconds (for the `Retry-After` header, rounded up)."""

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class LimitsUnavailable(Exception):
    """The bus did not answer in time (or the connection is gone), so the request could not be
    counted and is refused (503 with `Retry-After: retry_after`). The cause is chained."""

    def __init__(self, detail: str, *, retry_after: float = UNAVAILABLE_RETRY_AFTER) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


def client_token(client: str) -> str:
    """A KV key token for any client id (ids carry `:`, `#` and other characters keys refuse)."""
    return hashlib.sha256(client.encode()).hexdigest()[:32]


def current_window(now: float, window: float) -> tuple[int, float]:
    """The fixed window `now` falls in: its index, and the seconds left until it ends.

    Every replica computes it from its own wall clock, so replicas whose clocks differ by `s`
    seconds disagree about which window a request is in for `s` seconds around each boundary;
    NTP keeps that to milliseconds."""
    index = math.floor(now / window)
    return index, (index + 1) * window - now


class RateLimiter:
    """At most `limit` requests per client in each fixed window of `window` seconds, counted in
    `kv` and so shared by every replica using the same bucket.

    Costs two round trips per admitted request (read the count, compare-and-set it) and two
    more per race lost to another replica; one for the first refusal of a client in a window,
    none for the refusals after it."""

    def __init__(
        self,
        kv: KeyValue,
        *,
        limit: int,
        window: float,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kv = kv
        self.limit = limit
        self.window = window
        self.timeout = timeout
        self.clock = clock
        # A replica counts each client's requests one at a time, so compare-and-set races are
        # between replicas only (one racer each), never between the requests of one burst.
        self._counting: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # Clients known to have used up the current window. A count only grows within its
        # window, so they stay refused until it ends: refusing them again costs the bus nothing.
        self._full_window: int | None = None
        self._full: set[str] = set()

    async def admit(self, client: str) -> None:
        """Count one request of `client`, or raise LimitExceeded when its window is used up
        (LimitsUnavailable when the bus does not answer within `timeout`)."""
        index, left = current_window(self.clock(), self.window)
        token = client_token(client)
        key = f"rate.{token}.{index}"
        async with _on_the_bus("count a request", self.timeout), self._counting.setdefault(token, asyncio.Lock()):
            if self._full_window == index and token in self._full:
                raise self._exceeded(left)
            for attempt in range(CAS_ATTEMPTS):
                value, last = await _latest(self.kv, key)
                used = int(value) if value else 0
                if used >= self.limit:
                    self._note_full(token, index)
                    raise self._exceeded(left)
                # Expires a window after the one it counts: late enough for a replica whose
                # clock lags, early enough that no client leaves keys behind for long.
                if await _swap(self.kv, key, str(used + 1).encode(), last=last, ttl=2 * self.window) is not None:
                    return
                await asyncio.sleep(_backoff(attempt))
        raise LimitExceeded(
            f"Too many requests at once from this client to count them ({CAS_ATTEMPTS} tries); retry in 1 s.",
            retry_after=1.0,
        )

    def _exceeded(self, left: float) -> LimitExceeded:
        return LimitExceeded(
            f"Rate limit reached: {self.limit} requests per {self.window:g} s; retry in {math.ceil(left)} s.",
            retry_after=left,
        )

    def _note_full(self, token: str, index: int) -> None:
        if index != self._full_window:
            self._full_window, self._full = index, set()
        self._full.add(token)


class HeldRequests:
    """At most `per_client` requests per client held open at once, across every replica.

    `async with held.hold(client) as hold:` around the part of a request that waits. Taking a
    place costs one read per taken slot tried and one write; holding it, one write every
    `lease / 3`; giving it back, one write."""

    def __init__(
        self,
        kv: KeyValue,
        *,
        per_client: int,
        lease: float,
        timeout: float = 2.0,
        retry_after: float = 1.0,
    ) -> None:
        self.kv = kv
        self.per_client = per_client
        self.lease = lease
        self.timeout = timeout
        # When a place frees up cannot be known (a held request ends when its outcome comes,
        # or its client goes away); a client told to come back soon finds the first to end.
        self.retry_after = retry_after

    def hold(self, client: str) -> Hold:
        """One of `client`'s places, taken on entering (LimitExceeded when all are taken,
        LimitsUnavailable when the bus does not answer) and given back on leaving."""
        return Hold(self, client)

    async def _take(self, client: str) -> tuple[str, int]:
        token = client_token(client)
        # Start at a random slot: holders spread over the slots, so a new hold rarely reads
        # taken ones before a free one, and two replicas rarely race for the same slot.
        first = random.randrange(self.per_client)
        async with _on_the_bus("take a place for a held request", self.timeout):
            for n in range(self.per_client):
                key = f"held.{token}.{(first + n) % self.per_client}"
                value, last = await _latest(self.kv, key)
                if value is not None:
                    continue  # held by a live request
                if (revision := await _swap(self.kv, key, b"held", last=last, ttl=self.lease)) is not None:
                    return key, revision
                # another request took this slot first: try the next
        raise LimitExceeded(
            f"Too many requests held open: {self.per_client} at once per client (?wait and event streams); "
            f"retry in {math.ceil(self.retry_after)} s or when one of them ends.",
            retry_after=self.retry_after,
        )


class Hold:
    """A held request's place: taken on entering, renewed while held, given back on leaving.

    `lost` turns True when a renewal found the place taken by another request. That happens
    only if this holder missed its lease (a pause longer than `lease`: a GC stall, a frozen VM,
    a bus away for a whole lease), the key expired and another request took the slot. The hold
    then stops renewing and does not give the place back (that would free the other request's
    place). The request itself goes on, uncounted: until it ends, its client may hold one more
    request than `per_client`. Cutting a request off mid-answer over bookkeeping would be worse;
    a caller that prefers to end a long event stream can check `lost`."""

    def __init__(self, held: HeldRequests, client: str) -> None:
        self._held = held
        self.client = client
        self.key: str | None = None
        self.lost = False
        self._revision = 0
        self._leaving = asyncio.Event()
        self._renewing: asyncio.Task | None = None

    async def __aenter__(self) -> Hold:
        self.key, self._revision = await self._held._take(self.client)
        self._renewing = asyncio.create_task(self._renew())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Let a renewal in progress finish rather than cancel it: cancelled after the server
        # wrote it but before its revision came back, the give-back below would miss and the
        # place stay taken until its lease ends.
        self._leaving.set()
        if self._renewing is not None:
            await self._renewing
        if self.lost or self.key is None:
            return
        try:
            async with _on_the_bus("give back a held place", self._held.timeout):
                # An empty value with a short TTL, not a delete: free at once for the next
                # holder, and gone a moment later, where a delete would leave a tombstone per
                # slot per client in the bucket for ever.
                await _swap(self._held.kv, self.key, b"", last=self._revision, ttl=1)
        except LimitsUnavailable:
            pass  # the lease gives the place back within `lease` seconds

    async def _renew(self) -> None:
        every = self._held.lease / 3  # three chances to renew before the lease runs out
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._leaving.wait(), every)
                return
            try:
                async with _on_the_bus("renew a held place", self._held.timeout):
                    revision = await _swap(self._held.kv, self.key, b"held", last=self._revision, ttl=self._held.lease)
            except LimitsUnavailable:
                continue  # the bus is away: try again, the lease has time for it
            if revision is None:
                self.lost = True
                log.warning("held place lost", key=self.key, lease=self._held.lease)
                return
            self._revision = revision


@contextlib.asynccontextmanager
async def _on_the_bus(doing: str, timeout: float) -> AsyncIterator[None]:
    """Bound KV work by `timeout`, and turn any failure of the bus into LimitsUnavailable, so
    the HTTP layer answers 503 instead of a 500 or a request hanging on a stalled bus."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except TimeoutError as exc:
        raise LimitsUnavailable(
            f"Could not {doing} within {timeout:g} s: the bus is slow or unreachable; retry shortly."
        ) from exc
    except (nats.errors.Error, OSError) as exc:
        raise LimitsUnavailable(f"Could not {doing}: {exc}; retry shortly.") from exc


async def _latest(kv: KeyValue, key: str) -> tuple[bytes | None, int]:
    """The key's value (None when absent, expired or given back) and the revision to
    compare-and-set against (0 when the key has no message at all)."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError as missing:
        # a delete's tombstone still has a revision, and a write must name it
        return None, missing.entry.revision if missing.entry is not None else 0
    # an expired key reads as its limit marker: no value, but a revision of its own
    return entry.value or None, entry.revision


async def _swap(kv: KeyValue, key: str, value: bytes, *, last: int, ttl: float) -> int | None:
    """Write `value` with a TTL of its own if the key's latest revision is still `last`: the
    new revision, or None when another writer got there first."""
    try:
        # nats-py 2.16's public update() takes no msg_ttl; _update is what its create() calls.
        return await kv._update(key, value, last=last, msg_ttl=max(1, math.ceil(ttl)))
    except KeyWrongLastSequenceError:
        return None


def _backoff(attempt: int) -> float:
    """Full jitter (random up to 2 ms doubled per lost race, at most 50 ms): racers that all
    lost to the same winner spread out instead of colliding again."""
    return random.uniform(0, min(0.05, 0.002 * 2**attempt))
