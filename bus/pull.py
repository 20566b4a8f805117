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
`Nats-Pending-Messages`) hands back what it did not deliver. Since the server does not say
which request a message answers, the count can only drift upwards (a request refused outright,
a lost 408): so the feed also remembers when each request expires, and never believes more is
outstanding than the requests that may still be alive. Requests carry an idle heartbeat: when
neither a message nor a heartbeat arrives for two intervals while we wait (the server
restarted), or the connection was replaced, or the consumer's leader changed, the outstanding
requests are presumed gone and asked for again. A process therefore holds at most `workers`
messages plus, just after such a reset, what old requests still deliver — every one of them
kept alive from arrival (bus/inflight.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from nats.aio.msg import Msg
from nats.nuid import NUID

STATUS = "Status"
PENDING_MESSAGES = "Nats-Pending-Messages"
# Ends every outstanding request of this consumer, not just one.
_STARTING_OVER = ("Leadership Change", "Consumer Deleted", "No Responders")
_nuid = NUID()


def new_inbox(prefix: str) -> str:
    """A subject only this process listens on: `<prefix>.<unique>` (prefix `_INBOX.<identity>`)."""
    return f"{prefix}.{_nuid.next().decode()}"


class PullFeed:
    """Keeps one durable pull consumer delivering up to `free()` messages to `inbox`."""

    def __init__(
        self,
        *,
        stream: str,
        durable: str,
        inbox: str,
        free: Callable[[], int],
        expires_seconds: float = 15.0,
        heartbeat_seconds: float = 2.0,
        api_prefix: str = "$JS.API",
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        if not 0 < 2 * heartbeat_seconds <= expires_seconds:
            # the server refuses a request whose heartbeat is over half its expiry
            raise ValueError("the idle heartbeat must be at most half a request's expiry")
        self.stream, self.durable, self.inbox = stream, durable, inbox
        self.subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.free = free
        self.batch = max(1, free() // 2)
        self.expires = expires_seconds
        self.heartbeat = heartbeat_seconds
        self.requested = 0
        self.requests_sent = 0  # for tests and diagnostics
        self._alive: deque[tuple[float, int]] = deque()  # (surely gone at, count) per request sent
        self._alive_total = 0  # their counts summed: more than this cannot be outstanding
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
        await asyncio.gather(*tasks, return_exceptions=True)  # a cancel of our caller still propagates
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
                # published to our inbox by someone else: not ours to ack
                self._report(f"ignored a message on the inbox that no pull request delivered ({msg.subject})")
                return True
            self._heard = time.monotonic()
            self.requested = max(self.requested - 1, 0)
            return False
        self._heard = time.monotonic()
        if status == "100":  # idle heartbeat: the requests are alive
            return True
        description = msg.headers.get("Description", "")
        pending = msg.headers.get(PENDING_MESSAGES)
        if pending is not None and pending.isdigit():
            # a request ended (expired, interest gone, batch complete) with this much undelivered
            self.requested = max(self.requested - int(pending), 0)
        elif status == "503" or description in _STARTING_OVER:
            self._start_over(pause=1.0)
            self._report(f"{status} {description}: asking again")
        else:
            # one request refused outright (too many waiting, a limit exceeded); we cannot tell
            # which, so the count stays high until that request's expiry corrects it
            self._paused_until = time.monotonic() + 1.0
            self._report(f"pull request refused: {status} {description}")
        self.wake()
        return True

    def _start_over(self, pause: float = 0.0) -> None:
        self.requested = 0
        self._alive.clear()
        self._alive_total = 0
        self._paused_until = time.monotonic() + pause

    def _report(self, problem: str) -> None:
        if self._on_error:
            self._on_error(problem)

    # --- asking -------------------------------------------------------------------------

    async def top_up(self) -> None:
        """Request what the free slots can take beyond what is already requested."""
        nc = self._nc
        if nc is None or time.monotonic() < self._paused_until or not nc.is_connected:
            return
        want = self.free() - self.requested
        # Ask in batches of at least half the workers once some are outstanding: half the
        # requests under load, and no wait when idle (what was asked for still arrives).
        if want < 1 or (self.requested and want < self.batch):
            return
        now = time.monotonic()
        if self.requested == 0:
            self._heard = now  # the heartbeat clock starts with a request
        self.requested += want
        self._alive.append((now + self.expires + 2 * self.heartbeat, want))
        self._alive_total += want
        request = {
            "batch": want,
            "expires": int(self.expires * 1e9),
            "idle_heartbeat": int(self.heartbeat * 1e9),
        }
        try:
            await nc.publish(self.subject, json.dumps(request).encode(), reply=self.inbox)
        except Exception as exc:  # noqa: BLE001 - not sent: the watchdog asks again
            self.requested = max(self.requested - want, 0)  # its entry expires unused
            self._report(f"pull request not sent: {type(exc).__name__}: {exc}")
            return
        self.requests_sent += 1

    async def _top_up_when_woken(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.top_up()

    async def _watch(self) -> None:
        """Start over when the requests went silent or the connection was replaced; forget
        requests that have surely expired."""
        tick = min(self.heartbeat / 2, 1.0)
        while True:
            await asyncio.sleep(tick)
            nc = self._nc
            if nc is None:
                continue
            now = time.monotonic()
            reconnects = nc.stats.get("reconnects", 0)
            silent = self.requested > 0 and now - self._heard > 2 * self.heartbeat
            if reconnects != self._reconnects or silent:
                self._reconnects = reconnects
                self._start_over()
            while self._alive and self._alive[0][0] <= now:
                self._alive_total -= self._alive.popleft()[1]
            self.requested = min(self.requested, self._alive_total)
            await self.top_up()
