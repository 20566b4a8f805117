"""A toy agent with two schedules, for the scheduling tests: run in the test's process
(`build(settings)` then `agent.running()`), or as a process of its own, as a deployed agent runs:

    python -m tests.bus.scheduling.ticker    # MESH_NATS_URL, MESH_NAMESPACE, MESH_HTTP_PORT, MESH_TICKER_*

- `every`: every second; each tick takes MESH_TICKER_HANDLE_SECONDS.
- `check`: self-scheduled (first in 1 s, then within [2 s, 1 h]); it proposes each delay of
  MESH_TICKER_PROPOSALS in turn (seconds, comma-separated), then nothing.

Every handler writes `start <tick_id> <pid>` when it starts and `done <tick_id> <coalesced> <manual> <pid>`
when it finishes, to MESH_TICKER_LOG.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import uvicorn

from bus.ops.settings import MeshSettings
from bus.runtime import Agent, Delivery, NextRun, ScheduleTick


class TickerSettings(MeshSettings):
    ticker_log: Path | None = None
    ticker_handle_seconds: float = 0.0
    ticker_every: bool = True  # declare `every`
    ticker_check: bool = True  # declare `check`
    ticker_proposals: str = ""


def build(settings: TickerSettings) -> Agent:
    agent = Agent("ticker", settings=settings, description="Ticks, for the scheduling tests.")
    proposals = [float(p) for p in settings.ticker_proposals.split(",") if p.strip()]

    def note(line: str) -> None:
        if settings.ticker_log:
            with open(settings.ticker_log, "a") as log:  # one write per line: replicas share the file
                log.write(f"{line} {os.getpid()}\n")

    async def work(tick: ScheduleTick) -> None:
        note(f"start {tick.tick_id}")
        await asyncio.sleep(settings.ticker_handle_seconds)

    if settings.ticker_every:

        @agent.scheduled("every", every="1s", description="Ticks every second.")
        async def on_every(tick: ScheduleTick, delivery: Delivery) -> str:
            await work(tick)
            note(f"done {tick.tick_id} {tick.coalesced} {tick.manual}")
            return f"ticked {tick.tick_id}"

    if settings.ticker_check:

        @agent.self_scheduled(
            "check",
            first_in=timedelta(seconds=1),
            min_interval=timedelta(seconds=2),
            max_interval=timedelta(hours=1),
            description="Looks again when it says, within [2 s, 1 h].",
        )
        async def on_check(tick: ScheduleTick, delivery: Delivery) -> NextRun:
            await work(tick)
            done = sum(1 for line in _lines(settings.ticker_log) if line.startswith("done check:"))
            note(f"done {tick.tick_id} {tick.coalesced} {tick.manual}")
            if done < len(proposals):
                return NextRun(after=timedelta(seconds=proposals[done]), reason=f"proposal {done + 1}")
            return NextRun(reason="nothing to propose")

    return agent


def _lines(path: Path | None) -> list[str]:
    return path.read_text().splitlines() if path and path.exists() else []


if __name__ == "__main__":
    settings = TickerSettings()
    uvicorn.run(build(settings).build_app(), host=settings.http_host, port=settings.http_port, log_level="warning")
