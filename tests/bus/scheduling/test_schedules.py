"""Schedules against a real nats-server: ticks missed while the agent was down come back as one,
provisioning adds, changes and removes schedules as declared, and a self-scheduled agent's next
run is clamped and recorded. The agent runs in this process, with its own NATS identity."""

from __future__ import annotations

import json
from datetime import timedelta

import nats
import pytest

from bus.provision import provision
from bus.scheduling.specs import ScheduleSpec
from contracts.envelope import utc_now
from contracts.schedules import ScheduleResult
from tests.bus.scheduling.support import (
    admit_ticker,
    definitions,
    done,
    fired,
    lines,
    provision_for,
    ticker_settings,
    until,
)
from tests.bus.scheduling.ticker import build


@pytest.fixture
async def js(nats_url):
    nc = await nats.connect(nats_url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


async def test_ticks_missed_while_the_agent_was_down_are_handled_as_one_after_restart(
    settings, gatekeeper, tmp_path, js
):
    """Every firing is handled once or folded into the next handled one: after 3 s down, the
    ticks fired meanwhile come back as the newest, with `coalesced` counting the others."""
    log = tmp_path / "ticks.log"
    ticker, _ = admit_ticker(gatekeeper, ticker_settings(settings, log, ticker_check=False), tmp_path)
    await provision_for(ticker)
    async with build(ticker).running():
        await until(lambda: len(done(log)) >= 2, timeout=10)
    before, fired_before = len(done(log)), await _count(js, ticker, "every")
    # every replica down: wait until three ticks fired meanwhile (not a sleep a loaded machine stretches)
    await until(lambda: _at_least(js, ticker, "every", fired_before + 3), timeout=15)
    async with build(ticker).running():
        await until(lambda: len(done(log)) >= before + 2, timeout=10)

    handled = done(log)
    ticks = {tick.tick_id: tick for _, tick in await fired(js, ticker, "every")}
    assert len({line.tick_id for line in handled}) == len(handled), "a tick was handled twice"
    first_back = handled[before]
    missed = [
        t
        for t in ticks.values()
        if ticks[handled[before - 1].tick_id].scheduled_for < t.scheduled_for < ticks[first_back.tick_id].scheduled_for
    ]
    assert first_back.coalesced == len(missed) >= 2
    # nothing lost: each tick up to the last handled one was handled, or folded into a handled one
    last = ticks[handled[-1].tick_id].scheduled_for
    assert sum(1 + line.coalesced for line in handled) == len([t for t in ticks.values() if t.scheduled_for <= last])
    record = ScheduleResult.model_validate_json(
        (await (await js.key_value(ticker.subjects.schedules_bucket)).get("last.ticker.every")).value
    )
    assert record.tick_id == handled[-1].tick_id and record.result == f"ticked {handled[-1].tick_id}"


async def test_a_handler_slower_than_its_interval_skips_ahead_instead_of_piling_up(settings, gatekeeper, tmp_path, js):
    """Ticks of 1 s handled in 2.5 s: the ticks that fired meanwhile are folded into the newest,
    never handled late one after another (nor two at once in one process)."""
    log = tmp_path / "ticks.log"
    ticker, _ = admit_ticker(
        gatekeeper, ticker_settings(settings, log, ticker_check=False, ticker_handle_seconds=2.5), tmp_path
    )
    await provision_for(ticker)
    async with build(ticker).running():
        await until(lambda: len(done(log)) >= 3, timeout=15)
    handled = done(log)
    ticks = {tick.tick_id: tick for _, tick in await fired(js, ticker, "every")}
    assert all(line.coalesced >= 1 for line in handled[1:3]), handled
    last = ticks[handled[-1].tick_id].scheduled_for
    assert sum(1 + line.coalesced for line in handled) == len([t for t in ticks.values() if t.scheduled_for <= last])
    starts = [line for line in lines(log) if line.what == "start"]
    # one at a time, in order (the last may have started as the agent stopped)
    assert [line.tick_id for line in starts][: len(handled)] == [line.tick_id for line in handled]


async def test_provisioning_adds_changes_and_removes_schedules_as_declared(settings, js):
    """`mesh provision` makes the bus match the declarations: a schedule removed from the code
    stops firing; a changed one is replaced; an agent starting (ensure mode) removes nothing."""
    a = ScheduleSpec.recurring("ticker", "a", every="1s")
    b = ScheduleSpec.recurring("ticker", "b", every="1s")
    report = await provision(js, settings, [], reconcile=True, schedules=[a, b])
    assert {"schedule ticker.a", "schedule ticker.b"} <= set(report.created)
    await until(lambda: _count(js, settings, "b"), timeout=5)

    ensure = await provision(js, settings, [], reconcile=False, schedules=[a])  # an agent that only knows `a`
    assert not [line for line in ensure.updated if "ticker.b" in line]
    others = await provision(js, settings, [], reconcile=True, schedules=[a], schedule_owners=["someone-else"])
    assert not [line for line in others.updated if "ticker.b" in line]
    check = await provision(js, settings, [], reconcile=False, create=False, schedules=[a])
    assert "schedule ticker.b: no agent declares it (provisioning removes it)" in check.drifted
    assert await definitions(js, settings, "b"), "only reported, still there"

    removed = await provision(js, settings, [], reconcile=True, schedules=[a])
    assert "schedule ticker.b: removed, no agent declares it any more" in removed.updated
    assert await definitions(js, settings, "b") == []
    b_ticks, a_ticks = await _count(js, settings, "b"), await _count(js, settings, "a")
    # the positive signal: `a`, on the same 1 s period, fires twice more; `b` would have fired too
    await until(lambda: _at_least(js, settings, "a", a_ticks + 2), timeout=15)
    assert await _count(js, settings, "b") == b_ticks, "a removed schedule kept firing"

    slower = ScheduleSpec.recurring("ticker", "a", every="2s")
    changed = await provision(js, settings, [], reconcile=True, schedules=[slower])
    assert [line for line in changed.updated if line.startswith("schedule ticker.a:") and "'@every 2s'" in line]
    (definition,) = await definitions(js, settings, "a")
    assert definition.headers["Nats-Schedule"] == "@every 2s"
    again = await provision(js, settings, [], reconcile=True, schedules=[slower])
    assert "schedule ticker.a" in again.unchanged


async def test_a_self_scheduled_run_is_clamped_to_its_bounds_and_the_clamp_recorded(settings, gatekeeper, tmp_path, js):
    """Proposing 1 s gives the minimum (2 s), proposing 10 days the maximum (1 h); each next run
    replaces the one pending run, and the result says what was proposed and what was used."""
    log = tmp_path / "ticks.log"
    ticker, _ = admit_ticker(
        gatekeeper, ticker_settings(settings, log, ticker_every=False, ticker_proposals="1,864000"), tmp_path
    )
    await provision_for(ticker)
    kv = await js.key_value(ticker.subjects.schedules_bucket)

    async def last() -> ScheduleResult | None:
        try:
            entry = await kv.get("last.ticker.check")
        except nats.js.errors.KeyNotFoundError:
            return None
        return ScheduleResult.model_validate_json(entry.value)

    seen: list[ScheduleResult] = []

    async def clamped(bound: str) -> bool:
        result = await last()
        if result and (not seen or seen[-1].tick_id != result.tick_id):
            seen.append(result)
        return bool(result and result.next_run and result.next_run.clamped == bound)

    async with build(ticker).running():
        await until(lambda: clamped("min"), timeout=10)
        await until(lambda: clamped("max"), timeout=10)
    low, high = seen[-2].next_run, seen[-1].next_run
    assert round((low.used - seen[-2].handled_at).total_seconds()) == 2
    assert (low.proposed - seen[-2].handled_at) < timedelta(seconds=1.5)
    assert round((high.used - seen[-1].handled_at).total_seconds()) == 3600
    assert (high.proposed - seen[-1].handled_at) > timedelta(days=9)
    assert "later than max_interval (1:00:00): clamped to 1:00:00" in seen[-1].result
    (pending,) = await definitions(js, ticker, "check")
    at = pending.headers["Nats-Schedule"].removeprefix("@at ")
    assert abs((_parse(at) - high.used).total_seconds()) < 0.01
    assert json.loads(pending.data)["reason"] == "proposal 2"
    assert len(await fired(js, ticker, "check")) == 2
    assert _parse(at) > utc_now() + timedelta(minutes=59)


def _parse(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _at_least(js, settings, schedule: str, n: int) -> bool:
    return await _count(js, settings, schedule) >= n


async def _count(js, settings, schedule: str) -> int:
    return len(await fired(js, settings, schedule))
