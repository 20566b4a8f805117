"""The figures: per run, per row (medians over repeats), mesh/floor ratios, and what
authorization (mesh against mesh-open) and tracing (mesh-traced against mesh) cost.

Latencies are kept in milliseconds; throughput is decided proposals per second of wall time
from the first publish to the last outcome.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field

from bus.ops.bench.resources import ProcessUsage

MESH, MESH_OPEN = "mesh", "mesh-open"  # secured (the default), and on a server without authorization
MESH_TRACED = "mesh-traced"  # secured, every service exporting spans to a trace store
MESHES = (MESH, MESH_OPEN, MESH_TRACED)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linearly interpolated between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Run:
    """One system measured once at one concurrency and replica count."""

    system: str
    concurrency: int
    replicas: int
    proposals: int
    decided: int
    missing: int
    wall_seconds: float
    latencies_ms: list[float]
    outcomes: dict[str, int]
    processes: list[ProcessUsage]

    @property
    def throughput(self) -> float:
        return self.decided / self.wall_seconds if self.wall_seconds else 0.0

    def latency(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def figures(self) -> dict:
        return {
            "throughput": round(self.throughput, 2),
            "p50_ms": round(self.latency(50), 3),
            "p90_ms": round(self.latency(90), 3),
            "p99_ms": round(self.latency(99), 3),
            "cpu_seconds": {p.label: p.cpu_seconds for p in self.processes},
            "peak_rss_mb": {p.label: round(p.peak_rss_bytes / 2**20, 1) for p in self.processes},
        }


@dataclass
class Row:
    """Every system at one (concurrency, replicas), each possibly measured several times."""

    concurrency: int
    replicas: int
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def add(self, run: Run) -> None:
        self.runs.setdefault(run.system, []).append(run)

    def median(self, system: str, figure: str) -> float:
        """Median over repeats of `throughput`, `p50`, `p90` or `p99`."""
        runs = self.runs.get(system, [])
        if not runs:
            return float("nan")
        if figure == "throughput":
            return statistics.median(r.throughput for r in runs)
        return statistics.median(r.latency(float(figure.removeprefix("p"))) for r in runs)

    def usage(self, system: str) -> dict[str, tuple[float, float]]:
        """Per process: (median CPU seconds, max peak RSS MB) over repeats."""
        runs = self.runs.get(system, [])
        labels = [p.label for p in runs[0].processes] if runs else []
        return {
            label: (
                statistics.median(p.cpu_seconds for r in runs for p in r.processes if p.label == label),
                max(p.peak_rss_bytes for r in runs for p in r.processes if p.label == label) / 2**20,
            )
            for label in labels
        }

    def floors(self) -> list[str]:
        """The systems the mesh is measured against: all but the mesh, secured, open or traced."""
        return [name for name in self.runs if name not in MESHES]

    def ratio(self, figure: str, base: str, system: str = MESH) -> float:
        """system / base for one figure (above 1 is slower for p50, faster for throughput)."""
        below = self.median(base, figure)
        return self.median(system, figure) / below if below else float("nan")

    def authorization_cost(self) -> dict[str, float] | None:
        """What the server checking identities and permissions costs, from medians over repeats:
        mesh/mesh-open throughput (below 1 is slower) and mesh - mesh-open p50 in ms (above 0
        is slower). None unless both ran."""
        if MESH not in self.runs or MESH_OPEN not in self.runs:
            return None
        return {
            "throughput_ratio": self.ratio("throughput", MESH_OPEN),
            "p50_delta_ms": self.median(MESH, "p50") - self.median(MESH_OPEN, "p50"),
        }

    def tracing_cost(self) -> dict[str, float] | None:
        """What tracing costs, the trace store included, from medians over repeats:
        mesh-traced/mesh throughput (below 1 is slower), mesh-traced - mesh p50 in ms (above
        0 is slower), and mesh-traced/mesh CPU per proposal, every process added up (above 1
        costs more; steadier than throughput when other work shares the machine). None unless
        both ran."""
        if MESH not in self.runs or MESH_TRACED not in self.runs:
            return None
        mesh_cpu = self.cpu_per_proposal(MESH)
        return {
            "throughput_ratio": self.ratio("throughput", MESH, system=MESH_TRACED),
            "p50_delta_ms": self.median(MESH_TRACED, "p50") - self.median(MESH, "p50"),
            "cpu_ratio": self.cpu_per_proposal(MESH_TRACED) / mesh_cpu if mesh_cpu else math.nan,
        }

    def cpu_per_proposal(self, system: str) -> float:
        """Median over repeats of the CPU seconds of all the system's processes per decided proposal."""
        runs = [r for r in self.runs.get(system, []) if r.decided]
        if not runs:
            return 0.0
        return statistics.median(sum(p.cpu_seconds for p in r.processes) / r.decided for r in runs)

    def to_dict(self) -> dict:
        systems = {}
        for name, runs in self.runs.items():
            systems[name] = {
                "throughput": round(self.median(name, "throughput"), 2),
                **{f"{p}_ms": round(self.median(name, p), 3) for p in ("p50", "p90", "p99")},
                "processes": {
                    label: {"cpu_seconds": round(cpu, 3), "peak_rss_mb": round(rss, 1)}
                    for label, (cpu, rss) in self.usage(name).items()
                },
                "runs": [
                    {**{k: v for k, v in asdict(r).items() if k not in ("processes",)}, **r.figures()} for r in runs
                ],
            }
        ratios = {
            f"mesh/{floor}": {
                "throughput": round(self.ratio("throughput", floor), 3),
                "p50": round(self.ratio("p50", floor), 3),
            }
            for floor in self.floors()
            if MESH in self.runs
        }
        cost = self.authorization_cost()
        tracing = self.tracing_cost()
        return {
            "concurrency": self.concurrency,
            "replicas": self.replicas,
            "systems": systems,
            "ratios": ratios,
            "authorization_cost": {k: round(v, 3) for k, v in cost.items()} if cost else None,
            "tracing_cost": {k: round(v, 3) for k, v in tracing.items()} if tracing else None,
        }


