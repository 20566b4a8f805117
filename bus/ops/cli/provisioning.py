"""Commands that look after the broker's state: `provision`, and what a credential may do there."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import nats.errors
import typer
from rich.console import Console
from rich.markup import escape

from bus.connect import connect
from bus.errors import MeshError
from bus.ops.arguments import BadUsage
from bus.ops.cli.render import folded_table
from bus.ops.launcher import provision_mesh, redact_nats_url
from bus.ops.permission_probe import Result, probe, standard_checks
from bus.ops.settings import MeshSettings

console = Console()


def register(app: typer.Typer) -> None:
    app.command()(provision)


def provision(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Only report drift; change nothing (exit 1 on drift).")
    ] = False,
    check_permissions: Annotated[
        bool,
        typer.Option(
            "--check-permissions",
            help="Instead, report what the current credential (MESH_NATS_CREDENTIALS) may publish, "
            "subscribe and ask of JetStream, by asking the server; changes nothing.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --check-permissions: print JSON.")] = False,
    allow_downgrade: Annotated[
        bool,
        typer.Option(
            "--allow-downgrade",
            help="Also apply changes that lose durability or data (fewer replicas, shorter or smaller "
            "limits, memory storage, another retention); without it they are refused (exit 1).",
        ),
    ] = False,
) -> None:
    """Create or reconcile every stream, consumer and KV bucket, and report what changed.

    FastStream silently keeps a durable consumer's old settings; this command does not: it
    compares each object with the desired state and corrects any drift. A change that would
    lose durability or data, such as R3 streams made R1 because MESH_STREAM_REPLICAS was not
    set, is refused and reported (exit 1) unless `--allow-downgrade` is given.

    Example: `MESH_NATS_URL=nats://127.0.0.1:4222 mesh provision --check`, then without `--check`
    """
    from services.index import SERVICES

    settings: MeshSettings = ctx.obj
    if check_permissions:
        agents = {name: SERVICES[name].load().build(settings).consumers for name in SERVICES}
        results = asyncio.run(_probe(settings, agents))
        _show_permissions(settings, results, as_json=as_json)
        return
    if as_json:
        raise BadUsage("--json goes with --check-permissions")
    report = asyncio.run(
        provision_mesh(
            settings, names=list(SERVICES), reconcile=not check, allow_downgrade=allow_downgrade, create=not check
        )
    )
    for line in report.created:
        console.print(f"[green]created[/]   {line}")
    for line in report.updated:
        console.print(f"[yellow]corrected[/] {line}")
    for line in report.drifted:
        console.print(f"[red]drift[/]     {line}")
    for line in report.missing:
        console.print(f"[red]missing[/]   {line}")
    for line in report.refused:
        console.print(f"[red]refused[/]   {line}")
    console.print(
        f"{len(report.created)} created, {len(report.updated)} corrected, "
        f"{len(report.drifted)} drifted, {len(report.refused)} refused, "
        + (f"{len(report.missing)} missing, " if report.missing else "")
        + f"{len(report.unchanged)} already right"
    )
    if report.refused:
        console.print(
            f"Refused {len(report.refused)} change(s) that would lose durability or data; they were left as they "
            "are. If the server is right, set the MESH_* settings to match it (on a 3-node cluster "
            "MESH_STREAM_REPLICAS=3); to apply them anyway, run `mesh provision --allow-downgrade`.",
            highlight=False,
        )
        raise typer.Exit(1)
    if check and (report.drifted or report.missing):
        raise typer.Exit(1)


async def _probe(settings: MeshSettings, agents: dict) -> list[Result]:
    try:
        nc = await connect(settings, name="mesh-permission-probe")
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        raise MeshError(
            f"could not connect to NATS at {redact_nats_url(settings.nats_url)} ({exc or type(exc).__name__}); "
            "check MESH_NATS_URL and MESH_NATS_CREDENTIALS"
        ) from exc
    try:
        return await probe(nc, standard_checks(settings, agents))
    finally:
        await nc.close()


def _show_permissions(settings: MeshSettings, results: list[Result], *, as_json: bool) -> None:
    server = redact_nats_url(settings.nats_url)
    credential = str(settings.nats_credentials) if settings.nats_credentials else None
    if as_json:
        rows = [
            {
                "check": r.check.label,
                "kind": r.check.kind,
                "subject": r.check.subject,
                "allowed": r.allowed,
                "detail": r.detail,
            }
            for r in results
        ]
        typer.echo(json.dumps({"server": server, "credential": credential, "checks": rows}, indent=2))
        return
    console.print(
        f"permissions on {escape(server)} with credential {escape(credential or '(none: MESH_NATS_CREDENTIALS unset)')}",
        highlight=False,
    )
    table = folded_table("check", "subject", "result")
    notes = list(dict.fromkeys(r.check.note for r in results if r.check.note))
    for r in results:
        verdict = "[green]allowed[/]" if r.allowed else "[red]denied[/]"
        mark = f" [{notes.index(r.check.note) + 1}]" if r.check.note else ""
        table.add_row(escape(r.check.label + mark), escape(r.check.subject), verdict)
    console.print(table)
    for number, note in enumerate(notes, 1):
        console.print(f"[{number}] {note}", highlight=False, markup=False)
    denied = sum(not r.allowed for r in results)
    console.print(f"{len(results) - denied} allowed, {denied} denied; nothing was changed")
