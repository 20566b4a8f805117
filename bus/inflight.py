"""Bounded in-flight work for one consumer: every message held is being kept alive.

A message a process has fetched but not started is invisible to the in-progress acks of the
handlers, so with a short `ack_wait` (or a slow model call ahead of it) JetStream redelivers
it — to this process or a replica — while it still waits: a second review of the same release,
and a delivery attempt spent for nothing (enough of them and a healthy message is
dead-lettered). Two places park messages like that: FastStream's concurrent subscriber
(`max_workers=N` queues fetched messages until a worker is free), and nats-py's batched
`fetch(batch=N)`, whose pull request lingers after `fetch` returns and drops late deliveries
into a buffer that only the next `fetch` reads.

So the runtime fetches one message at a time (a request for one is complete when it is
answered) and hands it to `admit`, which starts it at once — its in-progress acks begin the
moment it arrives — and returns only when fewer than `workers` messages are held, which holds
the fetch loop back. A process holds at most `workers` messages of a consumer, each with its
ack deadline extended; the rest of a burst waits in the stream (bounded by the consumer's
`max_ack_pending` across replicas), not in a service's memory.
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


@contextlib.asynccontextmanager
async def keep_alive(msg: Acknowledgeable, *, every: float):
    """Send in-progress acks while the body runs, so a slow message is never redelivered."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):  # NATS away: the next beat tries again
                await msg.in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class InFlight:
    """At most `workers` handlers at a time; fetched messages wait here, kept alive."""

    def __init__(self, workers: int, *, ack_wait_seconds: float, on_error: Callable[[BaseException], None] | None = None):
        self.workers = workers
        self.every = ack_period(ack_wait_seconds)
        self._slots = asyncio.Semaphore(workers)
        self._tasks: set[asyncio.Task] = set()
        self._changed = asyncio.Event()
        self._on_error = on_error
        self.draining = False
        self.most_held = 0  # high-water mark, for tests and diagnostics

    @property
    def held(self) -> int:
        """Messages of this consumer in this process: running or waiting for a slot."""
        return len(self._tasks)

    async def admit(self, msg: Acknowledgeable, work: Callable[[], Awaitable[None]]) -> None:
        """Start `work` for `msg` now; return once there is room to fetch more."""
        if self.draining:
            # Stopping: hand it straight back so a replica (or our successor) takes it.
            with contextlib.suppress(Exception):
                await msg.nack()
            return
        task = asyncio.create_task(self._run(msg, work))
        self._tasks.add(task)
        self.most_held = max(self.most_held, len(self._tasks))
        task.add_done_callback(self._finished)
        while len(self._tasks) >= self.workers:
            self._changed.clear()
            await self._changed.wait()

    async def _run(self, msg: Acknowledgeable, work: Callable[[], Awaitable[None]]) -> None:
        try:
            async with keep_alive(msg, every=self.every), self._slots:
                await work()
        except Exception as exc:  # noqa: BLE001 - ack/nak itself failed (NATS away): JetStream redelivers
            if self._on_error:
                self._on_error(exc)

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._changed.set()

    async def drain(self, timeout: float) -> int:
        """Take no more messages; wait up to `timeout` for those held. Returns how many were left."""
        self.draining = True
        pending = set(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        return sum(1 for task in pending if not task.done())
