"""`mesh schedule list | show | pause | resume | trigger`: the agents' schedules, from the bus."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from bus.connect import connect
from bus.errors import MeshError
from bus.ops import schedules as ops
from bus.ops.admin import operator
from bus.ops.arguments import BadUsage, positive
from bus.ops.cli.render import folded_table
from bus.ops.settings import MeshSettings
from bus.scheduling.specs import describe
from contracts.envelope import utc_now

console = Console()
schedule_app = typer.Typer(
    name="schedule",
    help="The agents' schedules: what is scheduled, when it fires next, when it last fired and with what "
    "result; pause, resume, or fire one now.\n\n"
    'An agent declares a schedule next to its handler (`@agent.scheduled("daily", cron="0 0 9 * * *", '
    'tz="Europe/Berlin")`, `every="6h"`, or `@agent.self_scheduled(...)` for one that sets its own next run); '
    "the NATS server keeps it and fires it, and each firing (a tick) is handled by one replica, once. "
    "`mesh provision` creates, changes and removes schedules as the code says.\n\n"
    "NAME is `<agent>.<schedule>` (digest.digest), or just `<schedule>` when only one agent has it.\n\n"
    "Example: `mesh schedule list`, `mesh schedule show digest.digest --json`, `mesh schedule pause digest`, "
    "`mesh schedule resume digest`, `mesh schedule trigger watch.check --wait 30`.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

Name = Annotated[str, typer.Argument(help="`<agent>.<schedule>`, or `<schedule>` when only one agent has it.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
AsJsonArray = Annotated[bool, typer.Option("--json", help="Print a JSON array, one object per schedule.")]


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app)


async def _with_nats(settings: MeshSettings, work):
    nc = await connect(settings, name="mesh-schedule")
    try:
        return await work(nc)
    finally:
        await nc.drain()


def _checked_name(name: str) -> None:
    try:
        ops.check_name(name)
    except MeshError as exc:
        raise BadUsage(str(exc)) from None


async def _one(nc, settings: MeshSettings, name: str, *, declared: bool = False) -> ops.ScheduleView:
    """The schedule NAME names. What is on the bus is looked at first; the services' declarations
    (which means building every service: slower) only when asked for, or when the bus has no such name."""
    if not declared:
        on_the_bus = await ops.gather(nc, settings, [])
        if ops.matching(on_the_bus, name):  # else not created yet, perhaps: the declarations know
            try:
                return ops.resolve(on_the_bus, name)
            except MeshError as exc:
                raise BadUsage(str(exc)) from None
    try:
        return ops.resolve(await ops.gather(nc, settings, ops.declared_schedules(settings)), name)
    except MeshError as exc:
        raise BadUsage(str(exc)) from None


@schedule_app.command("list")
def list_schedules(ctx: typer.Context, as_json: AsJsonArray = False) -> None:
    """Every schedule: agent, name, spec, time zone, state, next firing, last fired, last result.

    States: `active` (firing), `paused`, `running` (a self-scheduled run in progress; it sets the
    next one), `missing` (declared, not created yet: run `mesh provision` or start the agent).

    Example: `mesh schedule list --json`
    """
    settings: MeshSettings = ctx.obj
    views = asyncio.run(_with_nats(settings, lambda nc: ops.gather(nc, settings, ops.declared_schedules(settings))))
    if as_json:
        typer.echo(json.dumps([view.to_json() for view in views], indent=2))
        return
    if not views:
        console.print("no schedules: no agent declares one, and none is on the bus")
        return
    now = utc_now()
    table = folded_table("schedule", "spec", "state", "next firing", "last fired", "last result")
    for view in views:
        table.add_row(
            escape(view.name),
            escape(describe(view.definition)),
            _state(view.state),
            ops.when(view.next_at, now),
            ops.when(view.last_fired_at, now),
            escape(_result(view)),
        )
    console.print(table)


@schedule_app.command()
def show(ctx: typer.Context, name: Name, as_json: AsJson = False) -> None:
    """One schedule in detail: its definition, state, next and last firing, its last result (for a
    self-scheduled one, the next run it proposed and how it was clamped) and its ticks waiting.

    Example: `mesh schedule show digest.digest`
    """
    settings: MeshSettings = ctx.obj
    _checked_name(name)

    async def work(nc):
        return await ops.details(nc, settings, await _one(nc, settings, name, declared=True))

    view = asyncio.run(_with_nats(settings, work))
    if as_json:
        typer.echo(json.dumps(view.to_json(), indent=2))
        return
    now = utc_now()
    d = view.definition
    lines = [
        ("schedule", view.name),
        ("description", d.description or "-"),
        ("spec", describe(d)),
        ("Nats-Schedule", view.headers.get("Nats-Schedule", "-")),
        ("state", view.state + ("" if view.declared else "  (not declared by a service of this code base)")),
        ("next firing", ops.when(view.next_at, now)),
        ("last fired", ops.when(view.last_fired_at, now)),
    ]
    if view.paused:
        lines.append(("paused", f"by {view.paused.by} at {ops.when(view.paused.at, now)}"))
    if view.last:
        last = view.last
        lines += [
            ("last tick", f"{last.tick_id}" + (" (manual)" if last.manual else "")),
            ("handled", f"{ops.when(last.handled_at, now)} by {last.instance or '?'}"),
            ("coalesced", str(last.coalesced)),
            ("result", ("ok: " if last.ok else "FAILED: ") + (last.error or last.result or "-")),
        ]
        if last.next_run:
            lines.append(
                ("next run", f"{last.next_run.note}" + (f"; {last.next_run.reason}" if last.next_run.reason else ""))
            )
    if view.consumer:
        c = view.consumer
        lines.append(
            (
                "consumer",
                f"{c['name']}: {c['waiting']} waiting, {c['in_flight']} in flight"
                if c["exists"]
                else f"{c['name']}: not created yet",
            )
        )
    for label, value in lines:
        console.print(f"[bold]{label:>13}[/]  {escape(value)}", highlight=False)


@schedule_app.command()
def pause(ctx: typer.Context, name: Name) -> None:
    """Stop a schedule firing until resumed: it is removed from the server and remembered as paused,
    so `mesh provision` and restarted agents leave it out. Ticks already fired are still handled.

    Example: `mesh schedule pause digest.digest`
    """
    settings: MeshSettings = ctx.obj
    _checked_name(name)

    async def work(nc):
        return await ops.pause(nc, settings, await _one(nc, settings, name), by=operator(settings))

    console.print(asyncio.run(_with_nats(settings, work)), highlight=False)


@schedule_app.command()
def resume(ctx: typer.Context, name: Name) -> None:
    """Put a paused schedule back as it was. A self-scheduled one keeps its pending run, or, if that
    time passed while paused, runs after its `first_in`. Firings missed while paused are not replayed.

    Example: `mesh schedule resume digest.digest`
    """
    settings: MeshSettings = ctx.obj
    _checked_name(name)

    async def work(nc):
        return await ops.resume(nc, settings, await _one(nc, settings, name), by=operator(settings))

    console.print(asyncio.run(_with_nats(settings, work)), highlight=False)


@schedule_app.command()
def trigger(
    ctx: typer.Context,
    name: Name,
    wait: Annotated[
        float | None,
        typer.Option(callback=positive, help="Wait up to this many seconds for the tick's result, and print it."),
    ] = None,
) -> None:
    """Fire one tick now, through the same path as the server's firings: one replica handles it
    once, its result is recorded, and a self-scheduled agent sets its next run from it. The tick
    says `manual`. Works on a paused schedule too (it stays paused). With `--wait`, exits 1 if the
    tick is not handled in time or its handler failed.

    Example: `mesh schedule trigger digest.digest --wait 60`
    """
    settings: MeshSettings = ctx.obj
    _checked_name(name)

    async def work(nc):
        view = await _one(nc, settings, name)
        tick_id = await ops.trigger(nc, settings, view, by=operator(settings))
        console.print(f"triggered {view.name}: tick {tick_id}", highlight=False)
        if wait is None:
            return
        record, result = await ops.wait_for_tick(nc, settings, view, tick_id, timeout=wait)
        if record is None or record.state.value == "handling":
            raise MeshError(
                f"tick {tick_id} was not handled within {wait:g} s; is {view.agent} running? "
                f"(`mesh schedule show {view.name}` shows ticks waiting)"
            )
        if result is None:  # settled, but a later tick's result is the schedule's last now
            if record.state.value == "failed":
                raise MeshError(f"tick {tick_id} failed (`mesh schedule show {view.name}` for the latest result)")
            if record.state.value == "skipped":
                console.print("folded into a newer tick, which was handled (coalesced)", highlight=False)
                return
            console.print(
                f"handled by {record.instance or 'an instance'}: {record.state.value} "
                "(its result text was replaced by a later tick's)",
                highlight=False,
                markup=False,
            )
            return
        if not result.ok:
            raise MeshError(f"tick {tick_id} failed: {result.error}")
        console.print(f"handled by {result.instance}: {result.result or '(no result)'}", highlight=False, markup=False)

    asyncio.run(_with_nats(settings, work))


def _state(state: str) -> str:
    style = {"active": "green", "paused": "yellow", "running": "cyan", "missing": "red"}.get(state, "white")
    return f"[{style}]{state}[/]"


def _result(view: ops.ScheduleView) -> str:
    last = view.last
    if last is None:
        return "-"
    text = last.error if not last.ok else (last.result or "ok")
    return ("FAILED: " if not last.ok else "") + text[:80]
