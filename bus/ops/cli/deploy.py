"""`mesh deploy compose` (images and secrets for compose.yml) and `mesh deploy provision` (its
one-shot `provision` service)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bus.connect import connect
from bus.errors import NatsUnreachable
from bus.ops.arguments import positive
from bus.ops.cli import provisioning
from bus.ops.deploy import prepare_compose
from bus.ops.settings import MeshSettings

console = Console()
deploy = typer.Typer(
    name="deploy",
    help='Run the mesh in containers: `mesh deploy compose`, then `docker compose up -d` (README: "Deploy").',
    no_args_is_help=True,
)
DEFAULT_OUT = "deploy"  # below MESH_HOME: compose.yml's default MESH_DEPLOY_DIR is ./.mesh/deploy


def register(app: typer.Typer) -> None:
    app.add_typer(deploy)


@deploy.command()
def compose(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(help="Where the secrets go: compose.yml's MESH_DEPLOY_DIR (default MESH_HOME/deploy)."),
    ] = None,
    project: Annotated[Path, typer.Option(help="The agent-mesh checkout: Dockerfile, compose.yml.")] = Path("."),
    base_image: Annotated[
        str | None,
        typer.Option(
            help="Base of both images (Debian-like, Python 3.11+); default the Dockerfile's python:3.11-slim."
        ),
    ] = None,
    build: Annotated[
        bool, typer.Option("--build/--no-build", help="Build the wheels and images; --no-build: only the secrets.")
    ] = True,
) -> None:
    """Build the images and write the identities and gateway key that compose.yml mounts.

    Builds the wheels on the host (build/wheels, build/project), then `agent-mesh:<version>` (every
    service) and `agent-mesh/nats:<version>` with `docker build`; writes a NATS seed per service
    and the operator's, the server's auth.conf, and the gateway's API keys with one key, `local`.
    Seeds are kept when they exist. After adding a key
    (`MESH_GATEWAY_API_KEYS_FILE=.mesh/deploy/gateway/api-keys.json mesh gateway keys add ci`),
    run `mesh deploy compose --no-build` again so the containers can read the new keys file.

    Example: `mesh deploy compose && docker compose up -d`
    """
    settings: MeshSettings = ctx.obj
    out = out or settings.home / DEFAULT_OUT
    made = prepare_compose(
        settings, project=project, out=out, base_image=base_image, build=build, say=lambda line: console.print(line)
    )
    for tag in made.images:
        console.print(f"image {tag}")
    console.print(f"{len(made.identities.members)} identities and auth.conf in {made.identities.folder}")
    console.print(f"gateway key in {made.gateway_key_file}")
    deploy_dir = "" if out == Path(".mesh") / DEFAULT_OUT else f"MESH_DEPLOY_DIR={out} "
    console.print(f"next: {deploy_dir}docker compose up -d   (docker-compose with Compose v1)", highlight=False)


@deploy.command("provision")
def provision_when_up(
    ctx: typer.Context,
    wait: Annotated[float, typer.Option(callback=positive, help="Seconds to wait for NATS to answer.")] = 60.0,
) -> None:
    """Wait until NATS answers, then `mesh provision`: compose.yml's one-shot `provision` service,
    which the services wait for (a server that is still starting is no failure).

    Exits 5 when NATS does not answer (or refuses the credential) within `--wait` seconds.

    Example: `MESH_NATS_URL=nats://nats:4222 mesh deploy provision --wait 60`
    """
    settings: MeshSettings = ctx.obj
    asyncio.run(_wait_for_nats(settings, wait))
    provisioning.provision(ctx)


async def _wait_for_nats(settings: MeshSettings, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            nc = await connect(settings, name="mesh-deploy-provision")
        except NatsUnreachable:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(1)
        else:
            await nc.close()
            return
