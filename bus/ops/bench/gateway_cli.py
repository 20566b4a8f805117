"""`mesh bench gateway`: the gateway's added latency over a direct bus publish, same run."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from bus.errors import MeshError
from bus.ops.settings import MeshSettings

console = Console(soft_wrap=True)


def register(bench: typer.Typer) -> None:
    """Add `gateway` to the `mesh bench` command group."""
    bench.command("gateway")(bench_gateway)


def bench_gateway(
    ctx: typer.Context,
    proposals: Annotated[int, typer.Option("--proposals", "-n", min=1, help="Proposals measured on each path.")] = 100,
    warmup: Annotated[int, typer.Option(min=0, help="Unmeasured proposals on each path first.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds a proposal may take on either path before the run fails.")
    ] = 30.0,
) -> None:
    """Time a proposal's round trip through the gateway against the same on the bus, one run.

    Starts an embedded, secured mesh (offline reviewers, coordinator, gateway; data in
    `.mesh/bench-gateway`), then alternates: publish a fresh proposal with the NATS client and
    wait for its outcome (the floor), and POST one to `/v1/events/release.proposed?wait=` (`--timeout`).
    Proposals go one at a time, so the figures are latency, not queueing. Prints medians and
    p90s of both, the median the gateway adds, and the ratio.

    Example: `mesh bench gateway -n 200`
    """
    from bus.ops.bench.gateway import run_gateway_bench

    settings: MeshSettings = ctx.obj
    home = settings.home / "bench-gateway"
    if not as_json:
        console.print(
            f"[bold]mesh bench gateway[/]: {proposals} proposals per path after {warmup} warm-up; logs in {home}"
        )
    try:
        figures = run_gateway_bench(settings, home=home, proposals=proposals, warmup=warmup, timeout=timeout).as_dict()
    except OSError as exc:
        raise MeshError(f"the gateway benchmark could not run: {exc}") from exc
    if as_json:
        typer.echo(json.dumps(figures))
        return
    console.print(f"bus (floor)   median {figures['bus_median_ms']:8.2f} ms   p90 {figures['bus_p90_ms']:8.2f} ms")
    console.print(
        f"gateway       median {figures['gateway_median_ms']:8.2f} ms   p90 {figures['gateway_p90_ms']:8.2f} ms"
    )
    console.print(
        f"added by the gateway: {figures['added_median_ms']:.2f} ms at the median ({figures['ratio']:.2f}× the floor)"
    )
