"""The kill loop of a chaos run: each kill strikes while rounds are open and (after the first)
once the mesh has decided something since the previous victim came back (`schedule.due`),
records how many rounds were open, and brings its victim back after a seeded downtime.

Open rounds are counted twice: from the run's own bookkeeping at the moment of the kill
(proposals acknowledged whose outcome nobody has heard yet), and, when NATS is up, from the
rounds KV just after it (rounds not decided, or decided with the outcome not yet published).
A kill with no round open, or with nothing to kill, hit nothing: it is `idle`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bus.ops.chaos.faults import Fault
from bus.ops.chaos.progress import Progress
from bus.ops.chaos.schedule import due, kill_marks

KV_READ_SECONDS = 3.0  # a rounds KV that does not answer in this long is not counted ("-")


@dataclass
class Kill:
    at: float  # seconds since the first proposal
    published: int  # proposals acknowledged when it struck
    total: int
    open: int  # of those, without an outcome heard: rounds in flight
    what: str  # what `Fault.kill` said, e.g. "killed coordinator (pid 4242, coordinator.log)"
    down: float = 0.0
    open_in_kv: int | None = None  # rounds the KV held unfinished just after the kill; None: not read
    back: float | None = None  # seconds since the first proposal when its victim was restarted

    @property
    def idle(self) -> bool:
        """It hit nothing: no round was open, or there was nothing to kill."""
        return self.open == 0 or self.what.startswith("nothing")

    def line(self) -> str:
        """`t=1.3s after 9/12 proposals: killed coordinator (…) with 2 rounds open (KV: 2), down 1.7 s`"""
        kv = "-" if self.open_in_kv is None else str(self.open_in_kv)
        rounds = "round" if self.open == 1 else "rounds"
        idle = " — IDLE, it hit no work in flight" if self.idle else ""
        return (
            f"t={self.at:.1f}s after {self.published}/{self.total} proposals: {self.what} "
            f"with {self.open} {rounds} open (KV: {kv}), down {self.down:.1f} s{idle}"
        )


def kills_line(kills: list[Kill]) -> str:
    """`kills=2 idle=0 open_rounds=3,1 open_in_kv=2,-`: rounds open at each kill, counted by the
    run (published, no outcome heard) and in the rounds KV just after it (-: not read)."""

    def listed(values) -> str:
        return ",".join("-" if v is None else str(v) for v in values) or "-"

    idle = sum(1 for kill in kills if kill.idle)
    return (
        f"kills={len(kills)} idle={idle} open_rounds={listed(k.open for k in kills)} "
        f"open_in_kv={listed(k.open_in_kv for k in kills)}"
    )


async def strike_in_flight(
    fault: Fault,
    *,
    kills: int,
    downtime: tuple[float, float],
    rng: random.Random,
    progress: Progress,
    t0: float,
    struck: list[Kill],
    say: Callable[[str], None],
    open_in_kv: Callable[[], Awaitable[int | None]] | None = None,
) -> None:
    """Strike `kills` times, each after its mark (`schedule.kill_marks`) while a round is open;
    append each `Kill` to `struck`. A cancelled loop still restarts what it took down."""
    decided_at_restart: int | None = None  # outcomes heard when the previous victim came back
    for mark in kill_marks(progress.total, kills, rng):
        while True:
            progress.changed.clear()
            published, open_now = len(progress.published), len(progress.open)
            recovered = decided_at_restart is None or len(progress.heard) > decided_at_restart
            counts = {"published": published, "open_rounds": open_now, "total": progress.total}
            if due(mark, **counts, recovered=recovered, over=progress.over):
                break
            await progress.changed.wait()
        at = time.monotonic() - t0
        what = await asyncio.to_thread(fault.kill, rng)
        kill: Kill | None = None
        try:
            kill = Kill(at, published, progress.total, open_now, what, down=rng.uniform(*downtime))
            struck.append(kill)
            if open_in_kv is not None:
                kill.open_in_kv = await open_in_kv()
            say(kill.line())
            await asyncio.sleep(kill.down)
        finally:  # also when the run ends early: a SIGSTOP always gets its SIGCONT
            await asyncio.to_thread(fault.restart)
            if kill is not None:  # what it woke may publish now: the run listens past this
                kill.back = time.monotonic() - t0
        decided_at_restart = len(progress.heard)


async def unfinished_rounds(js, bucket: str, *, timeout: float = KV_READ_SECONDS) -> int | None:
    """Rounds in the KV bucket not decided, or decided with their outcome not yet published;
    None when the bucket cannot be read within `timeout` (NATS down, a leader being elected)."""

    async def count() -> int:
        kv = await js.key_value(bucket)
        watcher = await kv.watchall(ignore_deletes=True)
        found = 0
        try:
            async for entry in watcher:
                if entry is None:  # the current values are all in
                    break
                value = json.loads(entry.value or b"{}")
                if value.get("state") != "decided" or not value.get("outcome_published"):
                    found += 1
        finally:
            await watcher.stop()
        return found

    try:
        return await asyncio.wait_for(count(), timeout)
    except Exception:  # noqa: BLE001 - not readable now: say so ("-") rather than guess
        return None
