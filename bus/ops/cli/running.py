"""Commands that run the mesh: `demo`, `up`, `status`, `run`."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from importlib.resources import files
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from bus.client import MeshClient
from bus.errors import MeshError
from bus.ops.cli.render import print_outcome
from bus.ops.identities import OPERATOR, Identities, generate_for_mesh
from bus.ops.launcher import RunningMesh, nats_url_was_given, redact_nats_url, start_mesh
from bus.ops.processes import stop_all, supervise
from bus.ops.settings import MeshSettings
from bus.ops.trace_collector import LocalTraces
from contracts.outcomes import Outcome
from contracts.releases import ReleaseProposed

console = Console()
SAMPLES = files("contracts") / "samples"


def register(app: typer.Typer) -> None:
    app.command()(demo)
    app.command()(up)
    app.command()(status)
    app.command()(run)


def _service_names() -> list[str]:
    from services.index import SERVICES

    return list(SERVICES)


def demo(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each outcome.")] = 20.0,
) -> None:
    """Run the whole mesh once: two releases, one clean and one with a planted secret.

    Starts an embedded nats-server (data in `.mesh/demo`), provisions streams and buckets,
    starts every service as its own process, publishes both proposals, prints each outcome
    with its reviews and findings, and shuts everything down.

    Example: `mesh demo`
    """
    settings: MeshSettings = ctx.obj
    started = time.perf_counter()
    home = settings.home / "demo"
    console.print("[bold]agent-mesh demo[/] — starting embedded NATS and services…")
    mesh = start_mesh(settings, names=_service_names(), home=home, embedded=True, fresh=True)
    try:
        console.print(
            f"NATS {mesh.shown_nats_url}; "
            + ", ".join(f"{s.name} (pid {s.pid})" for s in mesh.services)
            + f" ready in {time.perf_counter() - started:.1f} s\n"
        )
        expectations = {"release_clean.json": Outcome.APPROVED, "release_secret.json": Outcome.BLOCKED}
        outcomes = asyncio.run(_propose_samples(mesh, list(expectations), timeout))
    finally:
        mesh.stop()
    wrong = [
        f"{name}: expected {want.value}, got {got.outcome.value if got else 'no outcome'}"
        for (name, want), got in zip(expectations.items(), outcomes, strict=True)
        if got is None or got.outcome != want
    ]
    console.print(f"\nDone in {time.perf_counter() - started:.1f} s; everything stopped.")
    if wrong:
        raise MeshError("demo outcomes were not as expected: " + "; ".join(wrong) + f" (logs in {home / 'logs'})")


async def _propose_samples(mesh: RunningMesh, files: list[str], timeout: float):
    async with await MeshClient.connect(mesh.settings, name="mesh-demo") as client:
        proposals = [ReleaseProposed.model_validate_json((SAMPLES / f).read_text()) for f in files]
        for proposal in proposals:
            await client.propose(proposal)
            console.print(f"→ proposed {proposal.release_id}: {proposal.title}")
        console.print()
        results = await asyncio.gather(*(client.wait_for_outcome(p, timeout=timeout) for p in proposals))
        for proposal, outcome in zip(proposals, results, strict=True):
            if outcome is None:
                console.print(f"[red]NO OUTCOME[/] {proposal.release_id} within {timeout:.0f} s")
            else:
                print_outcome(console, outcome)
            console.print()
        return results


def up(
    ctx: typer.Context,
    base_port: Annotated[
        int, typer.Option(help="HTTP port of the first service (registry); the others follow. 0 picks free ports.")
    ] = 8080,
    cluster: Annotated[
        int,
        typer.Option(help="Run N embedded nats-servers as one JetStream cluster (R3 streams and KV); 0: one server."),
    ] = 0,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Debugging only: the embedded server takes any connection, and anyone who reaches it may "
            "publish anything (forged reviews and outcomes included).",
        ),
    ] = False,
    traces: Annotated[
        bool,
        typer.Option(
            "--traces/--no-traces",
            help="Keep the services' recent spans in the mesh itself (an OTLP receiver and the MESH_TRACES "
            "stream) for `mesh trace`; with OTEL_EXPORTER_OTLP_ENDPOINT set, services export there instead.",
        ),
    ] = True,
) -> None:
    """Run the whole mesh in the foreground until Ctrl-C or SIGTERM.

    Uses an embedded nats-server (data in `.mesh/nats`) unless MESH_NATS_URL is set. Shows one
    live status line per service and restarts a service that dies, or that is alive but has not
    answered its health probe for about ten seconds (a stuck event loop: it is killed first).
    Writes `.mesh/run.json` (NATS URL with any password masked, each service's pid and HTTP
    URL) for `mesh status` and other tools. `--cluster 3` runs three embedded nodes with routes
    instead (data in `.mesh/cluster`); any one may die.

    The embedded server is secured: every service connects with its own identity (seeds in
    `.mesh/identities`, mode 0600) and may do only what it declares; the CLI in this folder uses
    the operator's. With MESH_NATS_URL, services use the identities in `.mesh/identities` when
    `mesh identities generate` made them (your server must include its auth.conf).

    Traces: every service exports its spans to an OTLP receiver `mesh up` runs (port 4318 when
    free), which keeps them in the MESH_TRACES stream (MESH_TRACES_MAX_AGE_SECONDS, 24 h, and
    MESH_TRACES_MAX_BYTES, 256 MB) for `mesh trace RELEASE`. With OTEL_EXPORTER_OTLP_ENDPOINT set
    (Jaeger, a collector) they export there and no store runs; `--no-traces` turns spans off.

    Example: `mesh up` then, in another terminal, `curl localhost:8080/agents` and
    `mesh publish release.proposed contracts/samples/release_clean.json --wait 30`
    """
    settings: MeshSettings = ctx.obj
    embedded = not nats_url_was_given(settings)
    if cluster and not embedded:
        raise MeshError("--cluster starts embedded servers; unset MESH_NATS_URL, or drop --cluster to use your own")
    if insecure and not embedded:
        raise MeshError("--insecure applies to the embedded server; your own server's configuration decides")
    if insecure:
        console.print(
            "[bold red]INSECURE: the embedded NATS server accepts any connection; anyone who can reach it may "
            "publish reviews and outcomes. For debugging only.[/]"
        )
    # receiving before the services start, storing once NATS is up (spans wait in between)
    local_traces = LocalTraces.plan(settings, enabled=traces, port=4318 if base_port else 0)
    try:
        mesh = start_mesh(
            settings,
            names=_service_names(),
            home=settings.home,
            embedded=embedded,
            base_port=base_port,
            cluster=cluster,
            secure=not insecure,
            identities=None if embedded else _own_server_identities(settings),
            env=local_traces.env,
        )
    except BaseException:
        local_traces.stop()
        raise
    local_traces.connect(mesh.settings)
    # in run.json, so `mesh publish` from another terminal starts the flow's trace in the same store
    mesh.otlp_endpoint = local_traces.env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    run_file = mesh.write_run_file()
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    kind = f"embedded {cluster}-node cluster" if mesh.cluster else "embedded" if embedded else "external"
    guard = (
        f"identities in {mesh.identities.folder}" if mesh.identities else "[red]no identities: anyone may publish[/]"
    )
    console.print(f"mesh up: NATS {mesh.shown_nats_url} ({kind}; {guard}); run file {run_file}")
    console.print(f"traces: {local_traces.where}")
    try:
        with Live(_status_table(mesh), console=console, refresh_per_second=2, transient=False) as live:
            while not stopping:
                if restarted := supervise(mesh.services):
                    mesh.write_run_file()
                for service in restarted:
                    console.print(f"restarted {service.name} (now pid {service.pid}): {service.last_restart}")
                live.update(_status_table(mesh))
                time.sleep(0.5)
    finally:
        console.print("stopping: draining services, then NATS…")
        stop_all(mesh.services)
        if stored := local_traces.stop():  # after the services (their last spans), before NATS
            console.print(f"traces: {stored}")
        mesh.stop()
        run_file.unlink(missing_ok=True)
        console.print("stopped.")


def _own_server_identities(settings: MeshSettings) -> Identities | None:
    """The identities `mesh identities generate` wrote for your own server, if it did."""
    if not (settings.identities_folder / f"{OPERATOR}.nk").exists():
        return None
    return generate_for_mesh(settings, settings.identities_folder, names=_service_names())


def _status_table(mesh: RunningMesh) -> Table:
    table = Table("service", "pid", "url", "health", "restarts", box=None)
    for service in mesh.services:
        health = service.state  # as `supervise` last saw it: one probe per round, not two
        style = {"ready": "green", "no answer": "red", "down": "red"}.get(health, "yellow")
        if service.last_restart:
            health += f" (last restart: {service.last_restart})"
        table.add_row(service.name, str(service.pid), service.url, f"[{style}]{health}[/]", str(service.restarts))
    return table


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Show the mesh started by `mesh up` (read from `.mesh/run.json`) and check each service's health.

    Exits 1 when a service is not ready. Example: `mesh status --json`
    """
    import httpx

    settings: MeshSettings = ctx.obj
    run_file = settings.home / "run.json"
    if not run_file.exists():
        raise MeshError(f"no running mesh found ({run_file} is missing); start one with `mesh up`")
    info = json.loads(run_file.read_text())
    nats_url = redact_nats_url(info["nats_url"])  # run files written before credentials were masked
    rows = {}
    for name, service in info["services"].items():
        try:
            ready = httpx.get(f"{service['url']}/readyz", timeout=2).status_code == 200
            health = "ready" if ready else "not ready"
        except httpx.HTTPError:
            health = "down"
        rows[name] = {**service, "health": health}
    if as_json:
        typer.echo(json.dumps({"nats_url": nats_url, "services": rows}, indent=2))
    else:
        console.print(f"NATS {nats_url}")
        table = Table("service", "pid", "url", "health", box=None)
        for name, row in rows.items():
            table.add_row(name, str(row["pid"]), row["url"], row["health"])
        console.print(table)
    if any(row["health"] != "ready" for row in rows.values()):
        raise typer.Exit(1)


def run(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="Service to run: registry, security, compliance or coordinator.")],
    port: Annotated[int | None, typer.Option(help="HTTP port (default MESH_HTTP_PORT).")] = None,
) -> None:
    """Run one service alone against MESH_NATS_URL — what a container runs.

    Exits 10 after `mesh admin drain` (it finished its in-flight work on purpose): `mesh up` does
    not start it again, and a container's restart policy should not either.

    Example: `MESH_NATS_URL=nats://nats:4222 mesh run security --port 8081`
    (equivalently `faststream run services.security:app --port 8081`).
    """
    import uvicorn

    from bus.drain import EXIT_DRAINED
    from services.index import SERVICES

    if service not in SERVICES:
        raise MeshError(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
    # its own identity, not the operator's the CLI would use
    settings = MeshSettings().with_identity(service)
    entry = SERVICES[service]
    agent = entry.load().build(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            entry.serve(agent),
            host=settings.http_host,
            port=port if port is not None else settings.http_port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    )
    # Drained: shut down as on SIGTERM, but without a signal, so the exit code can say so.
    agent.on_drained = lambda: setattr(server, "should_exit", True)
    server.run()
    if agent.drained:
        raise typer.Exit(EXIT_DRAINED)
