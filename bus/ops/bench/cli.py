"""`mesh bench`: the mesh's end-to-end throughput and latency against raw nats-py floors.

`bench` is a command group whose default action is the mesh benchmark, so `mesh bench
--proposals 50` runs it and other benchmarks can live beside it (`mesh bench <name>`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bus.errors import MeshError
from bus.ops.arguments import writable_file
from bus.ops.settings import MeshSettings

console = Console()

bench = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode="markdown",
)


def register(app: typer.Typer) -> None:
    app.add_typer(bench, name="bench")


@bench.callback(invoke_without_command=True)
def mesh_bench(
    ctx: typer.Context,
    proposals: Annotated[
        int, typer.Option("--proposals", "-n", min=1, help="Proposals measured per system and row.")
    ] = 1000,
    concurrency: Annotated[
        list[int] | None,
        typer.Option("--concurrency", "-c", min=1, help="Proposals in flight (repeat for several rows)."),
    ] = None,
    replicas: Annotated[
        list[int] | None,
        typer.Option("--replicas", "-r", min=1, help="Processes per reviewer (repeat for several rows)."),
    ] = None,
    repeat: Annotated[int, typer.Option(min=1, help="Measure each row this many times; figures are medians.")] = 1,
    warmup: Annotated[int, typer.Option(min=0, help="Unmeasured proposals before each measurement.")] = 100,
    open_rounds: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also grow the coordinator to this many open rounds and time a review at 10, 100, ... of them "
            "(the published figures use 10000, which takes minutes; 0 skips it).",
        ),
    ] = 0,
    probes: Annotated[int, typer.Option(min=1, help="Reviews timed at each open-rounds checkpoint.")] = 100,
    floor_kv: Annotated[
        bool, typer.Option("--floor-kv/--no-floor-kv", help="Also run the floor with durable rounds.")
    ] = True,
    auth_cost: Annotated[
        bool,
        typer.Option(
            "--auth-cost/--no-auth-cost",
            help="Also run the mesh without authorization (mesh-open), to report what authorization costs.",
        ),
    ] = True,
    trace_cost: Annotated[
        bool,
        typer.Option(
            "--trace-cost/--no-trace-cost",
            help="Also run the mesh with tracing on (mesh-traced: spans exported to a trace store, as `mesh up` "
            "keeps them), to report what tracing costs.",
        ),
    ] = True,
    trace_sampling: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="The share of traces mesh-traced records (OTEL_TRACES_SAMPLER=parentbased_traceidratio); "
            "1 records every one. The tracing target is reported for this sampling.",
        ),
    ] = 1.0,
    json_file: Annotated[
        Path | None, typer.Option("--json", callback=writable_file, help="Write every figure to this JSON file.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", callback=writable_file, help="Write latency CDFs to this PNG file.")
    ] = None,
    fail_on_targets: Annotated[
        bool,
        typer.Option(
            "--fail-on-targets", help="Exit with status 1 when a target is not met (otherwise they are only reported)."
        ),
    ] = False,
) -> None:
    """Measure the mesh end to end against a raw nats-py floor, in the same run.

    Starts embedded nats-servers, the real services as separate processes (offline
    reviewers: no model calls) and, beside them, the floors: the same message flow written
    directly on nats-py with the same processes, payloads, consumers and acks. Publishes N
    proposals keeping C in flight and reports proposals/s, publish -> outcome latency
    p50/p90/p99, CPU seconds and peak RSS per process, and mesh/floor ratios. The mesh runs
    secured (one identity per service, as `mesh up` starts it) and, unless `--no-auth-cost`,
    also on a server without authorization (mesh-open): mesh/mesh-open is what authorization
    costs; and, unless `--no-trace-cost`, with every service exporting its spans to a trace
    store as `mesh up` keeps them (mesh-traced): mesh-traced/mesh is what tracing costs (the
    mesh itself runs with tracing off). With `--open-rounds N` it then grows the coordinator
    to N open rounds and times a review at 10, 100, ... N of them (minutes for 10,000).

    Each target is reported met or not met; only with `--fail-on-targets` does a target not
    met end the command with exit status 1 (a CI gate).

    Without `--concurrency`/`--replicas` it runs the full matrix, C = 1, 16, 128 and R = 1, 2;
    with either one, the other defaults to a single value (C = 16, R = 1).

    Example: `mesh bench --proposals 1000 --json bench.json --plot bench.png`
    """
    if ctx.invoked_subcommand is not None:
        return
    from bus.ops.bench.report import print_report, write_json, write_plot
    from bus.ops.bench.runner import MATRIX_CONCURRENCY, MATRIX_REPLICAS, Plan, run_bench

    settings: MeshSettings = ctx.obj
    matrix = not concurrency and not replicas
    plan = Plan(
        proposals=proposals,
        concurrencies=list(MATRIX_CONCURRENCY) if matrix else list(concurrency or [16]),
        replicas=list(MATRIX_REPLICAS) if matrix else list(replicas or [1]),
        # Each variant beside the mesh it is compared with, so a pair is measured back to back;
        # the order reverses with every repeat, so each of a pair goes first as often.
        systems=[
            "floor",
            *(["floor+kv"] if floor_kv else []),
            *(["mesh-open"] if auth_cost else []),
            "mesh",
            *(["mesh-traced"] if trace_cost else []),
        ],
        repeat=repeat,
        warmup=min(warmup, proposals),
        open_rounds=open_rounds,
        probes=probes,
        trace_sampling=trace_sampling,
    )
    home = settings.home / "bench"
    console.print(
        f"[bold]mesh bench[/]: {plan.proposals} proposals per run, C={plan.concurrencies}, R={plan.replicas}, "
        f"systems {', '.join(plan.systems)}; "
        + (f"open rounds up to {plan.open_rounds:,}" if plan.open_rounds else "no open-rounds step (--open-rounds N)")
        + f". Logs in {home}."
    )
    try:
        report = run_bench(settings, plan, home=home, console=console)
    except OSError as exc:
        raise MeshError(f"the benchmark could not run: {exc}") from exc
    print_report(console, report)
    missing = sum(run.missing for row in report.rows for runs in row.runs.values() for run in runs)
    if missing:
        console.print(f"[red]{missing} proposals got no outcome in time[/]; see the logs in {home}")
    if json_file:
        write_json(report, json_file)
        console.print(f"figures written to {json_file}")
    if plot:
        write_plot(report, plot)
        console.print(f"latency plot written to {plot}")
    not_met = [target for target in report.targets() if not target["met"]]
    if not_met and fail_on_targets:
        console.print(f"[red]{len(not_met)} of {len(report.targets())} targets not met[/] (--fail-on-targets)")
        raise typer.Exit(1)
