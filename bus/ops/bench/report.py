"""How the figures are shown: terminal tables, a JSON document, a PNG of latency CDFs."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bus.ops.bench.results import MESH, MESH_OPEN, MESH_TRACED, OpenRounds, Row

SERVICES = ("security", "compliance", "coordinator", "nats-server")
TRACE_STORE = "trace-store"  # mesh-traced's collector (bus/ops/bench/systems.py)

# The targets: mesh throughput >= 0.5x the floor at C=128, p50 <= 2x the floor at
# C=1, per-review time flat within +-20 % from 10 to 10,000 open rounds, tracing costing at
# most 10 % of the throughput at C=128.
THROUGHPUT_TARGET, P50_TARGET, DRIFT_TARGET, TRACING_TARGET = 0.5, 2.0, 0.2, 0.9


@dataclass
class BenchReport:
    config: dict
    rows: list[Row] = field(default_factory=list)
    open_rounds: OpenRounds | None = None
    environment: dict = field(default_factory=dict)

    def targets(self) -> list[dict]:
        """Each target, per floor and replica count, with where we stand."""
        found = []
        floors = sorted({name for row in self.rows for name in row.floors()})
        for row in self.rows:
            if MESH not in row.runs:
                continue
            for floor in floors:
                if row.concurrency == 128:
                    value = row.ratio("throughput", floor)
                    found.append(
                        _target(
                            f"throughput >= {THROUGHPUT_TARGET}x {floor} at C=128, R={row.replicas}",
                            value,
                            value >= THROUGHPUT_TARGET,
                        )
                    )
                if row.concurrency == 1:
                    value = row.ratio("p50", floor)
                    found.append(
                        _target(f"p50 <= {P50_TARGET}x {floor} at C=1, R={row.replicas}", value, value <= P50_TARGET)
                    )
        sampled = sampling_label(self.config.get("trace_sampling", 1.0))
        for row in self.rows:
            if row.concurrency == 128 and (tracing := row.tracing_cost()):
                value = tracing["throughput_ratio"]
                found.append(
                    _target(
                        f"{MESH_TRACED} ({sampled}) throughput >= {TRACING_TARGET}x {MESH} at C=128, R={row.replicas}",
                        value,
                        value >= TRACING_TARGET,
                    )
                )
        if self.open_rounds and len(self.open_rounds.checkpoints) > 1:
            last = self.open_rounds.checkpoints[-1].open_rounds
            for figure, what in (
                ("review_p50", "per-review p50"),
                ("cpu_ms_per_probe", "coordinator CPU per probe round"),
            ):
                value = self.open_rounds.drift(figure)
                found.append(
                    _target(
                        f"{what} flat within {DRIFT_TARGET:.0%} from 10 to {last:,} open rounds",
                        value,
                        value <= DRIFT_TARGET,
                    )
                )
        return found

    def to_dict(self) -> dict:
        return {
            "environment": self.environment,
            "config": self.config,
            "rows": [row.to_dict() for row in self.rows],
            "open_rounds": self.open_rounds.to_dict() if self.open_rounds else None,
            "targets": self.targets(),
        }


def _target(name: str, value: float, met: bool) -> dict:
    return {"target": name, "value": round(value, 3), "met": bool(met) and not math.isnan(value)}


def environment() -> dict:
    from bus.ops.embedded import find_nats_server

    try:
        server = subprocess.run(
            [find_nats_server(), "--version"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except Exception:  # noqa: BLE001 - the version is nice to have, never required
        server = "unknown"
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "nats_server": server,
        "packages": {name: version(name) for name in ("faststream", "nats-py", "pydantic")},
    }


# --- terminal --------------------------------------------------------------------------


def print_report(console: Console, report: BenchReport) -> None:
    if report.rows:
        console.print(_figures_table(report.rows))
        console.print(_resources_table(report.rows))
        console.print(_ratios_table(report.rows))
        if any(row.authorization_cost() for row in report.rows):
            console.print(_authorization_table(report.rows))
        if any(row.tracing_cost() for row in report.rows):
            console.print(_tracing_table(report.rows, report.config.get("trace_sampling", 1.0)))
    if report.open_rounds:
        console.print(_open_rounds_table(report.open_rounds))
    for target in report.targets():
        mark = "[green]met[/]" if target["met"] else "[red]not met[/]"
        console.print(f"  {mark}  {target['target']}: {target['value']:.2f}", highlight=False)


def _figures_table(rows: list[Row]) -> Table:
    table = Table(
        "R",
        "C",
        "system",
        "proposals/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        title="Throughput and latency (publish -> outcome)",
    )
    for row in rows:
        for name in row.runs:
            table.add_row(
                str(row.replicas),
                str(row.concurrency),
                name,
                f"{row.median(name, 'throughput'):.1f}",
                *(f"{row.median(name, p):.2f}" for p in ("p50", "p90", "p99")),
            )
        table.add_section()
    return table


def _resources_table(rows: list[Row]) -> Table:
    traced = any(TRACE_STORE in row.usage(name) for row in rows for name in row.runs)
    processes = (*SERVICES, TRACE_STORE) if traced else SERVICES
    table = Table(
        "R", "C", "system", *processes, title="CPU seconds while measured, peak RSS, per process (replicas joined by +)"
    )
    for row in rows:
        for name in row.runs:
            usage = row.usage(name)
            cells = []
            for service in processes:
                mine = [v for label, v in usage.items() if label.split("#")[0] == service]
                cpu = "+".join(f"{c:.2f}" for c, _ in mine)
                rss = "+".join(f"{r:.0f}" for _, r in mine)
                cells.append(f"{cpu}s {rss}MB" if mine else "-")
            table.add_row(str(row.replicas), str(row.concurrency), name, *cells)
        table.add_section()
    return table


def _ratios_table(rows: list[Row]) -> Table:
    floors = sorted({name for row in rows for name in row.floors()})
    columns = [f"{figure} mesh/{floor}" for floor in floors for figure in ("throughput", "p50")]
    table = Table(
        "R", "C", *columns, title="Mesh against the floors (throughput: higher is better; p50: lower is better)"
    )
    for row in rows:
        if MESH in row.runs:
            table.add_row(
                str(row.replicas),
                str(row.concurrency),
                *(f"{row.ratio(figure, floor):.2f}x" for floor in floors for figure in ("throughput", "p50")),
            )
    return table


def _authorization_table(rows: list[Row]) -> Table:
    return _cost_table(
        rows,
        system=MESH,
        against=MESH_OPEN,
        cost=Row.authorization_cost,
        title=f"Authorization cost: {MESH} (one identity per service) against {MESH_OPEN} (no authorization)",
        caption="medians over repeats; the same services, with and without the server checking each publish and "
        "subscription",
    )


def sampling_label(sampling: float) -> str:
    """`every trace recorded`, or `10 % of traces recorded`: what mesh-traced's figures are for."""
    return "every trace recorded" if sampling >= 1 else f"{sampling * 100:g} % of traces recorded"


