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
        ([], ["floor", "mesh", "floor+kv", "mesh-open"]),
        (["--no-auth-cost"], ["floor", "mesh", "floor+kv"]),
        (["--no-floor-kv"], ["floor", "mesh", "mesh-open"]),
    ],
)
def test_mesh_runs_secured_and_open_unless_told_not_to(planned, flags, systems):
    """By default every row measures the mesh with and without authorization; --no-auth-cost skips mesh-open."""
    result = CliRunner().invoke(app, ["bench", "-n", "10", "-c", "1", *flags])

    assert result.exit_code == 0, result.output
    assert [plan.systems for plan in planned] == [systems]
