"""`mesh`: run, inspect and feed the agent mesh from a terminal.

Each command lives in a module named for what it does; this one assembles them and turns every
expected failure (a bad argument, a bad setting, NATS out of reach or refusing, a file that cannot
be read or written) into one `error:` line and a documented exit code instead of a traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import nats.errors
import typer
from pydantic import ValidationError

from bus.errors import MeshError, NatsUnreachable
from bus.ops.bench import cli as bench
from bus.ops.bench import daemon_cli as bench_daemon
from bus.ops.bench import gateway_cli as bench_gateway
from bus.ops.bench import llm_cli as bench_llm
from bus.ops.cli import agents, approvals, chaos, control, dlq, events, provisioning, running, trace
from bus.ops.cli import asyncapi as asyncapi_command
from bus.ops.cli import deploy as deploy_commands
from bus.ops.cli import eval as eval_command
from bus.ops.cli import gateway as gateway_commands
from bus.ops.cli import identities as identity_commands
from bus.ops.cli import schedules as schedule_commands
from bus.ops.cli.render import EXIT_INVALID
from bus.ops.run_file import use_live_mesh
from bus.ops.settings import MeshSettings
from contracts.validation import describe_errors

EXIT_NATS_UNREACHABLE = 5  # NATS refused, silent, or refused our credential (bus.errors.NatsUnreachable)

app = typer.Typer(
    name="mesh",
    help="agent-mesh: AI agents that cooperate over NATS JetStream.\n\n"
    "Start with `mesh demo`, then `mesh up` and `mesh publish release.proposed FILE --wait 30`.\n\n"
    "Run in the folder of a live `mesh up`, commands talk to its NATS (from `.mesh/run.json`) unless "
    "MESH_NATS_URL is set.\n\n"
    f"Exit codes: 0 done; 1 failed (or blocked); 2 invalid input or settings; {EXIT_NATS_UNREACHABLE} NATS "
    "unreachable or credential refused; `publish --wait`: 3 escalated or awaiting approval, 4 no outcome in time; `run`: 10 drained.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)


@app.callback()
def load_settings(ctx: typer.Context) -> None:
    """Read the settings once, before any command runs; every command gets them from ctx.obj."""
    settings = MeshSettings()
    if ctx.invoked_subcommand not in _OWN_NATS:
        settings = use_live_mesh(settings, say=lambda line: typer.secho(line, err=True, dim=True))
    # the operator's identity, when `mesh up` generated one here (bus/ops/identities.py)
    ctx.obj = settings.with_identity("operator")


# These start a mesh of their own (or only read run.json), so never join the one running here.
_OWN_NATS = {"up", "demo", "chaos", "bench", "status", "schema", "eval", "deploy"}


running.register(app)
events.register(app)
provisioning.register(app)
agents.register(app)
control.register(app)
bench.register(app)
dlq.register(app)
chaos.register(app)
identity_commands.register(app)
gateway_commands.register(app)
trace.register(app)
asyncapi_command.register(app)
schedule_commands.register(app)
eval_command.register(app)
deploy_commands.register(app)  # `mesh deploy compose`, `mesh deploy provision`
approvals.register(app)  # `mesh approvals list`, `mesh approve`, `mesh reject`, `mesh audit`
bench_llm.register(bench.bench)  # `mesh bench llm`
bench_gateway.register(bench.bench)  # `mesh bench gateway`
bench_daemon.register(bench.bench)  # `mesh bench daemon`


def main() -> None:
    try:
        # not standalone: typer's own usage errors come back here, to be said in one line like ours
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # a usage error (exit 2): a bad option, argument or value
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(exc.exit_code)  # typer printed the help already
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        _fail(exc.format_message() + hint, exc.exit_code)
    except typer.Abort:
        _fail("aborted; nothing was changed", 1)
    except ValidationError as exc:
        errors = "; ".join(describe_errors(exc, whole="settings"))
        typer.secho(f"error: invalid settings: {errors} (check your MESH_* variables)", err=True, fg="red")
        sys.exit(EXIT_INVALID)
    except NatsUnreachable as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(EXIT_NATS_UNREACHABLE)
    except MeshError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(1)
    except nats.errors.Error as exc:  # JetStream refused a request, or did not answer it
        _fail(f"{exc} (NATS refused or did not answer the request)", 1)
    except OSError as exc:  # a file or socket the command needed
        _fail(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), 1)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg="red")
    sys.exit(code)
