"""`mesh agents`: the live agents, read straight from the registry's KV buckets."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bus.connect import connect
from bus.directory import AgentDirectory, AgentView
from bus.ops.settings import MeshSettings

console = Console()


def register(app: typer.Typer) -> None:
    app.command()(agents)


def agents(
    ctx: typer.Context,
    skill: Annotated[str | None, typer.Option(help="Only agents with this skill id, e.g. review.security.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only agents with a skill carrying this tag.")] = None,
    stale: Annotated[bool, typer.Option("--stale", help="Also list agents with no live instance.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """List the agents in the mesh: name, skills, live instances, last heartbeat, URL.

    Reads the cards and instances KV buckets directly, so it works without the registry service.
    Example: `mesh agents --skill review.security`
    """
    settings: MeshSettings = ctx.obj
    views = asyncio.run(_load(settings, skill=skill, tag=tag, stale=stale))
    if as_json:
        typer.echo(json.dumps([_row(v) for v in views], indent=2))
        return
    table = Table("name", "skills", "instances", "last heartbeat", "url", box=None)
    for view in views:
        row = _row(view)
        table.add_row(
            row["name"], ", ".join(row["skills"]), str(row["instances"]), row["lastHeartbeat"] or "-", row["url"] or "-"
        )
    console.print(table if views else "no agents match")


async def _load(settings: MeshSettings, *, skill: str | None, tag: str | None, stale: bool) -> list[AgentView]:
    nc = await connect(settings, name="mesh-agents")
    try:
        directory = await AgentDirectory.watch(nc, settings)
        try:
            return directory.agents(skill=skill, tag=tag, include_stale=stale)
        finally:
            await directory.close()
    finally:
        await nc.drain()


def _row(view: AgentView) -> dict:
    return {
        "name": view.name,
        "skills": [s.id for s in view.card.skills],
        "instances": len(view.instances),
        "lastHeartbeat": view.last_heartbeat.isoformat(timespec="seconds") if view.last_heartbeat else None,
        "url": view.instances[0].url if view.instances else None,
        "live": view.live,
    }