def _tracing_table(rows: list[Row], sampling: float) -> Table:
    return _cost_table(
        rows,
        system=MESH_TRACED,
        against=MESH,
        cost=Row.tracing_cost,
        title=f"Tracing cost: {MESH_TRACED} (every service exporting spans to a trace store; "
        f"{sampling_label(sampling)}) against {MESH} (tracing off)",
        caption="medians over repeats; the same secured services, with spans exported over OTLP/HTTP and stored "
        "in JetStream as `mesh up` does; the store's own CPU is in the trace-store column above and in CPU per "
        "proposal (every process added up), which other work on the machine sways less than throughput",
        cpu=True,
    )


def _cost_table(
    rows: list[Row], *, system: str, against: str, cost, title: str, caption: str, cpu: bool = False
) -> Table:
    """What one feature costs: `system` (with it) against `against` (without), per row; the
    plain mesh's columns first."""
    first, second = (system, against) if system == MESH else (against, system)
    table = Table(
        "R",
        "C",
        f"{first} /s",
        f"{second} /s",
        f"{first} p50 ms",
        f"{second} p50 ms",
        f"throughput {system}/{against}",
        f"p50 {system} - {against}",
        *([f"CPU/proposal {system}/{against}"] if cpu else []),
        title=title,
        caption=caption,
    )
    for row in rows:
        if figures := cost(row):
            ratio = figures["throughput_ratio"]
            table.add_row(
                str(row.replicas),
                str(row.concurrency),
                *(f"{row.median(name, 'throughput'):.1f}" for name in (first, second)),
                *(f"{row.median(name, 'p50'):.2f}" for name in (first, second)),
                f"{ratio:.2f}x ({ratio - 1:+.0%})",
                f"{figures['p50_delta_ms']:+.2f} ms",
                *([f"{figures['cpu_ratio']:.2f}x"] if cpu else []),
            )
    return table


