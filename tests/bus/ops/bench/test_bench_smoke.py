"""`mesh bench` never rots: it runs end to end at a tiny size and reports every field.

The benchmark starts its own embedded nats-servers (that is what it measures), so these
tests do not use the shared `nats_url` server. Figures are never asserted: only that each
system decided every proposal and that every figure is present.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

SYSTEMS = {"floor", "floor+kv", "mesh", "mesh-open", "mesh-traced"}
PROCESSES = {"security", "compliance", "coordinator", "nats-server"}


def run_bench(args: list[str], *, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """`mesh bench ARGS`; if it overruns, interrupt it so it stops its servers and services."""
    with subprocess.Popen(
        [sys.executable, "-m", "bus.ops.cli", "bench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as bench:
        try:
            stdout, stderr = bench.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            bench.send_signal(signal.SIGINT)
            stdout, stderr = bench.communicate(timeout=30)
            stderr += f"\n(interrupted after {timeout:.0f} s)"
    return subprocess.CompletedProcess(bench.args, bench.returncode, stdout, stderr)


def test_tiny_benchmark_runs_and_reports_every_field(tmp_path):
    """A 50-proposal row (floors, mesh, mesh-open, mesh-traced) and a tiny open-rounds row run, and
    the JSON holds every figure, the authorization and tracing costs included."""
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    env = {**os.environ, "MESH_HOME": str(tmp_path / "mesh"), "COLUMNS": "160"}
    env.pop("MESH_NATS_URL", None)
    args = ["--proposals", "50", "--concurrency", "4", "--replicas", "1", "--warmup", "10"]
    args += ["--open-rounds", "20", "--probes", "3", "--json", str(out), "--plot", str(png)]

    result = run_bench(args, env=env, timeout=200)

    assert result.returncode == 0, result.stdout + result.stderr
    headings = ("proposals/s", "p50 ms", "mesh/floor", "Authorization cost", "mesh/mesh-open", "Tracing cost")
    for heading in (*headings, "mesh-traced/mesh", "trace-store", "open rounds"):
        assert heading in result.stdout
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert (row["concurrency"], row["replicas"]) == (4, 1)
    assert set(row["systems"]) == SYSTEMS
    for name, system in row["systems"].items():
        for figure in ("throughput", "p50_ms", "p90_ms", "p99_ms"):
            assert system[figure] > 0, (name, figure)
        traced = {"trace-store"} if name == "mesh-traced" else set()
        assert set(system["processes"]) == PROCESSES | traced, name
        for usage in system["processes"].values():
            assert set(usage) == {"cpu_seconds", "peak_rss_mb"}
        (run,) = system["runs"]
        assert run["outcomes"] == {"approved": 50} and run["missing"] == 0, name
        assert len(run["latencies_ms"]) == 50
    assert set(row["ratios"]) == {"mesh/floor", "mesh/floor+kv"}
    cost = row["authorization_cost"]
    assert set(cost) == {"throughput_ratio", "p50_delta_ms"}
    assert cost["throughput_ratio"] > 0 and isinstance(cost["p50_delta_ms"], float)  # either sign: noise
    tracing = row["tracing_cost"]
    assert set(tracing) == {"throughput_ratio", "p50_delta_ms", "cpu_ratio"} and tracing["cpu_ratio"] > 0
    assert tracing["throughput_ratio"] > 0 and isinstance(tracing["p50_delta_ms"], float)
    traces = (tmp_path / "mesh" / "bench" / "mesh-traced-r1" / "logs" / "trace-store.log").read_text()
    assert "ready" in traces and "spans stored" in traces  # the spans did reach the store
    rounds = report["open_rounds"]
    assert [c["open_rounds"] for c in rounds["checkpoints"]] == [10, 20]
    assert all(len(c["review_ms"]) == 3 and c["cpu_ms_per_probe"] >= 0 for c in rounds["checkpoints"])
    assert set(rounds["bytes_per_open_round"]) == {
        "coordinator_rss_bytes",
        "nats_rss_bytes",
        "kv_bytes",
        "deadline_bytes",
    }
    assert any(t["target"].startswith("per-review") and "met" in t for t in report["targets"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_is_a_group_so_other_benchmarks_fit_beside_it():
    """`mesh bench --help` shows the mesh benchmark's options and accepts subcommands."""
    result = subprocess.run(
        [sys.executable, "-m", "bus.ops.cli", "bench", "--help"], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0
    assert "--proposals" in result.stdout and "--concurrency" in result.stdout
    assert "COMMAND" in result.stdout


def test_the_gateway_benchmark_runs_and_reports_both_paths(tmp_path):
    """`mesh bench gateway` decides every proposal over the bus and through the gateway and
    reports the medians, the added latency and the ratio (figures are not asserted)."""
    env = {**os.environ, "MESH_HOME": str(tmp_path / "mesh")}
    env.pop("MESH_NATS_URL", None)
    # a first round on a freshly started mesh can take long on a loaded machine: a generous timeout
    result = run_bench(["gateway", "-n", "3", "--warmup", "1", "--timeout", "120", "--json"], env=env, timeout=300)

    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["proposals"] == 3
    for field in ("bus_median_ms", "bus_p90_ms", "gateway_median_ms", "gateway_p90_ms", "added_median_ms", "ratio"):
        assert isinstance(figures[field], int | float), field


def test_the_daemon_benchmark_runs_and_reports_checkpoints_and_takeovers(tmp_path):
    """`mesh bench daemon` replays events under two checkpoint frequencies and kills the active
    instance once, and its one JSON document has a figure for each (figures are not asserted)."""
    env = {**os.environ, "MESH_HOME": str(tmp_path / "mesh")}
    env.pop("MESH_NATS_URL", None)
    result = run_bench(
        ["daemon", "-n", "50", "--every", "1", "--every", "10", "--takeovers", "1", "--json"], env=env, timeout=180
    )

    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert [row["checkpoint_every"] for row in figures["throughput"]] == [1, 10]
    assert all(row["events"] == 50 and row["per_second"] > 0 for row in figures["throughput"])
    assert figures["takeover"]["to_active"]["n"] == 1
