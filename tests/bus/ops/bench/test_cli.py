"""bus/ops/bench/cli.py: which systems `mesh bench` measures, without starting any of them."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bus.ops.bench import runner
from bus.ops.bench.report import BenchReport
from bus.ops.cli import app


@pytest.fixture
def planned(monkeypatch, tmp_path) -> list[runner.Plan]:
    """The plans `mesh bench` hands to the runner, which measures nothing."""
    plans: list[runner.Plan] = []

    def run_bench(settings, plan, *, home, console):
        plans.append(plan)
        return BenchReport(config={})

    monkeypatch.setattr(runner, "run_bench", run_bench)
    monkeypatch.setenv("MESH_HOME", str(tmp_path))
    return plans


@pytest.mark.parametrize(
    ("flags", "systems"),
    [
        ([], ["floor", "floor+kv", "mesh-open", "mesh", "mesh-traced"]),
        (["--no-auth-cost"], ["floor", "floor+kv", "mesh", "mesh-traced"]),
        (["--no-floor-kv"], ["floor", "mesh-open", "mesh", "mesh-traced"]),
        (["--no-trace-cost"], ["floor", "floor+kv", "mesh-open", "mesh"]),
    ],
)
def test_mesh_runs_secured_open_and_traced_unless_told_not_to(planned, flags, systems):
    """By default every row measures the mesh with and without authorization and with tracing,
    each variant beside the mesh; --no-auth-cost skips mesh-open, --no-trace-cost mesh-traced."""
    result = CliRunner().invoke(app, ["bench", "-n", "10", "-c", "1", *flags])

    assert result.exit_code == 0, result.output
    assert [plan.systems for plan in planned] == [systems]


def test_of_any_two_systems_each_goes_first_as_often():
    """The turns run in order, then in reverse: over two repeats every pair has gone both ways."""
    systems = ["floor", "floor+kv", "mesh-open", "mesh", "mesh-traced"]
    turns = [runner.turns(systems, repeat) for repeat in range(4)]

    assert turns[0] == systems and turns[1] == systems[::-1] and turns[2] == systems
    for a in systems:
        for b in systems:
            if a != b:
                assert sum(order.index(a) < order.index(b) for order in turns) == 2
