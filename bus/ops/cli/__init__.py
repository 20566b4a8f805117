"""`mesh`: run, inspect and feed the agent mesh from a terminal.

Each command lives in a module named for what it does; this one assembles them and turns
configuration mistakes into one clear line instead of a traceback.
"""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from bus.errors import MeshError
from bus.ops.bench import cli as bench
from bus.ops.bench import llm_cli as bench_llm
from bus.ops.cli import agents, chaos, control, dlq, events, provisioning, running, trace
from bus.ops.cli import identities as identity_commands
from bus.ops.settings import MeshSettings
from contracts.validation import describe_errors

app = typer.Typer(
    name="mesh",
    help="agent-mesh: AI agents that cooperate over NATS JetStream.\n\n"
    "Start with `mesh demo`, then `mesh up` and `mesh publish release.proposed FILE --wait 30`.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)


@app.callback()
def load_settings(ctx: typer.Context) -> None:
    """Read the settings once, before any command runs; every command gets them from ctx.obj."""
    # the operator's identity, when `mesh up` generated one here (bus/ops/identities.py)
    ctx.obj = MeshSettings().with_identity("operator")


running.register(app)
events.register(app)
provisioning.register(app)
agents.register(app)
control.register(app)
bench.register(app)
dlq.register(app)
chaos.register(app)
identity_commands.register(app)
trace.register(app)
bench_llm.register(bench.bench)  # `mesh bench llm`


def main() -> None:
    try:
        app()
    except ValidationError as exc:
        errors = "; ".join(describe_errors(exc, whole="settings"))
        typer.secho(f"error: invalid settings: {errors} (check your MESH_* variables)", err=True, fg="red")
        sys.exit(2)
    except MeshError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(1)
