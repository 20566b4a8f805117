"""Commands for systems that feed the mesh: `publish` and `schema`."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from bus.client import MeshClient
from bus.ops.cli.render import EXIT_CODES, EXIT_INVALID, EXIT_NO_OUTCOME, print_outcome
from bus.ops.settings import MeshSettings
from contracts.catalog import CONTRACTS, json_schema
from contracts.releases import ReleaseProposed
from contracts.validation import describe_errors

console = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command()(publish)
    app.command()(schema)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {message}", highlight=False)
    return typer.Exit(EXIT_INVALID)


def publish(
    ctx: typer.Context,
    event_type: Annotated[str, typer.Argument(help="Event type, e.g. release.proposed.")],
    source: Annotated[str, typer.Argument(help="JSON file with the event, or - for standard input.")],
    wait: Annotated[float | None, typer.Option("--wait", help="Wait up to SECONDS for the outcome.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Validate an event against its contract and publish it.

    Invalid input is never published: the error names the field, exit code 2. With `--wait`,
    prints the outcome and exits 0 approved, 1 blocked, 3 escalated, 4 no outcome in time.

    Example: `mesh publish release.proposed contracts/samples/release_clean.json --wait 30`
    """
    contract = CONTRACTS.get(event_type)
    if contract is None or not contract.publishable:
        publishable = ", ".join(c.name for c in CONTRACTS.values() if c.publishable)
        raise _fail(f"unknown event type {event_type!r}; you can publish: {publishable}")
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise _fail(f"cannot read {source}: {exc.strerror}") from None
    try:
        proposal = ReleaseProposed.model_validate_json(text)
    except ValidationError as exc:
        problems = [f"  {line}" for line in describe_errors(exc, whole="(document)")]
        raise _fail(f"{source} is not a valid {event_type}; nothing was published:\n" + "\n".join(problems)) from None
    settings: MeshSettings = ctx.obj
    outcome = asyncio.run(_publish(settings, proposal, wait))
    if wait is None:
        if not as_json:
            console.print(f"published {event_type} {proposal.release_id} (event {proposal.event_id})")
        else:
            typer.echo(json.dumps({"published": event_type, "release_id": proposal.release_id}))
        return
    if outcome is None:
        err.print(f"no outcome for {proposal.release_id} within {wait:g} s")
        raise typer.Exit(EXIT_NO_OUTCOME)
    if as_json:
        typer.echo(outcome.model_dump_json(indent=2))
    else:
        print_outcome(console, outcome)
    raise typer.Exit(EXIT_CODES[outcome.outcome])


async def _publish(settings: MeshSettings, proposal: ReleaseProposed, wait: float | None):
    async with await MeshClient.connect(settings, name="mesh-publish") as client:
        await client.propose(proposal)
        if wait is None:
            return None
        return await client.wait_for_outcome(proposal, timeout=wait)


def schema(
    name: Annotated[str | None, typer.Argument(help="Contract name; all of them when omitted.")] = None,
) -> None:
    """Print the JSON Schema of the contracts, for systems that publish raw JSON.

    Example: `mesh schema release.proposed > release.proposed.schema.json`
    """
    if name is None:
        typer.echo(json.dumps({n: json_schema(n) for n in CONTRACTS}, indent=2))
        return
    if name not in CONTRACTS:
        raise _fail(f"unknown contract {name!r}; known: {', '.join(CONTRACTS)}")
    typer.echo(json.dumps(json_schema(name), indent=2))