def _open_rounds_table(result: OpenRounds) -> Table:
    table = Table(
        "open rounds",
        "review p50 ms",
        "review p90 ms",
        "coordinator CPU ms/probe",
        "coordinator RSS MB",
        "nats-server RSS MB",
        "rounds KV MB",
        "deadlines MB",
        title=f"Coordinator with open rounds (opened at {result.open_rate:.0f}/s)",
    )
    for point in result.checkpoints:
        d = point.to_dict()
        table.add_row(
            f"{point.open_rounds:,}",
            f"{d['review_p50_ms']:.2f}",
            f"{d['review_p90_ms']:.2f}",
            f"{point.cpu_ms_per_probe:.2f}",
            *(
                f"{v / 2**20:.1f}"
                for v in (point.coordinator_rss_bytes, point.nats_rss_bytes, point.kv_bytes, point.deadline_bytes)
            ),
        )
    per = result.to_dict()["bytes_per_open_round"]
    table.caption = "bytes per open round: " + ", ".join(f"{k.removesuffix('_bytes')} {v:,.0f}" for k, v in per.items())
    return table


# --- files -----------------------------------------------------------------------------


def write_json(report: BenchReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_dict(), indent=2, default=str))


def write_plot(report: BenchReport, path: Path) -> None:
    """Latency CDF per (R, C) for every system; per-review time against open rounds below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")

    replicas = sorted({row.replicas for row in report.rows})
    concurrencies = sorted({row.concurrency for row in report.rows})
    extra = 1 if report.open_rounds else 0
    nrows, ncols = max(len(replicas), 1) + extra, max(len(concurrencies), 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), squeeze=False)
    colours = {
        "floor": "tab:green",
        "floor+kv": "tab:olive",
        MESH: "tab:blue",
        MESH_OPEN: "tab:cyan",
        MESH_TRACED: "tab:purple",
    }
    for row in report.rows:
        ax = axes[replicas.index(row.replicas)][concurrencies.index(row.concurrency)]
        for name, runs in row.runs.items():
            values = sorted(v for run in runs for v in run.latencies_ms)
            if values:
                ax.plot(
                    values, [(i + 1) / len(values) for i in range(len(values))], label=name, color=colours.get(name)
                )
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"C={row.concurrency}, R={row.replicas}")
        ax.set_xlabel("publish -> outcome (ms)")
        ax.set_ylabel("fraction of proposals")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    if report.open_rounds:
        for ax in axes[-1][1:]:
            ax.set_visible(False)
        ax = axes[-1][0]
        points = report.open_rounds.checkpoints
        ax.plot(
            [p.open_rounds for p in points],
            [p.review_p50 for p in points],
            marker="o",
            label="deciding review p50 (wall)",
        )
        ax.plot(
            [p.open_rounds for p in points],
            [p.cpu_ms_per_probe for p in points],
            marker="s",
            label="coordinator CPU per probe round",
        )
        ax.legend(loc="lower right", fontsize="small")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(bottom=0)
        ax.set_title("coordinator as open rounds grow")
        ax.set_xlabel("open rounds")
        ax.set_ylabel("ms")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("agent-mesh bench: mesh against raw nats-py floors")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
