"""The whole benchmark: every system at every (replicas, concurrency), then the open rounds.

For each replica count the systems (floors, mesh, mesh without authorization, mesh with
tracing) start once, each on its own nats-server, and stay up while the concurrencies are
measured in turn; within a row the systems take turns, in the planned order and then in
reverse (A B C, C B A, A B C, ...), so that of any two systems each goes first as often and
drift in a noisy machine falls on all of them alike.
Each measurement is preceded by an unmeasured warm-up at the same concurrency.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from bus.ops.bench.driver import drive
from bus.ops.bench.open_rounds import measure_open_rounds
from bus.ops.bench.report import BenchReport, environment
from bus.ops.bench.resources import Meter
from bus.ops.bench.results import Row, Run
from bus.ops.bench.systems import SYSTEMS, System, bench_settings, start_system
from bus.ops.settings import MeshSettings

MATRIX_CONCURRENCY = (1, 16, 128)
MATRIX_REPLICAS = (1, 2)


@dataclass
class Plan:
    proposals: int = 1000
    concurrencies: list[int] = field(default_factory=lambda: list(MATRIX_CONCURRENCY))
    replicas: list[int] = field(default_factory=lambda: list(MATRIX_REPLICAS))
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    repeat: int = 1
    warmup: int = 100
    open_rounds: int = 0  # opt-in: `--open-rounds 10000` takes minutes
    trace_sampling: float = 1.0  # the share of traces mesh-traced records (parentbased_traceidratio)
    probes: int = 100
    deadline_seconds: float = 600.0  # no deadline fires while a row is measured
    timeout_seconds: float = 60.0  # a proposal without an outcome by then counts as missing


def run_bench(settings: MeshSettings, plan: Plan, *, home: Path, console: Console) -> BenchReport:
    report = BenchReport(config=asdict(plan), environment=environment())
    shared = bench_settings(settings, deadline_seconds=plan.deadline_seconds)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, refresh_per_second=4) as progress:
        for replicas in plan.replicas:
            if plan.concurrencies and plan.systems:
                report.rows += _measure_rows(shared, plan, replicas, home, progress)
        if plan.open_rounds:
            task = progress.add_task("open rounds", total=plan.open_rounds)
            report.open_rounds = measure_open_rounds(
                bench_settings(settings, deadline_seconds=86_400.0),
                home=home / "open-rounds",
                open_rounds=plan.open_rounds,
                probes=plan.probes,
                progress=lambda done, what: progress.update(task, completed=done, description=what),
            )
            progress.update(task, completed=plan.open_rounds, description="open rounds")
    return report


def _measure_rows(settings: MeshSettings, plan: Plan, replicas: int, home: Path, progress: Progress) -> list[Row]:
    total = len(plan.concurrencies) * plan.repeat * len(plan.systems) * plan.proposals
    task = progress.add_task(f"R={replicas}: starting {', '.join(plan.systems)}", total=total)
    systems: dict[str, System] = {}
    rows = []
    try:
        # One after another: children are spawned with a pre-exec hook, which is unsafe from threads.
        for name in plan.systems:
            systems[name] = start_system(
                name,
                settings,
                home=home / f"{name.replace('+', '-')}-r{replicas}",
                replicas=replicas,
                trace_sampling=plan.trace_sampling,
            )
        for concurrency in plan.concurrencies:
            row = Row(concurrency, replicas)
            for repeat in range(plan.repeat):
                for name in turns(plan.systems, repeat):
                    progress.update(task, description=f"R={replicas} C={concurrency} {name}")
                    row.add(
                        _measure(systems[name], plan, concurrency, replicas, on_outcome=lambda: progress.advance(task))
                    )
            rows.append(row)
    finally:
        for system in systems.values():
            system.stop()
    return rows


def turns(systems: list[str], repeat: int) -> list[str]:
    """The order the systems are measured in at this repeat: as planned, then reversed, and so
    on, so that of any two each goes first as often (a rotation would not: with five systems,
    one of a pair goes first in three repeats of five)."""
    return list(systems) if repeat % 2 == 0 else systems[::-1]


def _measure(system: System, plan: Plan, concurrency: int, replicas: int, *, on_outcome) -> Run:
    # a traced mesh gets proposals that start their traces, as `mesh publish`'s do
    sampling = plan.trace_sampling if system.name == "mesh-traced" else None
    load_with = functools.partial(
        drive, system.settings, concurrency=concurrency, timeout=plan.timeout_seconds, trace_sampling=sampling
    )
    if plan.warmup:
        asyncio.run(load_with(proposals=plan.warmup))
    meter = Meter(system.processes).start()
    load = asyncio.run(load_with(proposals=plan.proposals, on_outcome=on_outcome))
    usage = meter.stop()
    return Run(
        system=system.name,
        concurrency=concurrency,
        replicas=replicas,
        proposals=plan.proposals,
        decided=len(load.latencies),
        missing=load.missing,
        wall_seconds=load.wall_seconds,
        latencies_ms=[round(v * 1000, 3) for v in load.latencies],
        outcomes=dict(load.outcomes),
        processes=usage,
    )
