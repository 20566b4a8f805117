"""`mesh admin pause | resume | drain | history`: operator controls over one agent."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from bus.connect import connect
from bus.errors import MeshError
from bus.ops import admin
from bus.ops.arguments import BadUsage, positive
from bus.ops.cli.render import folded_table
from bus.ops.settings import MeshSettings
from contracts.admin import Action, AdminAction

console = Console()
admin_app = typer.Typer(
    name="admin",
    help="Operator controls over one agent; each action is recorded on the bus (who, when, what) and "
    "shown by `mesh agents` and `mesh admin history`.\n\n"
    "Example: `mesh admin pause security --until 30m`, `mesh admin resume security`, "
    "`mesh admin drain compliance`, `mesh admin history`.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

Agent = Annotated[str, typer.Argument(help="The agent, e.g. security.")]


def register(app: typer.Typer) -> None:
    app.add_typer(admin_app)


def _checked(check, *args):
    """A library check of an argument: its refusal is a usage error (exit 2), not a failure."""
    try:
        return check(*args)
    except MeshError as exc:
        raise BadUsage(str(exc)) from None


async def _with_nats(settings: MeshSettings, work):
    nc = await connect(settings, name="mesh-admin")
    try:
        return await work(nc)
    finally:
        await nc.drain()


@admin_app.command()
def pause(
    ctx: typer.Context,
    agent: Agent,
    until: Annotated[
        str | None,
        typer.Option(help="Resume by itself then: a duration (30m, 2h, 1d) or an RFC 3339 time. Default: never."),
    ] = None,
) -> None:
    """Stop deliveries to an agent: new work waits in the stream, nothing is lost or redelivered.

    Pauses the agent's durable consumers (JetStream consumer pause, NATS >= 2.11). Its instances
    keep running and finish what they hold. A paused *required* reviewer never approves: its
    rounds take its fallback at the deadline (security's is block).

    Example: `mesh admin pause security --until 30m`, `mesh admin pause compliance --until 2026-11-28T09:00:00Z`
    """
    settings: MeshSettings = ctx.obj
    _checked(admin.check_agent, agent)
    moment = _checked(admin.parse_until, until) if until is not None else None
    action = asyncio.run(
        _with_nats(settings, lambda nc: admin.pause(nc, settings, agent, until=moment, by=admin.operator(settings)))
    )
    console.print(
        f"paused {agent}: {', '.join(action.consumers)} {admin.until_text(action.until)} (recorded)", highlight=False
    )


@admin_app.command()
def resume(ctx: typer.Context, agent: Agent) -> None:
    """Let a paused agent's consumers deliver again; what waited in the stream is delivered in order.

    Example: `mesh admin resume security`
    """
    settings: MeshSettings = ctx.obj
    _checked(admin.check_agent, agent)
    action = asyncio.run(
        _with_nats(settings, lambda nc: admin.resume(nc, settings, agent, by=admin.operator(settings)))
    )
    console.print(f"resumed {agent}: {', '.join(action.consumers)} (recorded)", highlight=False)


@admin_app.command()
def drain(
    ctx: typer.Context,
    agent: Agent,
    timeout: Annotated[
        float, typer.Option(callback=positive, help="Seconds to wait for the instances to answer.")
    ] = 2.0,
) -> None:
    """Ask every live instance of an agent to finish its in-flight work and exit.

    Each instance stops asking for messages, finishes and acks what it holds, leaves the
    registry and exits (`mesh run` with code 10; `mesh up` does not restart it). What it never
    took waits in the stream for the next instance you start. Fails when no instance answers.

    Example: `mesh admin drain compliance`
    """
    settings: MeshSettings = ctx.obj
    action = asyncio.run(
        _with_nats(settings, lambda nc: admin.drain(nc, settings, agent, by=admin.operator(settings), timeout=timeout))
    )
    console.print(f"draining {agent}: {action.note} finishing in-flight work, then exiting (recorded)", highlight=False)


@admin_app.command()
def history(
    ctx: typer.Context,
    agent: Annotated[str | None, typer.Argument(help="Only this agent's actions.")] = None,
    limit: Annotated[int, typer.Option(min=0, help="Show the newest N actions (0: all).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array of the actions.")] = False,
) -> None:
    """List recorded operator actions, oldest first: when, who, what, on which agent.

    Example: `mesh admin history security --json`
    """
    settings: MeshSettings = ctx.obj
    found: list[AdminAction] = asyncio.run(
        _with_nats(settings, lambda nc: admin.history(nc.jetstream(), settings, agent=agent, limit=limit or None))
    )
    if as_json:
        typer.echo(json.dumps([action.model_dump(mode="json") for action in found], indent=2))
        return
    if not found:
        console.print("no recorded actions" + (f" on {agent}" if agent else ""))
        return
    table = folded_table("at", "action", "agent", "by", "until", "what")
    for action in found:
        table.add_row(
            action.at.strftime("%Y-%m-%d %H:%M:%S"),
            action.action.value,
            escape(action.agent),
            escape(action.by),
            admin.until_text(action.until) if action.action is Action.PAUSE else "-",
            escape(action.note or ", ".join(action.consumers)),
        )
    console.print(table)
