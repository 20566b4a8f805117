"""Continuous pull: JetStream pull requests kept outstanding for exactly the free workers.

FastStream 0.7's pull subscriber gets messages with nats-py's `fetch`: either one message per
request (a round trip to the server before every message, and an idle wait with a timer per
message), or a batch whose lingering request parks late deliveries where no in-progress ack
reaches them (see bus/inflight.py). So a service asks the way nats.go's `Consume` does: it
subscribes (a FastStream core subscriber) to an inbox of its own and sends pull requests to
its durable consumer with that inbox as the reply subject, for as many messages as its pool
has free slots. Messages arrive the moment they are published and each starts on arrival;
the next request goes out when slots free up, ahead of the next message rather than after it.

Accounting: `requested` is what we asked for and have not been given yet. A delivered message
lowers it; the end of a request (`408 Request Timeout`, or a `409` with
`Nats-Pending-Messages`) hands back what it did not deliver. Requests carry an idle heartbeat:
when neither a message nor a heartbeat arrives for two intervals while we wait (the server
restarted, the connection was replaced), the outstanding requests are presumed gone and asked
for again. A process therefore holds at most `workers` messages plus, just after such a
reset, what the old requests still deliver — every one of them kept alive from arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from nats.aio.msg import Msg
from nats.nuid import NUID

STATUS = "Status"
PENDING_MESSAGES = "Nats-Pending-Messages"
_nuid = NUID()


def new_inbox(label: str) -> str:
    """A subject only this process listens on: `_INBOX.<label>.<unique>`."""
    return f"_INBOX.{label}.{_nuid.next().decode()}"


class PullFeed:
    """Keeps one durable pull consumer delivering up to `free()` messages to `inbox`."""

    def __init__(
        self,
        *,
        stream: str,
        durable: str,
        inbox: str,
        free: Callable[[], int],
        expires_seconds: float = 30.0,
        heartbeat_seconds: float = 2.0,
        api_prefix: str = "$JS.API",
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        if not 0 < heartbeat_seconds < expires_seconds:
            raise ValueError("the idle heartbeat must be shorter than a request's expiry")
        self.stream, self.durable, self.inbox = stream, durable, inbox
        self.subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.free = free
        self.expires = expires_seconds
        self.heartbeat = heartbeat_seconds
        self.requested = 0
        self.requests_sent = 0  # for tests and diagnostics
        self._on_error = on_error
        self._nc: Any = None
        self._heard = time.monotonic()
        self._paused_until = 0.0
        self._reconnects = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self, nc: Any) -> None:
        """Begin asking; call once the inbox subscription is live (or deliveries are dropped)."""
        self._nc = nc
        self._reconnects = nc.stats.get("reconnects", 0)
        self._heard = time.monotonic()
        self._tasks = [asyncio.create_task(self._top_up_when_woken()), asyncio.create_task(self._watch())]
        await self.top_up()

    async def stop(self) -> None:
        """Ask for nothing more. What outstanding requests still deliver is the pool's to refuse;
        once the inbox is unsubscribed the server drops the requests (it checks interest)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._nc = None

    def wake(self) -> None:
        """A slot was freed: top up soon (callable from a done-callback)."""
        self._wake.set()

    # --- what arrives on the inbox ------------------------------------------------------

    def heard(self, msg: Msg) -> bool:
        """Account for `msg`; True when there is nothing to process (a status message, or
        something that is no delivery of our consumer)."""
        status = msg.headers.get(STATUS) if msg.headers else None
        if not status:
            if not (msg.reply or "").startswith("$JS.ACK."):
                if self._on_error:  # published to our inbox by someone else: not ours to ack
                    self._on_error(f"ignored a message on the inbox that no pull request delivered ({msg.subject})")
                return True
            self._heard = time.monotonic()
            self.requested = max(self.requested - 1, 0)
            return False
        self._heard = time.monotonic()
        if status == "100":  # idle heartbeat: the requests are alive
            return True
        pending = msg.headers.get(PENDING_MESSAGES)
        if pending is not None and pending.isdigit():
            # a request ended (expired, interest gone, batch complete) with this much undelivered
            self.requested = max(self.requested - int(pending), 0)
        else:
            # leadership change, consumer deleted, too many waiting…: start over, a moment later
            self.requested = 0
            self._paused_until = time.monotonic() + 1.0
            if self._on_error:
                self._on_error(f"{status} {msg.headers.get('Description', '')}".strip())
        self.wake()
        return True

    # --- asking -------------------------------------------------------------------------

    async def top_up(self) -> None:
        """Request what the free slots can take beyond what is already requested."""
        nc = self._nc
        if nc is None or time.monotonic() < self._paused_until or not nc.is_connected:
            return
        want = self.free() - self.requested
        if want < 1:
            return
        if self.requested == 0:
            self._heard = time.monotonic()  # the heartbeat clock starts with a request
        self.requested += want
        request = {
            "batch": want,
            "expires": int(self.expires * 1e9),
            "idle_heartbeat": int(self.heartbeat * 1e9),
        }
        try:
            await nc.publish(self.subject, json.dumps(request).encode(), reply=self.inbox)
        except Exception as exc:  # noqa: BLE001 - not sent: the watchdog asks again
            self.requested -= want
            if self._on_error:
                self._on_error(f"pull request not sent: {type(exc).__name__}: {exc}")
            return
        self.requests_sent += 1

    async def _top_up_when_woken(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.top_up()

    async def _watch(self) -> None:
        """Start over when the requests went silent or the connection was replaced."""
        tick = min(self.heartbeat / 2, 1.0)
        while True:
            await asyncio.sleep(tick)
            nc = self._nc
            if nc is None:
                continue
            reconnects = nc.stats.get("reconnects", 0)
            silent = self.requested > 0 and time.monotonic() - self._heard > 2 * self.heartbeat
            if reconnects != self._reconnects or silent:
                self._reconnects = reconnects
                self.requested = 0
            await self.top_up()