@dataclass
class Checkpoint:
    """The coordinator at one number of open rounds."""

    open_rounds: int
    review_ms: list[float]  # per probe: last review published -> outcome received
    coordinator_rss_bytes: int
    nats_rss_bytes: int
    kv_bytes: int  # rounds bucket on disk
    deadline_bytes: int  # scheduled deadlines on disk
    cpu_ms_per_probe: float = float("nan")  # coordinator CPU for one probe round (proposal + 2 reviews)

    @property
    def review_p50(self) -> float:
        return percentile(self.review_ms, 50)

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "review_p50_ms": round(self.review_p50, 3),
            "review_p90_ms": round(percentile(self.review_ms, 90), 3),
            "cpu_ms_per_probe": round(self.cpu_ms_per_probe, 3),
        }


@dataclass
class OpenRounds:
    """Time per review and memory as the coordinator's open rounds grow."""

    checkpoints: list[Checkpoint]
    open_rate: float  # proposals/s while opening the background rounds

    def per_round(self, figure: str) -> float:
        """Bytes per open round between the first and the last checkpoint."""
        first, last = self.checkpoints[0], self.checkpoints[-1]
        grown = last.open_rounds - first.open_rounds
        return (getattr(last, figure) - getattr(first, figure)) / grown if grown else float("nan")

    def drift(self, figure: str = "review_p50") -> float:
        """Largest change of `review_p50` or `cpu_ms_per_probe` against the first checkpoint (0.1 = 10 %)."""
        base = getattr(self.checkpoints[0], figure)
        return max(abs(getattr(c, figure) / base - 1) for c in self.checkpoints) if base else float("nan")

    def to_dict(self) -> dict:
        return {
            "checkpoints": [c.to_dict() for c in self.checkpoints],
            "open_rate_per_second": round(self.open_rate, 1),
            "bytes_per_open_round": {
                name: round(self.per_round(name), 1)
                for name in ("coordinator_rss_bytes", "nats_rss_bytes", "kv_bytes", "deadline_bytes")
            },
            "review_p50_drift": round(self.drift("review_p50"), 3),
            "cpu_per_probe_drift": round(self.drift("cpu_ms_per_probe"), 3),
        }
