"""`mesh dlq list | show SEQ | replay SEQ | purge`: look after the dead-letter stream."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console

from bus.connect import connect
from bus.ops import dead_letters as dlq
from bus.ops.arguments import confirm
from bus.ops.cli.render import folded_table
from bus.ops.settings import MeshSettings
from bus.telemetry import Telemetry
from bus.tracing import tracing_from_environment

console = Console()
dlq_app = typer.Typer(
    name="dlq",
    help="Dead letters: messages a service could not process, kept with payload, headers, error and "
    "delivery count.\n\nExample: `mesh dlq list`, `mesh dlq show 3`, `mesh dlq replay 3`, `mesh dlq purge --yes`.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def register(app: typer.Typer) -> None:
    app.add_typer(dlq_app)


async def _with_js(settings: MeshSettings, work):
    nc = await connect(settings, name="mesh-dlq")
    try:
        return await work(nc.jetstream(timeout=settings.publish_timeout_seconds))
    finally:
        await nc.drain()


def _row(stored: dlq.StoredDeadLetter, settings: MeshSettings) -> dict:
    record = stored.record
    return {
        "seq": stored.seq,
        "stored_at": stored.stored_at.isoformat() if stored.stored_at else None,
        **record.model_dump(mode="json"),
        "payload_kept": dlq.payload_note(stored, settings),
    }


@dlq_app.command("list")
def list_(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Option(help="Only this service's dead letters.")] = None,
    limit: Annotated[int, typer.Option(min=0, help="Show the newest N records (0: all).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array of the records, payloads too.")] = False,
) -> None:
    """List dead letters, oldest first: sequence, when, service, why, delivery count.

    Example: `mesh dlq list --service coordinator`
    """
    settings: MeshSettings = ctx.obj
    found = asyncio.run(
        _with_js(settings, lambda js: dlq.list_dead_letters(js, settings, service=service, limit=limit or None))
    )
    if as_json:
        typer.echo(json.dumps([_row(stored, settings) for stored in found], indent=2))
        return
    if not found:
        console.print("no dead letters" + (f" for {service}" if service else ""))
        return
    table = folded_table("seq", "dead at", "service", "type", "deliveries", "subject", "error")
    for stored in found:
        r = stored.record
        replayed = f" (replay of {r.headers[dlq.REPLAY_OF]})" if dlq.REPLAY_OF in r.headers else ""
        if r.payload_truncated:
            replayed += " (payload in object store)" if r.payload_object else " (payload truncated)"
        table.add_row(
            str(stored.seq),
            r.dead_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.service,
            r.error_type,
            str(r.deliveries),
            r.subject,
            r.error + replayed,
        )
    console.print(table)


@dlq_app.command()
def show(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(min=1, help="Sequence of the record (from `mesh dlq list`).")],
) -> None:
    """Print one dead letter in full, as JSON: the original payload, headers, subject, error.

    `payload_kept` says whether the record holds the whole payload, only its start with the whole
    of it in the dead-letter payloads object store (replay fetches it), or only its start.

    Example: `mesh dlq show 3`
    """
    settings: MeshSettings = ctx.obj
    stored = asyncio.run(_with_js(settings, lambda js: dlq.get_dead_letter(js, settings, seq)))
    typer.echo(json.dumps(_row(stored, settings), indent=2))


@dlq_app.command()
def replay(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(min=1, help="Sequence of the record to replay.")],
) -> None:
    """Publish a dead letter's original payload and headers again, to its original subject.

    The copy gets a new message id (`replay:<stream>:<seq>`: replaying one record twice within
    the duplicate window stores it once) and the headers `Mesh-Replay-Of: <seq>` and
    `Mesh-Original-Msg-Id`. Every consumer of that subject sees it again; the mesh's consumers
    are idempotent, so those that handled it before change nothing. The copy stays in the
    original's trace.

    Example: `mesh dlq replay 3`
    """
    settings: MeshSettings = ctx.obj
    telemetry = tracing_from_environment("mesh-cli") or Telemetry()
    telemetry.start()
    try:
        stored, ack = asyncio.run(_with_js(settings, lambda js: dlq.replay(js, settings, seq, telemetry=telemetry)))
    finally:
        asyncio.run(telemetry.flush())
    if ack.duplicate:
        console.print(f"dead letter {seq} was replayed already (as {ack.stream} #{ack.seq}); not published again")
    else:
        console.print(f"replayed dead letter {seq} to {stored.record.subject} ({ack.stream} #{ack.seq})")


@dlq_app.command()
def purge(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Option(help="Only this service's dead letters.")] = None,
    seq: Annotated[int | None, typer.Option(min=1, help="Only the record at this sequence.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete dead letters: all of them, one service's, or one record.

    Example: `mesh dlq purge --service security --yes`
    """
    settings: MeshSettings = ctx.obj
    what = (
        f"dead letter {seq}"
        if seq is not None
        else f"every dead letter of {service}"
        if service
        else "every dead letter"
    )
    if not confirm(f"Delete {what}?", yes=yes):
        raise typer.Exit(1)
    removed = asyncio.run(_with_js(settings, lambda js: dlq.purge(js, settings, service=service, seq=seq)))
    console.print(f"deleted {removed} dead letter{'s' if removed != 1 else ''}")
