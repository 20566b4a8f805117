"""bus/ops/bench/results.py and rounds.checkpoints: the arithmetic behind the figures, without I/O."""

from __future__ import annotations

from bus.ops.bench.open_rounds import checkpoints
from bus.ops.bench.resources import ProcessUsage
from bus.ops.bench.results import Checkpoint, OpenRounds, Row, Run, percentile


def run(system: str, *, decided: int, seconds: float, latencies: list[float], cpu: float = 1.0) -> Run:
    return Run(
        system,
        16,
        1,
        decided,
        decided,
        0,
        seconds,
        latencies,
        {"approved": decided},
        [ProcessUsage("coordinator", 1, cpu, 2**20)],
    )


def point(open_rounds: int, review_ms: list[float]) -> Checkpoint:
    return Checkpoint(
        open_rounds, review_ms, 100 * open_rounds, 1000 * open_rounds, 500 * open_rounds, 600 * open_rounds
    )


def test_percentile_interpolates_between_ranks():
    """p50 of an even count is the mean of the middle two; p0 and p100 are the extremes."""
    values = [4.0, 1.0, 3.0, 2.0]

    assert percentile(values, 50) == 2.5
    assert (percentile(values, 0), percentile(values, 100)) == (1.0, 4.0)


def test_ratios_compare_medians_over_repeats():
    """mesh/floor divides the median throughput and p50 of the repeats of each system."""
    row = Row(16, 1)
    for seconds in (1.0, 2.0, 10.0):  # 100/s, 50/s and an outlier
        row.add(run("floor", decided=100, seconds=seconds, latencies=[10.0] * 100))
    for seconds in (4.0, 4.0):
        row.add(run("mesh", decided=100, seconds=seconds, latencies=[30.0] * 100))

    assert row.median("floor", "throughput") == 50.0
    assert row.ratio("throughput", "floor") == 0.5
    assert row.ratio("p50", "floor") == 3.0
    assert row.to_dict()["ratios"] == {"mesh/floor": {"throughput": 0.5, "p50": 3.0}}


def test_authorization_cost_compares_the_mesh_with_mesh_open_and_is_no_floor():
    """mesh/mesh-open divides median throughputs and subtracts median p50s; mesh-open gets no mesh/floor ratio."""
    row = Row(16, 1)
    row.add(run("floor", decided=100, seconds=0.5, latencies=[5.0] * 100))
    for seconds in (1.0, 1.25, 9.0):  # 100/s, 80/s and an outlier
        row.add(run("mesh", decided=100, seconds=seconds, latencies=[12.5] * 100))
    for seconds in (1.0, 1.0):
        row.add(run("mesh-open", decided=100, seconds=seconds, latencies=[10.0] * 100))

    assert row.floors() == ["floor"]
    assert row.authorization_cost() == {"throughput_ratio": 0.8, "p50_delta_ms": 2.5}
    assert row.to_dict()["authorization_cost"] == {"throughput_ratio": 0.8, "p50_delta_ms": 2.5}
    assert set(row.to_dict()["ratios"]) == {"mesh/floor"}


def test_authorization_cost_needs_both_meshes():
    """Without mesh-open (`--no-auth-cost`) a row reports no authorization cost."""
    row = Row(16, 1)
    row.add(run("mesh", decided=100, seconds=1.0, latencies=[10.0] * 100))

    assert row.authorization_cost() is None
    assert row.to_dict()["authorization_cost"] is None


def test_tracing_cost_compares_mesh_traced_with_the_mesh_and_is_no_floor():
    """mesh-traced/mesh divides median throughputs and subtracts median p50s, and divides median
    CPU per proposal (every process); mesh-traced gets no mesh/floor ratio; without it
    (`--no-trace-cost`) there is no tracing cost."""
    row = Row(128, 1)
    row.add(run("floor", decided=100, seconds=0.5, latencies=[5.0] * 100))
    for seconds in (1.0, 1.0):
        row.add(run("mesh", decided=100, seconds=seconds, latencies=[10.0] * 100))
    assert row.tracing_cost() is None and row.to_dict()["tracing_cost"] is None

    for seconds in (1.25, 1.0, 2.0):  # 80/s, 100/s and 50/s: median 80/s
        row.add(run("mesh-traced", decided=100, seconds=seconds, latencies=[11.5] * 100, cpu=1.25))

    assert row.floors() == ["floor"]
    assert row.tracing_cost() == {"throughput_ratio": 0.8, "p50_delta_ms": 1.5, "cpu_ratio": 1.25}
    assert row.to_dict()["tracing_cost"] == {"throughput_ratio": 0.8, "p50_delta_ms": 1.5, "cpu_ratio": 1.25}
    assert set(row.to_dict()["ratios"]) == {"mesh/floor"}


def test_open_rounds_report_bytes_per_round_and_drift_from_the_first_checkpoint():
    """Memory per round is the growth between the first and last checkpoint; drift is the worst p50 change."""
    result = OpenRounds([point(10, [5.0, 5.0]), point(110, [6.0]), point(1010, [4.5])], open_rate=300.0)

    assert result.per_round("coordinator_rss_bytes") == 100.0
    assert result.per_round("kv_bytes") == 500.0
    assert abs(result.drift("review_p50") - 0.2) < 1e-9


def test_open_round_checkpoints_grow_tenfold_up_to_the_target():
    """The coordinator is measured at 10, 100, 1000... open rounds and at the target itself."""
    assert checkpoints(10_000) == [10, 100, 1000, 10_000]
    assert checkpoints(2500) == [10, 100, 1000, 2500]
    assert checkpoints(5) == [5]
