"""A chaos run listens for duplicates `settle` seconds after its last victim came back, not only
after the last outcome it heard: a coordinator thawed (SIGCONT) or restarted once every outcome was
in may publish a duplicate right then, which the stream dedupes and only a subscriber still
listening would hear. Each kill records when its victim came back (`Kill.back`)."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

from bus.ops.chaos.progress import Progress
from bus.ops.chaos.schedule import listen_until
from bus.ops.chaos.strikes import strike_in_flight


async def test_each_kill_records_when_its_victim_came_back():
    """A kill with 0.2 s of downtime is back at least 0.2 s after it struck."""
    struck: list = []
    progress = Progress(total=1)
    progress.proposal_published("r1")
    fault = SimpleNamespace(kill=lambda rng: "froze coordinator (pid 1, coordinator.log)", restart=lambda: None)
    await asyncio.wait_for(
        strike_in_flight(
            fault,
            kills=1,
            downtime=(0.2, 0.2),
            rng=random.Random(0),
            progress=progress,
            t0=0.0,
            struck=struck,
            say=lambda _: None,
        ),
        5,
    )
    assert struck[0].back is not None and struck[0].back >= struck[0].at + 0.2


def test_the_run_listens_settle_seconds_past_the_last_restart():
    """Outcomes all heard at t=100, the frozen coordinator thawed at t=140: listen until 142."""
    assert listen_until(100.0, settle=2.0, deadline=60.0, through_deadlines=False, last_restart=140.0) == 142.0
    assert listen_until(100.0, settle=2.0, deadline=60.0, through_deadlines=False, last_restart=50.0) == 102.0
    assert listen_until(100.0, settle=2.0, deadline=6.0, through_deadlines=True, last_restart=140.0) == 142.0
