"""bus/ops/chaos/strikes.py: the kill loop strikes while rounds are open, says how many were,
and always restarts what it took down."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

from bus.ops.chaos.progress import Progress
from bus.ops.chaos.strikes import Kill, kills_line, strike_in_flight


def fake_fault(calls: list[str], said: str = "killed coordinator (pid 1, coordinator.log)"):
    return SimpleNamespace(kill=lambda rng: calls.append("kill") or said, restart=lambda: calls.append("restart"))


def strike(fault, progress: Progress, struck: list[Kill], *, kills: int = 1, downtime=(0.0, 0.0), seed: int = 0):
    return asyncio.create_task(
        strike_in_flight(
            fault,
            kills=kills,
            downtime=downtime,
            rng=random.Random(seed),
            progress=progress,
            t0=0.0,
            struck=struck,
            say=lambda _: None,
        )
    )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_kill_waits_for_its_mark_and_an_open_round():
    """With its mark reached but every round decided, the kill waits; the next proposal's
    PubAck opens a round and it strikes then, recording the counts of that moment."""
    calls, struck = [], []
    progress = Progress(total=4)
    loop = strike(fake_fault(calls), progress, struck, seed=3)  # seed 3, 4 proposals: mark 2
    for release in ("r1", "r2"):
        progress.proposal_published(release)
        progress.outcome_heard(release)
    await settle()
    assert calls == []  # past the mark, nothing open
    progress.proposal_published("r3")
    await asyncio.wait_for(loop, 5)
    assert calls == ["kill", "restart"]
    assert (struck[0].published, struck[0].open, struck[0].idle) == (3, 1, False)


async def test_the_next_kill_waits_until_the_mesh_decides_again():
    """After a restart, rounds open from the outage are not enough: the second kill waits for an
    outcome heard since the first victim came back, so it meets a working mesh."""
    calls, struck = [], []
    progress = Progress(total=4)
    for release in ("r1", "r2", "r3"):  # seed 4, 4 proposals, 2 kills: marks 2 and 3
        progress.proposal_published(release)
    loop = strike(fake_fault(calls), progress, struck, kills=2, seed=4)
    while calls != ["kill", "restart"]:
        await asyncio.sleep(0.01)
    await settle()
    assert calls == ["kill", "restart"]  # three rounds open, nothing decided since the restart
    progress.outcome_heard("r1")
    await asyncio.wait_for(loop, 5)
    assert calls == ["kill", "restart"] * 2 and [k.open for k in struck] == [3, 2]


async def test_a_kill_with_nothing_left_to_hit_is_idle():
    """Every proposal published and decided before the kill's turn: it strikes anyway, idle."""
    calls, struck = [], []
    progress = Progress(total=1)
    progress.proposal_published("r1")
    progress.outcome_heard("r1")
    await asyncio.wait_for(strike(fake_fault(calls), progress, struck), 5)
    assert calls == ["kill", "restart"] and struck[0].open == 0 and struck[0].idle


async def test_nothing_to_kill_is_idle_even_with_rounds_open():
    """A fault that found no live process hit nothing, however many rounds were open."""
    struck = []
    progress = Progress(total=1)
    progress.proposal_published("r1")
    await asyncio.wait_for(strike(fake_fault([], said="nothing to kill"), progress, struck), 5)
    assert struck[0].open == 1 and struck[0].idle


async def test_the_end_of_the_run_releases_a_waiting_kill():
    """Outcomes all in (or the wait ran out) before a kill's turn: `end` makes it strike, so the
    run never hangs on it."""
    calls, struck = [], []
    progress = Progress(total=5)
    loop = strike(fake_fault(calls), progress, struck)
    await settle()
    progress.end()
    await asyncio.wait_for(loop, 5)
    assert calls == ["kill", "restart"] and struck[0].idle


async def test_a_run_that_ends_mid_fault_still_restarts_it():
    """Cancelling the kill loop during a fault's downtime (the run ended or crashed) still
    restarts — for a freeze, SIGCONTs — what it took down."""
    calls = []
    progress = Progress(total=1)
    progress.proposal_published("r1")
    loop = strike(fake_fault(calls, said="froze x"), progress, [], downtime=(60.0, 60.0))
    while calls != ["kill"]:
        await asyncio.sleep(0.01)
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)
    assert calls == ["kill", "restart"]


def test_the_report_names_the_open_rounds_at_each_kill():
    """One stderr line per kill with its open rounds; one stdout line for all of them."""
    kills = [
        Kill(1.25, 9, 12, 2, "killed coordinator (pid 7, coordinator.log)", down=1.5, open_in_kv=1),
        Kill(4.0, 12, 12, 0, "killed nats-server (pid 8)", down=0.5),
    ]
    assert kills[0].line() == (
        "t=1.2s after 9/12 proposals: killed coordinator (pid 7, coordinator.log) with 2 rounds open (KV: 1), "
        "down 1.5 s"
    )
    assert kills[1].line().endswith("with 0 rounds open (KV: -), down 0.5 s — IDLE, it hit no work in flight")
    assert kills_line(kills) == "kills=2 idle=1 open_rounds=2,0 open_in_kv=1,-"
    assert kills_line([]) == "kills=0 idle=0 open_rounds=- open_in_kv=-"
