"""Commands that look after the broker's state: `provision`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from bus.ops.launcher import provision_mesh
from bus.ops.settings import MeshSettings

console = Console()


def register(app: typer.Typer) -> None:
    app.command()(provision)


def provision(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Only report drift; change nothing (exit 1 on drift).")
    ] = False,
) -> None:
    """Create or reconcile every stream, consumer and KV bucket, and report what changed.

    FastStream silently keeps a durable consumer's old settings; this command does not: it
    compares each object with the desired state and corrects any drift.

    Example: `MESH_NATS_URL=nats://127.0.0.1:4222 mesh provision`
    """
    from services.index import SERVICES

    settings: MeshSettings = ctx.obj
    report = asyncio.run(provision_mesh(settings, names=list(SERVICES), reconcile=not check))
    for line in report.created:
        console.print(f"[green]created[/]   {line}")
    for line in report.updated:
        console.print(f"[yellow]corrected[/] {line}")
    for line in report.drifted:
        console.print(f"[red]drift[/]     {line}")
    console.print(
        f"{len(report.created)} created, {len(report.updated)} corrected, "
        f"{len(report.drifted)} drifted, {len(report.unchanged)} already right"
    )
    if check and report.drifted:
        raise typer.Exit(1)
