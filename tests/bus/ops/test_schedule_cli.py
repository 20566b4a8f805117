"""`mesh schedule list | show | pause | resume | trigger` against a real nats-server, run as a user
runs them (with the operator's identity), on a toy agent running in this process."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest

from bus.provision import provision
from bus.scheduling.specs import ScheduleSpec
from tests.bus.ops.test_cli import mesh
from tests.bus.scheduling.support import (
    admit_ticker,
    definitions,
    done,
    fired,
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


@pytest.mark.timeout(400)  # six CLI runs, each starting Python and building every service
async def test_schedules_are_listed_paused_resumed_and_triggered(settings, gatekeeper, tmp_path, js):
    """list and show what is scheduled and what it last did; pause stops a schedule (and
    provisioning leaves it paused), resume puts it back, trigger fires one tick now."""
    log = tmp_path / "ticks.log"
    ticker, operator = admit_ticker(gatekeeper, ticker_settings(settings, log, ticker_proposals="3600"), tmp_path)
    await provision_for(ticker)
    env = {"MESH_NATS_CREDENTIALS": str(operator)} if operator else {}

    async def run(*args: str):
        # `mesh schedule` builds every service to find their schedules: seconds on a loaded machine
        return await asyncio.to_thread(mesh, "schedule", *args, settings=settings, timeout=120, **env)

    async with build(ticker).running():
        await until(lambda: done(log) and done(log, "check"), timeout=30)

        listed = await run("list", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = {row["name"]: row for row in json.loads(listed.stdout)}
        assert {name for name in rows if name.startswith("ticker.")} == {"ticker.every", "ticker.check"}
        # the mesh's own services' schedules are listed too, not created in this namespace yet
        assert {row["state"] for row in rows.values() if not row["name"].startswith("ticker.")} <= {"missing"}
        every, check = rows["ticker.every"], rows["ticker.check"]
        assert (every["state"], every["spec"], every["kind"]) == ("active", "every 1s", "every")
        assert every["next_at"] and every["last_fired_at"] and every["last"]["result"].startswith("ticked every:")
        assert (check["state"], check["spec"]) == ("active", "self 2s..1h")
        assert check["last"]["next_run"]["used"].startswith(check["next_at"][:19])
        paused = await run("pause", "every")  # only the ticker has a schedule named `every`
        assert paused.returncode == 0, paused.stderr
        assert "paused ticker.every" in paused.stdout
        assert await definitions(js, ticker, "every") == []
        count = len(await fired(js, ticker, "every"))
        report = await provision(js, ticker, [], reconcile=True, schedules=build(ticker).schedules)
        assert "schedule ticker.every (paused)" in report.unchanged
        # the positive signal: a control schedule on the same 1 s period fires twice meanwhile
        control = ScheduleSpec.recurring("control", "pulse", every="1s")
        await provision(js, ticker, [], reconcile=False, schedules=[control])  # ensure: removes nothing
        await until(lambda: _fired_at_least(js, ticker, 2, "pulse", "control"), timeout=15)
        assert len(await fired(js, ticker, "every")) == count, "a paused schedule fired"
        shown = await run("show", "ticker.every", "--json")
        assert shown.returncode == 0, shown.stderr
        detail = json.loads(shown.stdout)
        assert (detail["state"], detail["next_at"], detail["schedule_header"]) == ("paused", None, "@every 1s")
        assert detail["paused"]["by"] and detail["consumer"]["exists"] is True and detail["declared"] is False

        triggered = await run("trigger", "ticker.every", "--wait", "30")  # paused, still fires by hand
        assert triggered.returncode == 0, triggered.stderr
        assert "triggered ticker.every: tick every:manual:" in triggered.stdout
        assert "handled by" in triggered.stdout
        assert [line for line in done(log) if line.manual]

        resumed = await run("resume", "ticker.every")
        assert resumed.returncode == 0, resumed.stderr
        await until(lambda: _more_than(js, ticker, count + 1), timeout=20)

        again = await run("trigger", "ticker.check", "--wait", "30")  # self-scheduled: sets its next run from it
        assert again.returncode == 0, again.stderr
        assert "handled by" in again.stdout
        if "next run" not in again.stdout:  # its next run (2 s on) fired and replaced the result first
            assert "replaced by a later tick" in again.stdout, again.stdout
            shown = await run("show", "ticker.check", "--json")
            assert json.loads(shown.stdout)["last"]["next_run"]["used"], shown.stdout


async def test_a_bad_or_unknown_schedule_name_is_one_line_and_exit_2(settings):
    """A name that is not `<agent>.<schedule>`, names no schedule, or could be two, is a usage error."""
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        specs = [ScheduleSpec.recurring(agent, "nightly", cron="0 0 3 * * *") for agent in ("alpha", "beta")]
        await provision(js, settings, [], reconcile=True, schedules=specs)
    finally:
        await nc.close()
    for args, says in [
        (("show", "a.b.c"), "is not a schedule name"),
        (("show", "nope"), "no schedule 'nope'; known schedules: alpha.nightly, beta.nightly"),
        (("trigger", "nightly"), "'nightly' is ambiguous: alpha.nightly, beta.nightly"),
        (("resume", "bad name!"), "is not a schedule name"),
    ]:
        result = await asyncio.to_thread(mesh, "schedule", *args, settings=settings)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], (args, result.stderr)
    table = await asyncio.to_thread(mesh, "schedule", "list", settings=settings)
    assert table.returncode == 0, table.stderr
    assert "alpha.nightly" in table.stdout and "cron 0 0 3" in table.stdout and "active" in table.stdout


async def _fired_at_least(js, settings, n: int, schedule: str, agent: str) -> bool:
    return len(await fired(js, settings, schedule, agent)) >= n


async def _more_than(js, settings, n: int) -> bool:
    return len(await fired(js, settings, "every")) > n
