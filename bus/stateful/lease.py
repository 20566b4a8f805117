"""A lease on one KV key: one holder at a time, lost unless renewed, fenced by its revision.

The key (`<agent>.lease` in the daemons bucket) says who holds it. Every write is a
compare-and-set on the key's last revision and carries a TTL (`Nats-TTL`), so a holder that stops
renewing — killed, frozen, cut off from NATS — loses the lease when the server expires the key,
and the next standby's create wins. The revision at which a holder acquired the lease is its
*fencing token*; it is written into every checkpoint (bus/stateful/checkpoint.py).

A holder counts its lease from the moment it *sent* its last successful write, on its own
monotonic clock: it believes it holds the lease a little less long than the server keeps the key,
never longer. A process frozen (SIGSTOP) past that moment finds, on waking, that its lease is
over before it does anything as the holder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from bus.errors import LeaseLost

# What the server answers a write whose expected last subject sequence is stale.
_WRONG_LAST_SEQUENCE = (10071, 10164)
# The holder gives the lease up this much before the server could expire it (measured: the
# server expires a key within ~10 ms after its TTL).
SAFETY_SECONDS = 0.1
# A KV delete or purge, or the marker the server leaves when a key's TTL ends.
_GONE_HEADERS = ("KV-Operation", "Nats-Marker-Reason")


class Lease:
    def __init__(
        self,
        js: JetStreamContext,
        *,
        bucket: str,
        key: str,
        holder: str,
        ttl: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._js = js
        self._stream = f"KV_{bucket}"
        self._subject = f"$KV.{bucket}.{key}"
        self.holder = holder
        self.ttl = ttl
        self._clock = clock
        self.token: int | None = None  # the revision it was acquired at: the fencing token
        self.revision: int | None = None  # the revision of its last write
        self._value = b""
        self._until = 0.0

    def held(self) -> bool:
        """Does this instance hold the lease now, by its own (cautious) reckoning?"""
        return self.token is not None and self._clock() < self._until

    def ensure(self) -> None:
        """Raise LeaseLost unless the lease is held: call it before acting as the holder."""
        if self.token is None:
            raise LeaseLost("this instance does not hold the lease")
        if self._clock() >= self._until:
            raise LeaseLost(f"the lease was not renewed within {self.ttl} s (frozen, or cut off from NATS)")

    async def current(self) -> tuple[dict | None, int]:
        """(who holds the lease, or None when nobody does; the key's last revision, 0 if none)."""
        try:
            msg = await self._js.get_msg(self._stream, subject=self._subject)
        except NotFoundError:
            return None, 0
        headers = msg.headers or {}
        if not msg.data or any(h in headers for h in _GONE_HEADERS):
            return None, msg.seq
        try:
            return json.loads(msg.data), msg.seq
        except ValueError:
            return {"holder": "?"}, msg.seq

    async def acquire(self, details: dict | None = None) -> bool:
        """Take the lease if nobody holds it: True if this call did. Of several standbys racing
        for it, exactly one wins (each writes expecting the same last revision)."""
        holder, last = await self.current()
        if holder is not None:
            return False
        value = json.dumps({"holder": self.holder, **(details or {})}).encode()
        revision = await self._write(value, last)
        if revision is None:
            return False
        self.token = self.revision = revision
        self._value = value
        return True

    async def renew(self) -> None:
        """Extend the lease for another `ttl`; LeaseLost when someone else holds it now."""
        if self.token is None or self.revision is None:
            raise LeaseLost("this instance does not hold the lease")
        revision = await self._write(self._value, self.revision)
        if revision is None:
            self.forget()
            raise LeaseLost("another instance took the lease")
        self.revision = revision

    async def release(self) -> None:
        """Give the lease up at once (a clean stop), so a standby need not wait for it to expire."""
        if self.revision is not None and self.held():
            try:
                await self._js.publish(
                    self._subject,
                    b"",
                    headers={"KV-Operation": "DEL", "Nats-Expected-Last-Subject-Sequence": str(self.revision)},
                )
            except APIError as exc:
                if exc.err_code not in _WRONG_LAST_SEQUENCE:
                    raise
        self.forget()

    def forget(self) -> None:
        self.token = self.revision = None
        self._until = 0.0

    async def _write(self, value: bytes, last: int) -> int | None:
        """Write expecting `last` as the key's revision: the new revision, or None when stale."""
        sent = self._clock()
        try:
            ack = await self._js.publish(
                self._subject,
                value,
                headers={"Nats-Expected-Last-Subject-Sequence": str(last), "Nats-TTL": f"{self.ttl}s"},
            )
        except APIError as exc:
            if exc.err_code in _WRONG_LAST_SEQUENCE:
                return None
            raise
        self._until = sent + self.ttl - SAFETY_SECONDS
        return ack.seq
