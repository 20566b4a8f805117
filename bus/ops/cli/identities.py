"""`mesh identities`: one NATS identity per service, the operator's, and external publishers'."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bus.errors import MeshError
from bus.ops.arguments import BadUsage
from bus.ops.cli.render import folded_table
from bus.ops.identities import NAME, Identities, generate_for_mesh, load_publishers
from bus.ops.settings import MeshSettings

console = Console()
identities = typer.Typer(
    name="identities",
    help="Per-service NATS identities (nkey users) and the server configuration that enforces them.\n\n"
    "`mesh up` generates them in MESH_HOME by itself; use these commands for your own NATS server "
    "or to let another system publish events.",
    no_args_is_help=True,
)
EVENT = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")


def register(app: typer.Typer) -> None:
    app.add_typer(identities)


Folder = Annotated[
    Path | None, typer.Option("--out", help="Folder of the seeds and auth.conf (default: MESH_HOME/identities).")
]


@identities.command()
def generate(
    ctx: typer.Context,
    out: Folder = None,
    print_block: Annotated[
        bool, typer.Option("--print", help="Print the authorization block to paste into nats-server.conf.")
    ] = False,
    rotate: Annotated[bool, typer.Option("--rotate", help="Make new seeds instead of keeping existing ones.")] = False,
) -> None:
    """Write a seed per service, the operator's and each publisher's (mode 0600), and `auth.conf`.

    Permissions come from what each service declares (its consumers, what it publishes, the KV
    buckets it uses), never from a hand-written list. Existing seeds are kept, so generating again
    after a code change updates permissions without rotating keys.

    Then, for your own server: `include` the printed block (or auth.conf) in its configuration,
    reload it, and start each service with `MESH_NATS_CREDENTIALS=<folder>/<service>.nk`.

    Example: `mesh identities generate --out /etc/mesh/identities --print`
    """
    settings: MeshSettings = ctx.obj
    made = _generate(settings, out or settings.identities_folder, rotate=rotate)
    _reload_embedded(settings, made)
    if print_block:
        typer.echo(made.authorization(), nl=False)
        return
    console.print(f"{len(made.members)} identities in {made.folder}; server configuration {made.authorization_file}")
    console.print(_table(made))
    console.print("Every rule: `mesh identities show`.")


@identities.command("add-publisher")
def add_publisher(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the external system, e.g. ci or github.")],
    events: Annotated[
        list[str],
        typer.Option("--events", help="Event type it may publish (repeat for more), e.g. release.proposed."),
    ],
    out: Folder = None,
) -> None:
    """Give an external system an identity that may publish these events and read outcomes — nothing else.

    Writes `<folder>/<name>.nk` and regenerates auth.conf; a running embedded server (`mesh up`)
    reloads it at once. Connect from any NATS client with that seed as an nkey user and
    `_INBOX.<name>` as the inbox prefix (README: "External publishers").

    Example: `mesh identities add-publisher ci --events release.proposed`
    """
    settings: MeshSettings = ctx.obj
    if not re.match(NAME, name):
        raise BadUsage(f"publisher name {name!r}: use letters, digits, '-' or '_' (at most 64)")
    bad = [event for event in events if not EVENT.match(event)]
    if bad:
        raise BadUsage(f"--events {bad[0]!r} is not an event type (lowercase words joined by dots: release.proposed)")
    folder = out or settings.identities_folder
    publishers = {**load_publishers(folder), name: sorted(set(events))}
    made = _generate(settings, folder, publishers=publishers)
    reloaded = _reload_embedded(settings, made)
    console.print(
        f"publisher {name}: may publish {', '.join(publishers[name])} and read outcomes; "
        f"seed {made.credential(name)}" + ("; the running mesh's server reloaded" if reloaded else "")
    )


@identities.command()
def show(
    ctx: typer.Context,
    out: Folder = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Print what each identity may publish and subscribe to (the generated permission table).

    Example: `mesh identities show`
    """
    settings: MeshSettings = ctx.obj
    folder = out or settings.identities_folder
    if not (folder / "operator.nk").exists():
        raise MeshError(f"no identities in {folder}; run `mesh identities generate` (or `mesh up`) first")
    made = _generate(settings, folder)  # same seeds; the permissions as the code declares them now
    if as_json:
        rows = {i.name: {"kind": i.kind, "publicKey": i.public_key, **i.permissions.as_config()} for i in made.members}
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(_listing(made), nl=False)


def _generate(settings: MeshSettings, folder: Path, **options) -> Identities:
    try:
        return generate_for_mesh(settings, folder, **options)
    except OSError as exc:
        which = f" ({exc.filename})" if exc.filename and Path(exc.filename) != folder else ""
        raise MeshError(f"cannot write the identities in {folder}: {exc.strerror or exc}{which}") from None


def _table(made: Identities) -> Table:
    """One row per identity: the mesh subjects it may publish, and how many rules it has."""
    table = folded_table("identity", "kind", "publishes (mesh subjects)", "rules")
    for identity in made.members:
        permissions = identity.permissions
        own = [rule for rule in permissions.publish if not rule.startswith("$")]
        rules = f"{len(permissions.publish)} publish, {len(permissions.subscribe)} subscribe"
        table.add_row(identity.name, identity.kind, ", ".join(own), rules)
    return table


def _listing(made: Identities) -> str:
    """Every rule of every identity, grouped, one per line (nothing cut to fit a terminal)."""
    lines = []
    for identity in made.members:
        permissions = identity.permissions
        lines.append(f"{identity.name} ({identity.kind}, {identity.public_key})")
        lines += [f"  publish    {rule}" for rule in permissions.publish]
        lines += [f"  deny       {rule}" for rule in permissions.deny_publish]
        lines += [f"  subscribe  {rule}" for rule in permissions.subscribe]
        if permissions.responses:
            lines.append("  responds   to requests it receives ($SRV, operator controls)")
        lines.append("")
    return "\n".join(lines)


def _reload_embedded(settings: MeshSettings, made: Identities) -> bool:
    """Tell the embedded server of a running `mesh up` in this folder to read auth.conf again."""
    run_file = settings.home / "run.json"
    if made.folder != settings.identities_folder or not run_file.exists():
        return False
    try:
        pid = json.loads(run_file.read_text()).get("embedded_nats_pid")
        if pid:
            os.kill(int(pid), signal.SIGHUP)  # nats-server reloads its configuration on SIGHUP
            return True
    except (OSError, ValueError):
        pass
    return False
