"""Commands that run the mesh: `demo`, `up`, `status`, `run`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import stat
import time
from importlib.resources import files
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from bus.client import MeshClient
from bus.connect import connect
from bus.errors import MeshError
from bus.ops.arguments import MAX_PORT, BadUsage, positive
from bus.ops.cli.render import folded_table, print_outcome
from bus.ops.gateway_access import curl_line, local_key
from bus.ops.identities import OPERATOR, Identities, generate_for_mesh
from bus.ops.launcher import RunningMesh, nats_url_was_given, redact_nats_url, start_mesh
from bus.ops.nats_watch import WatchedNats, supervise_nats, watch_nats
from bus.ops.processes import stop_all, supervise
from bus.ops.run_file import lock_home
from bus.ops.settings import MeshSettings
from bus.ops.trace_collector import LocalTraces
from contracts.outcomes import Outcome, RoundDecided
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
    timeout: Annotated[float, typer.Option(callback=positive, help="Seconds to wait for each outcome.")] = 20.0,
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
    """Propose the first sample through the gateway over HTTP (as the printed curl would), the
    others straight on the bus; print each outcome."""
    key, key_file = local_key(mesh.settings)
    gateway = next(s.url for s in mesh.services if s.name == "gateway")
    async with await MeshClient.connect(mesh.settings, name="mesh-demo") as client:
        proposals = [ReleaseProposed.model_validate_json((SAMPLES / f).read_text()) for f in files]
        for proposal in proposals[1:]:
            await client.propose(proposal)
            console.print(f"→ proposed {proposal.release_id} on the bus: {proposal.title}")
        first = proposals[0]
        console.print(f"→ proposing {first.release_id} through the gateway: {first.title}")
        console.print(
            f"  {curl_line(gateway, key_file, sample=f'contracts/samples/{files[0]}')}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        console.print()
        over_http = _propose_over_http(gateway, key, first, timeout)
        results = await asyncio.gather(over_http, *(client.wait_for_outcome(p, timeout=timeout) for p in proposals[1:]))
        for proposal, outcome in zip(proposals, results, strict=True):
            if outcome is None:
                console.print(f"[red]NO OUTCOME[/] {proposal.release_id} within {timeout:.0f} s")
            else:
                print_outcome(console, outcome)
            console.print()
        return results


async def _propose_over_http(gateway: str, key: str, proposal: ReleaseProposed, timeout: float) -> RoundDecided | None:
    async with httpx.AsyncClient(timeout=timeout + 10) as http:
        response = await http.post(
            f"{gateway}/v1/events/release.proposed",
            params={"wait": timeout},
            content=proposal.model_dump_json(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
    if response.status_code >= 400:
        raise MeshError(f"the gateway refused the demo's proposal: {response.status_code} {response.text[:300]}")
    outcome = response.json().get("outcome")
    return RoundDecided.model_validate(outcome) if outcome else None


def up(
    ctx: typer.Context,
    base_port: Annotated[
        int,
        typer.Option(
            min=0,
            max=MAX_PORT,
            help="HTTP port of the first service (registry); the others follow. 0 picks free ports.",
        ),
    ] = 8080,
    cluster: Annotated[
        int,
        typer.Option(
            min=0, help="Run N embedded nats-servers as one JetStream cluster (R3 streams and KV); 0: one server."
        ),
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
    """Run the whole mesh in the foreground until Ctrl-C, SIGTERM or SIGHUP (the terminal closed),
    then stop it in order: services drain first, NATS last.

    Uses an embedded nats-server (data in `.mesh/nats`) unless MESH_NATS_URL is set. Shows one
    live status line per embedded nats-server and per service, and restarts what it started when
    it dies (at once, then with a growing backoff while it keeps dying; a nats-server on the same
    port with the same store), and a service that is alive but has not answered its health probe
    for about ten seconds (a stuck event loop: it is killed first).
    Writes `.mesh/run.json` (NATS URL with any password masked, each service's pid and HTTP
    URL) for `mesh status` and the other commands run in this folder, which use this mesh's NATS.
    One `mesh up` per MESH_HOME: a second one there exits 1 at once, naming the first's pid
    (`.mesh/up.lock`). `--cluster 3` runs three embedded nodes with routes
    instead (data in `.mesh/cluster`); any one may die, and is started again.

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
        raise BadUsage("--cluster starts embedded servers; unset MESH_NATS_URL, or drop --cluster to use your own")
    if insecure and not embedded:
        raise BadUsage("--insecure applies to the embedded server; your own server's configuration decides")
    # one home, one running mesh: a second `mesh up` here stops before touching run.json or the logs
    home_lock = lock_home(settings.home)
    if base_port:
        _check_ports(settings.http_host, base_port, len(_service_names()))
    if insecure:
        console.print(
            "[bold red]INSECURE: the embedded NATS server accepts any connection; anyone who can reach it may "
            "publish reviews and outcomes. For debugging only.[/]"
        )
    # receiving before the services start, storing once NATS is up (spans wait in between)
    local_traces = LocalTraces.plan(settings, enabled=traces, port=4318 if base_port else 0)
    _, key_file = local_key(settings)  # what the printed curl sends to the gateway
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

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if signum == signal.SIGHUP:
            _leave_the_terminal()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # SIGHUP: the terminal was closed
        signal.signal(signum, request_stop)
    kind = f"embedded {cluster}-node cluster" if mesh.cluster else "embedded" if embedded else "external"
    guard = (
        f"identities in {mesh.identities.folder}" if mesh.identities else "[red]no identities: anyone may publish[/]"
    )
    console.print(f"mesh up: NATS {mesh.shown_nats_url} ({kind}; {guard}); run file {run_file}")
    console.print(f"traces: {local_traces.where}")
    for gateway in [s for s in mesh.services if s.name == "gateway"][:1]:
        console.print(f"gateway: {gateway.url} (docs at /docs); propose a release with", soft_wrap=True)
        console.print(f"  {curl_line(gateway.url, key_file)}", soft_wrap=True, highlight=False, markup=False)
    for line in mesh.provisioning.refused:
        console.print(f"[yellow]kept[/] {line}; `mesh provision --allow-downgrade` would apply it")
    nats = watch_nats(mesh.nats, mesh.cluster)  # what we started, we restart: NATS first
    try:
        with Live(_status_table(mesh, nats), console=console, refresh_per_second=2, transient=False) as live:
            while not stopping:
                restarted = [*supervise_nats(nats), *supervise(mesh.services)]
                if restarted:
                    mesh.write_run_file()
                for what in restarted:
                    name = what.label if isinstance(what, WatchedNats) else what.name
                    console.print(f"restarted {name} (now pid {what.pid}): {what.last_restart}")
                live.update(_status_table(mesh, nats))
                time.sleep(0.5)
    finally:
        console.print("stopping: draining services, then NATS…")
        stop_all(mesh.services)
        if stored := local_traces.stop():  # after the services (their last spans), before NATS
            console.print(f"traces: {stored}")
        mesh.stop()
        run_file.unlink(missing_ok=True)
        home_lock.release()
        console.print("stopped.")


