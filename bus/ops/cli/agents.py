"""`mesh agents`: the live agents, read straight from the registry's KV buckets, with whether
each one's consumers are delivering or paused and the last operator action on it."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from nats.js.errors import BucketNotFoundError
from rich.console import Console

from bus.connect import connect
from bus.directory import AgentDirectory, AgentView
from bus.errors import MeshError
from bus.ops import admin
from bus.ops.cli.render import folded_table
from bus.ops.settings import MeshSettings
from contracts.admin import AdminAction

console = Console()


def register(app: typer.Typer) -> None:
    app.command()(agents)


def agents(
    ctx: typer.Context,
    skill: Annotated[str | None, typer.Option(help="Only agents with this skill id, e.g. review.security.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only agents with a skill carrying this tag.")] = None,
    stale: Annotated[bool, typer.Option("--stale", help="Also list agents with no live instance.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array of the agents.")] = False,
) -> None:
    """List the agents in the mesh: name, skills, live instances, last heartbeat, URL, whether
    its consumers deliver (`running`) or are paused (`mesh admin pause`), and the last operator
    action on it (what, who, when).

    Reads the cards and instances KV buckets directly, so it works without the registry service.
    Example: `mesh agents --skill review.security`
    """
    settings: MeshSettings = ctx.obj
    rows = asyncio.run(_load(settings, skill=skill, tag=tag, stale=stale))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = folded_table("name", "skills", "instances", "last heartbeat", "url", "consumers", "last admin action")
    for row in rows:
        last = row["lastAdminAction"]
        table.add_row(
            row["name"],
            ", ".join(row["skills"]),
            str(row["instances"]),
            row["lastHeartbeat"] or "-",
            row["url"] or "-",
            row["state"] or "-",
            f"{last['action']} by {last['by']} at {last['at'][:19]}" if last else "-",
        )
    console.print(table if rows else "no agents match", highlight=False)


async def _load(settings: MeshSettings, *, skill: str | None, tag: str | None, stale: bool) -> list[dict]:
    nc = await connect(settings, name="mesh-agents")
    try:
        try:
            directory = await AgentDirectory.watch(nc, settings)
        except BucketNotFoundError:
            raise MeshError(
                f"no agent registry on this mesh (KV bucket {settings.subjects.agents_bucket} or "
                f"{settings.subjects.instances_bucket} is missing): start the mesh with `mesh up`, or run "
                "`mesh provision`"
            ) from None
        try:
            views = directory.agents(skill=skill, tag=tag, include_stale=stale)
        finally:
            await directory.close()
        js = nc.jetstream()
        # per agent: one consumer-info request per work consumer, one last-message lookup
        return [
            _row(
                view,
                await admin.consumer_states(js, settings, view.name),
                await admin.last_action(js, settings, view.name),
            )
            for view in views
        ]
    finally:
        await nc.drain()


def _row(view: AgentView, consumers: list[admin.ConsumerState], last: AdminAction | None) -> dict:
    paused = [c for c in consumers if c.paused_until is not None]
    state = (paused[0] if paused else consumers[0]).describe() if consumers else None
    return {
        "name": view.name,
        "skills": [s.id for s in view.card.skills],
        "instances": len(view.instances),
        "lastHeartbeat": view.last_heartbeat.isoformat(timespec="seconds") if view.last_heartbeat else None,
        "url": view.instances[0].url if view.instances else None,
        "live": view.live,
        "state": state,  # `running`, `paused until …`; null when its consumers are not known here
        "consumers": {c.consumer: c.describe() for c in consumers},
        "lastAdminAction": last.model_dump(mode="json") if last else None,
    }
