"""Scheduled agents as deployed: replicas in processes of their own, each with its own NATS
identity, one of them SIGKILLed in the middle of a tick."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter

import nats
import pytest

from bus.provision import provision
from bus.scheduling.specs import ScheduleSpec
from contracts.schedules import ScheduleResult
from tests.bus.scheduling.support import (
    TickerProcess,
    admit_ticker,
    definitions,
    done,
    fired,
    lines,
    provision_for,
    ticker_settings,
    until,
)

# Ticks the kill test runs for (a minute: MESH_TEST_SCHEDULE_TICKS=60).
TICKS = int(os.environ.get("MESH_TEST_SCHEDULE_TICKS", "12"))


@pytest.fixture
async def js(nats_url):
    nc = await nats.connect(nats_url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


@pytest.fixture
def replicas(tmp_path):
    """`replicas(settings)` starts a ticker process; all are stopped after the test."""
    started: list[TickerProcess] = []

    def start(settings) -> TickerProcess:
        process = TickerProcess(settings, tmp_path / f"ticker-{len(started)}.log").start()
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(Exception):
            process.stop()


async def test_two_replicas_handle_every_tick_once_while_one_is_killed_mid_tick(
    settings, gatekeeper, tmp_path, js, replicas
):
    """With two replicas on one `every 1s` schedule, one SIGKILLed while it handles a tick and then
    started again: every tick fired is handled exactly once — the one the killed replica held
    is redelivered to the other (after ack_wait, 2 s here) — none twice, none lost."""
    log = tmp_path / "ticks.log"
    ticker, _ = admit_ticker(
        gatekeeper, ticker_settings(settings, log, ticker_check=False, ticker_handle_seconds=0.5), tmp_path
    )
    await provision_for(ticker)  # streams and consumers; the replicas create the schedule as they start
    first, second = replicas(ticker), replicas(ticker)
    await asyncio.gather(first.ready(), second.ready())
    await until(lambda: len({line.pid for line in done(log)}) == 2, timeout=15)  # both have handled ticks

    # SIGKILL the first replica the moment it starts a tick: it dies holding that tick
    seen = len(lines(log))

    def first_starts_a_tick() -> bool:
        return any(line.what == "start" and line.pid == first.process.pid for line in lines(log)[seen:])

    await until(first_starts_a_tick, timeout=10, interval=0.01)
    first.kill()
    held = next(line.tick_id for line in reversed(lines(log)) if line.pid == first.process.pid)
    await asyncio.sleep(1.5)
    again = replicas(ticker)  # the first replica, started again
    await again.ready()
    await until(lambda: any(line.tick_id == held for line in done(log)), timeout=15)  # redelivered, handled
    await until(lambda: any(line.pid == again.process.pid for line in done(log)), timeout=15)

    # once TICKS have fired, stop the schedule, let the last ticks be handled, then count
    await until(lambda: _fired_at_least(js, ticker, TICKS), timeout=TICKS + 10, interval=0.2)
    await js.purge_stream(
        ticker.subjects.schedules_stream, subject=ticker.subjects.schedule_definition("ticker", "every")
    )
    await until(lambda: _settled(js, ticker), timeout=15)
    ticks = [tick for _, tick in await fired(js, ticker, "every")]
    handled = done(log)
    twice = [tick for tick, n in Counter(line.tick_id for line in handled).items() if n > 1]
    assert twice == [], f"handled twice: {twice}"
    assert sorted(line.tick_id for line in handled) == sorted(tick.tick_id for tick in ticks)
    assert sum(line.coalesced for line in handled) == 0
    assert len(ticks) >= TICKS
    by = Counter(line.pid for line in handled)
    assert set(by) == {first.process.pid, second.process.pid, again.process.pid}
    killed_at = [line for line in lines(log) if line.tick_id == held]
    assert [(line.what, line.pid) for line in killed_at] == [
        ("start", first.process.pid),
        ("start", killed_at[1].pid),
        ("done", killed_at[1].pid),
    ]
    print(f"\n{len(ticks)} ticks fired, {len(handled)} handled ({dict(by)} by pid), tick {held} redelivered")


async def test_a_self_scheduled_agent_killed_mid_run_keeps_exactly_one_pending_run(
    settings, gatekeeper, tmp_path, js, replicas
):
    """SIGKILL during a self-scheduled run, then two replicas start: neither adds a first run next
    to the one in progress (no run is pending while it runs); the redelivered run sets the next
    one, clamped to the maximum, and that is the only run pending."""
    log = tmp_path / "ticks.log"
    ticker, _ = admit_ticker(
        gatekeeper,
        ticker_settings(settings, log, ticker_every=False, ticker_proposals="1,864000", ticker_handle_seconds=1.0),
        tmp_path,
    )
    await provision_for(ticker)
    one = replicas(ticker)
    await one.ready()
    await until(lambda: len(done(log, "check")) == 1, timeout=15)  # first run: proposes 1 s, clamped to 2 s

    def second_run_started() -> bool:
        return len([line for line in lines(log) if line.what == "start"]) == 2

    await until(second_run_started, timeout=10, interval=0.01)
    one.kill()  # mid-run: its next run is not set yet, and the server removed the `@at` that fired
    assert await definitions(js, ticker, "check") == []
    two, three = replicas(ticker), replicas(ticker)
    await asyncio.gather(two.ready(), three.ready())
    assert await definitions(js, ticker, "check") == [], "a starting replica added a run next to the one in progress"
    await until(lambda: len(done(log, "check")) == 2, timeout=15)  # redelivered after ack_wait, finished
    # a first run added by mistake (first_in 1 s) would have fired by now: a control schedule of
    # 1 s, set after the replicas started, has fired twice on the server's own clock
    control = ScheduleSpec.recurring("control", "pulse", every="1s")
    await provision(js, ticker, [], reconcile=False, schedules=[control])  # ensure: removes nothing
    await until(lambda: _control_fired(js, ticker, 2), timeout=15)
    await js.purge_stream(
        ticker.subjects.schedules_stream, subject=ticker.subjects.schedule_definition("control", "pulse")
    )

    (pending,) = await definitions(js, ticker, "check")
    kv = await js.key_value(ticker.subjects.schedules_bucket)
    last = ScheduleResult.model_validate_json((await kv.get("last.ticker.check")).value)
    assert last.next_run.clamped == "max"
    at = pending.headers["Nats-Schedule"].removeprefix("@at ")
    assert at == last.next_run.used.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert len(await fired(js, ticker, "check")) == 2, "a run fired that nobody set"
    info = await js.stream_info(ticker.subjects.schedules_stream, subjects_filter=ticker.subjects.schedule_definitions)
    assert info.state.subjects == {ticker.subjects.schedule_definition("ticker", "check"): 1}
    assert os.getpid() not in {line.pid for line in lines(log)}


async def _control_fired(js, settings, n: int) -> bool:
    return len(await fired(js, settings, "pulse", "control")) >= n


async def _fired_at_least(js, settings, n: int) -> bool:
    subject = settings.subjects.schedule_tick("ticker", "every")
    info = await js.stream_info(settings.subjects.schedules_stream, subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0) >= n


async def _settled(js, settings) -> bool:
    """Every fired tick handled: nothing waiting, nothing in flight."""
    info = await js.consumer_info(settings.subjects.schedules_stream, "ticker-schedule-every")
    return info.num_pending == 0 and info.num_ack_pending == 0
