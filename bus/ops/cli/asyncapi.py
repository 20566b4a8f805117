"""`mesh asyncapi`: the mesh's AsyncAPI 3.0 document, from what its services declare (bus/asyncapi.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bus.asyncapi import asyncapi_document
from bus.ops.settings import MeshSettings


def register(app: typer.Typer) -> None:
    app.command()(asyncapi)


def asyncapi(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write it to this file instead of stdout.")] = None,
) -> None:
    """Print the AsyncAPI 3.0 document of the whole mesh: every subject, who publishes and who
    consumes it, each payload's JSON Schema and the headers that matter (`Nats-Msg-Id`).

    Built from what the services declare, for the namespace and servers of the current
    settings (`MESH_NAMESPACE`, `MESH_NATS_URL`); needs no running mesh. The registry serves
    the same document at `/asyncapi.json`.

    Example: `mesh asyncapi --out asyncapi.json`
    """
    from services.index import mesh_agents

    settings: MeshSettings = ctx.obj
    text = json.dumps(asyncapi_document(mesh_agents(settings), settings), indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text)
    typer.echo(f"AsyncAPI {json.loads(text)['asyncapi']} document written to {out}", err=True)
