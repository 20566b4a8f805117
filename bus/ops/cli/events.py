"""Commands for systems that feed the mesh: `publish` and `schema`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from nats.js.errors import NoStreamResponseError
from pydantic import ValidationError
from rich.console import Console

from bus.approvals import ApprovalsClient
from bus.client import MeshClient
from bus.errors import MeshError
from bus.ops.cli.render import EXIT_AWAITING_APPROVAL, EXIT_CODES, EXIT_INVALID, EXIT_NO_OUTCOME, print_outcome
from bus.ops.settings import MeshSettings
from bus.telemetry import Telemetry
from bus.tracing import facts_of, tracing_from_environment
from contracts.approvals import ApprovalView
from contracts.catalog import CONTRACTS, json_schema
from contracts.releases import ReleaseProposed
from contracts.validation import describe_errors

console = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command()(publish)
    app.command()(schema)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg="red")  # one line, however narrow the terminal
    return typer.Exit(EXIT_INVALID)


def publish(
    ctx: typer.Context,
    event_type: Annotated[str, typer.Argument(help="Event type, e.g. release.proposed.")],
    source: Annotated[str, typer.Argument(help="JSON file with the event, or - for standard input.")],
    wait: Annotated[float | None, typer.Option("--wait", min=0, help="Wait up to SECONDS for the outcome.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Validate an event against its contract and publish it.

    Invalid input is never published: the error names the field, exit code 2. With `--wait`,
    prints the outcome and exits 0 approved, 1 blocked, 3 escalated, 4 no outcome in time; when
    the reviewers escalate to a person (approvers configured), it stops waiting, says who may
    decide and how, and exits 3: the outcome comes once they decide (`mesh approve`/`reject`).
    With tracing on (OTEL_EXPORTER_OTLP_ENDPOINT), also prints `trace <id>`: the flow's trace.

    Example: `mesh publish release.proposed contracts/samples/release_clean.json --wait 30`
    """
    contract = CONTRACTS.get(event_type)
    if contract is None or not contract.publishable:
        publishable = ", ".join(c.name for c in CONTRACTS.values() if c.publishable)
        raise _fail(f"unknown event type {event_type!r}; you can publish: {publishable}")
    where = "standard input" if source == "-" else source
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        text = data.decode()
    except OSError as exc:
        raise _fail(f"cannot read {source}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise _fail(
            f"{where} is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}); "
            "nothing was published: save it as UTF-8 JSON"
        ) from None
    try:
        proposal = ReleaseProposed.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(describe_errors(exc, whole="(document)"))
        raise _fail(f"{where} is not a valid {event_type}; nothing was published: {problems}") from None
    settings: MeshSettings = ctx.obj
    try:
        outcome, trace_id = asyncio.run(_publish(settings, proposal, wait))
    except NoStreamResponseError:
        raise MeshError(
            f"no stream stores {event_type} in namespace {settings.namespace!r}; nothing was published: "
            "start the mesh (`mesh up`) or run `mesh provision` first"
        ) from None
    if trace_id:  # on stderr with --json, so standard output stays one JSON document
        (err if as_json else console).print(f"trace {trace_id}", highlight=False)
    if wait is None:
        if not as_json:
            console.print(f"published {event_type} {proposal.release_id} (event {proposal.event_id})")
        else:
            typer.echo(json.dumps({"published": event_type, "release_id": proposal.release_id}, indent=2))
        return
    if isinstance(outcome, ApprovalView):
        _print_awaiting(outcome, as_json)
        raise typer.Exit(EXIT_AWAITING_APPROVAL)
    if outcome is None:
        err.print(f"no outcome for {proposal.release_id} within {wait:g} s")
        raise typer.Exit(EXIT_NO_OUTCOME)
    if as_json:
        typer.echo(outcome.model_dump_json(indent=2))
    else:
        print_outcome(console, outcome)
    raise typer.Exit(EXIT_CODES[outcome.outcome])


async def _publish(settings: MeshSettings, proposal: ReleaseProposed, wait: float | None):
    """(the outcome or None, the trace id or None): the CLI's span is the root of the flow's trace."""
    _export_like_the_running_mesh(settings)
    telemetry = tracing_from_environment("mesh-cli") or Telemetry()
    telemetry.start()
    try:
        async with await MeshClient.connect(settings, name="mesh-publish", telemetry=telemetry) as client:
            with telemetry.span("mesh publish release.proposed", facts_of(proposal)):
                await client.propose(proposal)
                outcome = None
                if wait is not None:
                    approvals = ApprovalsClient(client.nc, client.settings)
                    outcome = await approvals.outcome_or_request(
                        client, proposal.release_id, proposal.content_digest, timeout=wait
                    )
                return outcome, telemetry.trace_id()
    finally:
        await telemetry.flush()


def _print_awaiting(view: ApprovalView, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"awaiting_approval": view.model_dump(mode="json")}, indent=2))
        return
    console.print(f"[bold yellow]AWAITING APPROVAL[/] {view.release_id}  [dim](approval {view.id})[/]")
    console.print(f"  {view.reason}", highlight=False, markup=False)
    who = ", ".join(view.approvers)
    console.print(
        f"  needs {view.needed} approval(s) by {who} before {view.deadline.isoformat(timespec='seconds')} "
        f"(then {view.fallback})",
        highlight=False,
        markup=False,
    )
    console.print(
        f'  decide: mesh approve {view.release_id} --note "…" | mesh reject {view.release_id} --note "…" | '
        f"the gateway's /approvals/{view.id}",
        highlight=False,
        markup=False,
    )


def _export_like_the_running_mesh(settings: MeshSettings) -> None:
    """Send the CLI's spans where `mesh up` in this folder sends its services' (its run file
    says), unless OTEL_* says otherwise: the proposal's trace then starts here, as one trace."""
    if any(os.environ.get(name) for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return
    try:
        endpoint = json.loads((settings.home / "run.json").read_text()).get("otlp_endpoint")
    except (OSError, ValueError, AttributeError):
        return
    if endpoint:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint  # the SDK's exporter reads it from there


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
