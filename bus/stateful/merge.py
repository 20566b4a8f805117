"""Several streams' events, one at a time, in the order the server stored them.

Each stream is read by its own reader (bus/stateful/reader.py) into a buffer of its own. The
applier takes the buffered event stored earliest (by the server's timestamp, then stream name
and sequence). While a stream is *behind* — the server says messages are stored for it that
have not been delivered yet — and its buffer is empty, the applier waits for it (at most
`CATCH_UP_WAIT_SECONDS`), since its next event may be the earliest of all.

So after a restart, when every stream has a backlog, events are applied in stored order across
streams: the same interleaving however often the backlog is replayed, and one that follows
cause and effect (a proposal is stored before the reviews of it, which are stored before the
outcome). Live, with nothing behind, events are applied as they arrive, earliest first.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from nats.aio.msg import Msg

from bus.stateful.appliers import Position

CATCH_UP_WAIT_SECONDS = 2.0  # the longest the applier waits for a stream that is behind
BUFFER = 1024  # events read ahead per stream; a full buffer holds its reader back


class _Feed:
    def __init__(self, capacity: int) -> None:
        self.items: deque[Msg] = deque()
        self.room = asyncio.Semaphore(capacity)
        self.behind = True  # until its reader says otherwise


class Merge:
    def __init__(self, streams: list[str], *, capacity: int = BUFFER, clock: Callable[[], float] = time.monotonic):
        self._feeds = {stream: _Feed(capacity) for stream in streams}
        self._arrived = asyncio.Event()
        self._clock = clock

    async def put(self, stream: str, msg: Msg) -> None:
        """A reader hands on `msg` (waits while the stream's buffer is full)."""
        feed = self._feeds[stream]
        await feed.room.acquire()
        feed.items.append(msg)
        feed.behind = msg.metadata.num_pending > 0
        self._arrived.set()

    def pending(self, stream: str, count: int) -> None:
        """A reader says how many messages the server holds for it, not yet delivered."""
        self._feeds[stream].behind = count > 0
        self._arrived.set()

    def wake(self) -> None:
        self._arrived.set()

    def clear(self) -> None:
        """Forget everything buffered (the applier stopped; its readers are gone)."""
        for feed in self._feeds.values():
            while feed.items:
                feed.items.popleft()
                feed.room.release()
            feed.behind = True

    async def next(self, quiet: float) -> tuple[str, Msg] | None:
        """The next event to apply, or None when none came within `quiet` seconds."""
        start = self._clock()
        while True:
            self._arrived.clear()
            ready = [(stream, feed) for stream, feed in self._feeds.items() if feed.items]
            waiting = any(feed.behind and not feed.items for feed in self._feeds.values())
            waited = self._clock() - start
            if not ready:
                if waited >= quiet:
                    return None
                deadline = quiet
            elif waiting and waited < CATCH_UP_WAIT_SECONDS:
                deadline = CATCH_UP_WAIT_SECONDS
            else:
                stream, feed = min(ready, key=lambda pair: _order(pair[0], pair[1].items[0]))
                feed.room.release()
                return stream, feed.items.popleft()
            try:
                async with asyncio.timeout(deadline - waited):  # not wait_for: it can swallow a cancellation
                    await self._arrived.wait()
            except TimeoutError:
                pass


def _order(stream: str, msg: Msg) -> tuple:
    metadata = msg.metadata
    return Position(stream, metadata.sequence.stream, metadata.timestamp).stored_order()