def _check_ports(host: str, base_port: int, count: int) -> None:
    """Fail before anything starts when a service's port is past 65535 or taken."""
    last = base_port + count - 1
    if last > MAX_PORT:
        raise typer.BadParameter(
            f"{count} services need ports {base_port}-{last}, past {MAX_PORT}", param_hint="'--base-port'"
        )
    for port in range(base_port, last + 1):
        try:
            socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET).close()
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else exc
            raise MeshError(
                f"port {port} on {host} is taken ({why}); the services need {base_port}-{last}: "
                "choose another --base-port, or 0 for free ports"
            ) from None


def _own_server_identities(settings: MeshSettings) -> Identities | None:
    """The identities `mesh identities generate` wrote for your own server, if it did."""
    if not (settings.identities_folder / f"{OPERATOR}.nk").exists():
        return None
    return generate_for_mesh(settings, settings.identities_folder, names=_service_names())


def _leave_the_terminal() -> None:
    """The terminal hung up: what we print from now on goes to /dev/null. Writing to a closed
    terminal fails (EIO), and a traceback there would end the orderly shutdown half-way."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            if stat.S_ISCHR(os.fstat(fd).st_mode):  # a terminal; a pipe or a log file keeps what we print
                os.dup2(devnull, fd)
    os.close(devnull)


def _status_table(mesh: RunningMesh, nats: list[WatchedNats] | None = None) -> Table:
    table = folded_table("service", "pid", "url", "health", "restarts")
    for node in nats or []:  # as `supervise_nats` last saw each
        style = "green" if node.state == "ready" else "red"
        health = node.state + (f" (last restart: {node.last_restart})" if node.last_restart else "")
        table.add_row(node.label, str(node.pid), node.url, f"[{style}]{health}[/]", str(node.restarts))
    for service in mesh.services:
        health = service.state  # as `supervise` last saw it: one probe per round, not two
        style = {"ready": "green", "no answer": "red", "down": "red"}.get(health, "yellow")
        if service.last_restart:
            health += f" (last restart: {service.last_restart})"
        table.add_row(service.name, str(service.pid), service.url, f"[{style}]{health}[/]", str(service.restarts))
    return table


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object: NATS URL and services.")] = False,
) -> None:
    """Show the mesh started by `mesh up` (read from `.mesh/run.json`) and check each service's health.

    Exits 1 when a service is not ready. Example: `mesh status --json`
    """
    import httpx

    settings: MeshSettings = ctx.obj
    run_file = settings.home / "run.json"
    if not run_file.exists():
        raise MeshError(f"no running mesh found ({run_file} is missing); start one with `mesh up`")
    try:
        info = json.loads(run_file.read_text())
        nats_url = redact_nats_url(info["nats_url"])  # run files written before credentials were masked
        services = {name: dict(service, url=service["url"]) for name, service in info["services"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MeshError(
            f"{run_file} is not a run file `mesh up` wrote ({type(exc).__name__}: {exc}); remove it, "
            "or start the mesh with `mesh up`"
        ) from None
    rows = {}
    for name, service in services.items():
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
        table = folded_table("service", "pid", "url", "health")
        for name, row in rows.items():
            table.add_row(name, str(row["pid"]), row["url"], row["health"])
        console.print(table)
    if any(row["health"] != "ready" for row in rows.values()):
        raise typer.Exit(1)


def run(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="Service to run: registry, security, compliance or coordinator.")],
    port: Annotated[
        int | None,
        typer.Option(min=0, max=MAX_PORT, help="HTTP port (default MESH_HTTP_PORT; unset: a free port, printed)."),
    ] = None,
) -> None:
    """Run one service alone against MESH_NATS_URL — what a container runs.

    In the folder of a live `mesh up` it joins that mesh (its NATS and namespace). Without
    `--port` or MESH_HTTP_PORT it serves HTTP on a free port and prints it, so it never takes
    the registry's 8080 from `mesh up`; a container sets MESH_HTTP_PORT.

    Exits 10 after `mesh admin drain` (it finished its in-flight work on purpose): `mesh up` does
    not start it again, and a container's restart policy should not either.

    Example: `MESH_NATS_URL=nats://nats:4222 mesh run security --port 8081`
    (equivalently `faststream run services.security:app --port 8081`).
    """
    import uvicorn

    from bus.drain import EXIT_DRAINED
    from services.index import SERVICES

    if service not in SERVICES:
        raise typer.BadParameter(
            f"unknown service {service!r}; choose one of {', '.join(SERVICES)}", param_hint="'service'"
        )
    # its own identity, not the operator's the CLI would use; the NATS the CLI found (bus/ops/run_file.py)
    joined: MeshSettings = ctx.obj
    settings = (
        MeshSettings()
        .with_identity(service)
        .model_copy(update={"nats_url": joined.nats_url, "namespace": joined.namespace})
    )
    entry = SERVICES[service]
    agent = entry.load().build(settings)
    # Bound before the app starts, so the instance advertises the port it got (with 0: a free one).
    listening = _listen(settings.http_host, _http_port(port, settings))
    # One line and exit 5 now if NATS is not there (or refuses the credential), rather than
    # retrying silently before "started"; once started, the service rides out NATS restarts.
    asyncio.run(_reach_nats(settings, name=service))
    agent.serve_at(*listening.getsockname()[:2])
    if port is None and "http_port" not in settings.model_fields_set:
        host, bound = listening.getsockname()[:2]
        hint = "a free port; --port or MESH_HTTP_PORT fix one"
        typer.secho(f"{service}: HTTP on http://{host}:{bound} ({hint})", err=True, dim=True)
    server = uvicorn.Server(
        uvicorn.Config(
            entry.serve(agent),
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    )
    # Drained: shut down as on SIGTERM, but without a signal, so the exit code can say so.
    agent.on_drained = lambda: setattr(server, "should_exit", True)
    server.run(sockets=[listening])
    if agent.drained:
        raise typer.Exit(EXIT_DRAINED)


async def _reach_nats(settings: MeshSettings, *, name: str) -> None:
    nc = await connect(settings, name=name)  # fails fast, naming the URL and why
    await nc.close()


def _http_port(port: int | None, settings: MeshSettings) -> int:
    """--port, else MESH_HTTP_PORT, else 0 (a free port): never the 8080 `mesh up` gives the registry."""
    if port is not None:
        return port
    return settings.http_port if "http_port" in settings.model_fields_set else 0


def _listen(host: str, port: int) -> socket.socket:
    """The HTTP server's socket, bound now. With TCP_NODELAY, which every accepted connection
    inherits: asyncio sets it only on sockets whose `proto` says TCP, and `create_server` leaves
    it 0, so without this each response on a kept-alive connection waited ~40 ms for the
    client's delayed ACK (Nagle's algorithm holding the body behind the headers)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listening = socket.create_server((host, port), family=family)
        listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return listening
    except OSError as exc:
        raise MeshError(
            f"cannot serve HTTP on {host}:{port} ({os.strerror(exc.errno) if exc.errno else exc}); choose another port with --port "
            "or MESH_HTTP_PORT, or stop what is listening there"
        ) from exc
