"""Bounded in-flight work for one consumer: every message held is being kept alive.

A message a process has received but not started is invisible to per-handler in-progress
acks, so with a short `ack_wait` (or a slow model call ahead of it) JetStream redelivers it —
to this process or a replica — while it still waits: a second review of the same release,
and a delivery attempt spent for nothing (enough of them and a healthy message is
dead-lettered). FastStream's concurrent subscriber (`max_workers=N`) and nats-py's batched
`fetch` both park messages like that.

So the pool keeps alive *every* message it holds, from the moment it arrives: one ticker
sends in-progress acks for all of them (no task per message), at most `ack_wait / 3` apart.
At most `workers` handlers run at once; the pull feed (bus/pull.py) asks the server for no
more than the free slots, so a message rarely waits for a worker, and when it does (a burst
after a reconnect) it waits kept alive. The rest of a burst waits in the stream (bounded by
the consumer's `max_ack_pending` across replicas), not in a service's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class Acknowledgeable(Protocol):
    async def in_progress(self) -> Any: ...

    async def nack(self, delay: float | None = None) -> Any: ...


def ack_period(ack_wait_seconds: float) -> float:
    """How often to say "still working": well before `ack_wait` runs out."""
    return max(ack_wait_seconds / 3, 0.5)


class _Held:
    __slots__ = ("msg", "last_beat", "started", "returned")

    def __init__(self, msg: Acknowledgeable, now: float) -> None:
        self.msg, self.last_beat = msg, now
        self.started = self.returned = False


class InFlight:
    """At most `workers` handlers at a time; every message held is kept alive."""

    def __init__(
        self,
        workers: int,
        *,
        ack_wait_seconds: float,
        on_error: Callable[[BaseException], None] | None = None,
        on_done: Callable[[], None] | None = None,
    ):
        self.workers = workers
        self.every = ack_period(ack_wait_seconds)
        self.on_done = on_done  # a slot was freed (the pull feed tops up)
        self._slots = asyncio.Semaphore(workers)
        self._held: dict[asyncio.Task, _Held] = {}
        self._ticker: asyncio.Task | None = None
        self._returning: set[asyncio.Task] = set()
        self._on_error = on_error
        self.draining = False
        self.most_held = 0  # high-water mark, for tests and diagnostics

    @property
    def held(self) -> int:
        """Messages of this consumer in this process: running or waiting for a slot."""
        return len(self._held)

    @property
    def free(self) -> int:
        """Slots no held message has taken: what the pull feed may ask for."""
        return 0 if self.draining else max(self.workers - len(self._held), 0)

    def start(self, msg: Acknowledgeable, work: Callable[[], Awaitable[None]]) -> None:
        """Hold `msg` (kept alive from now) and run `work` as soon as a slot is free."""
        loop = asyncio.get_running_loop()
        if self.draining:
            # Stopping: hand it straight back so a replica (or our successor) takes it.
            returned = loop.create_task(_quietly(msg.nack()))
            self._returning.add(returned)
            returned.add_done_callback(self._returning.discard)
            return
        held = _Held(msg, loop.time())
        task = loop.create_task(self._run(held, work))
        self._held[task] = held
        self.most_held = max(self.most_held, len(self._held))
        task.add_done_callback(self._finished)
        if self._ticker is None:
            self._ticker = loop.create_task(self._keep_alive())

    async def _run(self, held: _Held, work: Callable[[], Awaitable[None]]) -> None:
        try:
            async with self._slots:
                if held.returned:  # handed back by `drain` while it waited for a slot
                    return
                held.started = True
                await work()
        except Exception as exc:  # noqa: BLE001 - ack/nak itself failed (NATS away): JetStream redelivers
            if self._on_error:
                self._on_error(exc)

    def _finished(self, task: asyncio.Task) -> None:
        self._held.pop(task, None)
        if self.on_done:
            self.on_done()

    async def _keep_alive(self) -> None:
        # Ticks twice per period and beats whatever has gone half a period without one, so
        # no held message goes longer than `every` without an in-progress ack.
        half = self.every / 2
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(half)
            now = loop.time()
            for held in list(self._held.values()):
                if not held.returned and now - held.last_beat >= half:
                    held.last_beat = now
                    with contextlib.suppress(Exception):  # NATS away: the next beat tries again
                        await held.msg.in_progress()

    def refuse_new(self) -> None:
        """From now on, hand every arriving message straight back (a replica takes it)."""
        self.draining = True

    async def drain(self, timeout: float) -> int:
        """Take no more messages, hand back those not started, wait up to `timeout` for the
        rest. Returns how many were still running."""
        self.draining = True
        for held in self._held.values():
            if not held.started and not held.returned:
                held.returned = True
                await _quietly(held.msg.nack())
        pending = set(self._held)
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        if self._ticker is not None:  # what is still running is abandoned with the process
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        return sum(1 for task in pending if not task.done())


async def _quietly(call: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await call
