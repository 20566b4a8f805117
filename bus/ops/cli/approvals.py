"""`mesh approvals list`, `mesh approve`, `mesh reject` and `mesh audit`: people's decisions on
escalated releases, from a terminal.

The operator decides as `operator:<user>@<host>`, or as `operator:<name>` with `--as <name>` (a
shared account naming the person at the keyboard). The decision goes out on the operator's
channel, which only the operator's NATS identity may publish on, and the coordinator takes it only
when that id is one of the approval's approvers (`MESH_APPROVERS`, e.g. `default=operator:alice`),
exactly as it checks the gateway's callers: an operator never passes for a gateway caller, nor a
gateway caller for an operator.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import socket
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from bus.approvals import ApprovalsClient
from bus.connect import connect
from bus.errors import MeshError
from bus.ops.arguments import BadUsage
from bus.ops.cli.render import EXIT_NO_OUTCOME, folded_table, print_outcome
from bus.ops.dead_letters import read_stream
from bus.ops.settings import MeshSettings
from contracts.approvals import ApprovalState, ApprovalView
from contracts.audit import AuditRecord

console = Console()
err = Console(stderr=True)
STATES = [state.value for state in ApprovalState]
_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")

approvals_app = typer.Typer(
    name="approvals",
    help="Escalated releases that wait for a person. Decide with `mesh approve REL --note …` or "
    "`mesh reject REL --note …`; `mesh audit` lists what was requested, decided, refused and expired.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

Release = Annotated[str, typer.Argument(help="The release id.")]
Revision = Annotated[
    str | None, typer.Option(help="Which revision: its content digest, or the start of it (when several wait).")
]
Note = Annotated[str, typer.Option(help="Why, in your words: it is kept on the outcome and the audit trail.")]
As = Annotated[
    str | None,
    typer.Option("--as", help="Decide as `operator:<NAME>` instead of `operator:<user>@<host>`."),
]
Wait = Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the coordinator's verdict.")]
AsJsonArray = Annotated[bool, typer.Option("--json", help="Print a JSON array of the approvals.")]


def register(app: typer.Typer) -> None:
    app.add_typer(approvals_app)
    app.command()(approve)
    app.command()(reject)
    app.command()(audit)


def decider(name: str | None) -> str:
    """`operator:<user>@<host>`, or `operator:<name>` for `--as <name>`."""
    if name is not None:
        if not _NAME.match(name):
            raise BadUsage(f"--as {name!r}: give a plain name (letters, digits, . _ @ + -), e.g. --as alice")
        return f"operator:{name}"
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment (a bare container)
        user = "unknown"
    return f"operator:{user}@{socket.gethostname()}"


async def _with_client(settings: MeshSettings, work):
    nc = await connect(settings, name="mesh-approvals")
    try:
        return await work(ApprovalsClient(nc, settings, name="mesh-cli"), nc)
    finally:
        await nc.drain()


@approvals_app.command("list")
def list_approvals(
    ctx: typer.Context,
    state: Annotated[str, typer.Option(help=f"One of {', '.join(STATES)}, or all.")] = "pending",
    as_json: AsJsonArray = False,
) -> None:
    """List approvals: release, state, who may decide, how many approvals it needs, time left.

    Example: `mesh approvals list`, `mesh approvals list --state all --json`
    """
    if state != "all" and state not in STATES:
        raise BadUsage(f"--state {state!r}: use one of {', '.join(STATES)}, or all")
    settings: MeshSettings = ctx.obj
    found: list[ApprovalView] = asyncio.run(
        _with_client(settings, lambda client, _: client.list(None if state == "all" else state))
    )
    if as_json:
        typer.echo(json.dumps([view.model_dump(mode="json") for view in found], indent=2))
        return
    if not found:
        console.print(f"no {'' if state == 'all' else state + ' '}approvals")
        return
    table = folded_table("approval", "release", "state", "needs", "approvers", "deadline", "why")
    now = datetime.now(UTC)
    for view in found:
        taken = len(view.approvals)
        table.add_row(
            escape(view.id),
            escape(f"{view.release_id} {view.service} {view.version}".strip()),
            view.state.value,
            f"{taken}/{view.needed}",
            escape(", ".join(view.approvers)),
            _left(view, now),
            escape(view.reason),
        )
    console.print(table)


def approve(
    ctx: typer.Context, release: Release, note: Note, revision: Revision = None, as_: As = None, wait: Wait = 10.0
) -> None:
    """Approve an escalated release, as the operator (exit 0 taken, 1 refused, 4 no verdict in time).

    Example: `mesh approve rel-42 --note "changelog checked with legal"`
    """
    _decide(ctx.obj, release, "approve", note, revision, as_, wait)


def reject(
    ctx: typer.Context, release: Release, note: Note, revision: Revision = None, as_: As = None, wait: Wait = 10.0
) -> None:
    """Reject an escalated release, as the operator: it is blocked (exit 0 taken, 1 refused, 4 no verdict in time).

    Example: `mesh reject rel-42 --note "no changelog entry for a customer-facing change"`
    """
    _decide(ctx.obj, release, "reject", note, revision, as_, wait)


def _decide(
    settings: MeshSettings, release: str, decision: str, note: str, revision: str | None, name: str | None, wait: float
) -> None:
    who = decider(name)

    async def work(client: ApprovalsClient, _nc):
        view = _pick(await client.of_release(release), release, revision)
        event, verdict = await client.decide(
            view, decision=decision, note=note, decider=who, channel="operator", via="cli", timeout=wait
        )
        return view, verdict, await client.get(view.id)

    view, verdict, after = asyncio.run(_with_client(settings, work))
    if verdict is None:
        err.print(
            f"the decision on approval {view.id} is on the bus, but no coordinator answered within {wait:g} s; it "
            "is taken or refused when one runs (`mesh approvals list --state all`)",
            highlight=False,
        )
        raise typer.Exit(EXIT_NO_OUTCOME)
    if not verdict.accepted:
        raise MeshError(f"refused ({verdict.status}): {verdict.detail}")
    done = {"approve": "approved", "reject": "rejected"}[decision]
    console.print(f"{done} as {who}: {verdict.detail}", highlight=False)
    if after is not None and after.outcome is not None:
        print_outcome(console, after.outcome)


def _pick(found: list[ApprovalView], release: str, revision: str | None) -> ApprovalView:
    """The approval to decide: of `revision` when given, else the one pending (or, when none is, the
    latest, so that the coordinator says why a decision now changes nothing)."""
    if revision:
        found = [view for view in found if view.revision.startswith(revision)]
    if not found:
        what = f"release {release!r}" + (f" revision {revision}" if revision else "")
        raise MeshError(f"no approval of {what} is known: it never waited for a person (`mesh approvals list`)")
    pending = [view for view in found if view.state == ApprovalState.PENDING]
    if len(pending) > 1:
        revisions = ", ".join(view.revision[:12] for view in pending)
        raise BadUsage(
            f"{len(pending)} revisions of {release!r} wait for a person ({revisions}); pick one with --revision"
        )
    return pending[0] if pending else found[-1]


def audit(
    ctx: typer.Context,
    release: Annotated[str | None, typer.Option(help="Only this release's records.")] = None,
    limit: Annotated[int, typer.Option(min=0, help="Show the newest N records (0: all).")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array of the records.")] = False,
) -> None:
    """List the audit trail of approvals, oldest first: requests, decisions, refusals, expiries.

    Each record is immutable (the audit stream denies deleting and purging) and kept
    MESH_AUDIT_RETENTION_DAYS (365).

    Example: `mesh audit --release rel-42`, `mesh audit --json`
    """
    settings: MeshSettings = ctx.obj
    s = settings.subjects
    subject = s.audit_of(release) if release else s.audit_records

    async def work(_client, nc):
        return [
            AuditRecord.model_validate_json(msg.data)
            async for msg in read_stream(nc.jetstream(), s.audit_stream, subject)
        ]

    found: list[AuditRecord] = asyncio.run(_with_client(settings, work))
    found = found[-limit:] if limit else found
    if as_json:
        typer.echo(json.dumps([record.model_dump(mode="json") for record in found], indent=2))
        return
    if not found:
        console.print("no audit records" + (f" for {release}" if release else ""))
        return
    table = folded_table("at", "kind", "release", "who", "what")
    for record in found:
        what = record.what + (f" — note: {record.note}" if record.note else "")
        table.add_row(
            record.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            record.kind.value,
            escape(record.release_id),
            escape(record.who),
            escape(what),
        )
    console.print(table)


def _left(view: ApprovalView, now: datetime) -> str:
    seconds = (view.deadline - now).total_seconds()
    stamp = view.deadline.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if view.state != ApprovalState.PENDING:
        return stamp
    if seconds <= 0:
        return f"{stamp} (passed)"
    hours, rest = divmod(int(seconds), 3600)
    return f"{stamp} ({hours} h {rest // 60} min left)" if hours else f"{stamp} ({rest // 60} min left)"
