"""bus/ops/bench/cli.py: which systems `mesh bench` measures, without starting any of them."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bus.ops.bench import runner
from bus.ops.bench.driver import TraceStarter
from bus.ops.bench.report import TRACING_TARGET, BenchReport
from bus.ops.bench.results import Row
from bus.ops.bench.systems import trace_sampler_env
from bus.ops.cli import app
from tests.bus.ops.bench.test_results import run


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


def test_the_open_rounds_step_runs_only_when_asked(planned):
    """A plain run skips growing the coordinator to many open rounds (minutes of work);
    `--open-rounds N` asks for it."""
    cli = CliRunner()
    plain = cli.invoke(app, ["bench", "-n", "200", "-c", "1"])
    asked = cli.invoke(app, ["bench", "-n", "200", "-c", "1", "--open-rounds", "10000"])

    assert plain.exit_code == 0 and asked.exit_code == 0, plain.output + asked.output
    assert [plan.open_rounds for plan in planned] == [0, 10_000]
    assert "no open-rounds step" in plain.output
    assert runner.Plan().open_rounds == 0


class MissedTarget(BenchReport):
    def targets(self) -> list[dict]:
        return [
            {"target": "throughput >= 0.5x floor at C=128, R=1", "value": 0.7, "met": True},
            {"target": "p50 <= 2.0x floor at C=1, R=1", "value": 2.5, "met": False},
        ]


@pytest.mark.parametrize(("flags", "exit_code"), [([], 0), (["--fail-on-targets"], 1)])
def test_a_target_not_met_fails_the_command_only_when_asked(monkeypatch, tmp_path, flags, exit_code):
    """A target not met is always reported; it ends `mesh bench` with status 1 only with
    --fail-on-targets."""
    monkeypatch.setattr(runner, "run_bench", lambda *args, **kwargs: MissedTarget(config={}))
    monkeypatch.setenv("MESH_HOME", str(tmp_path))

    result = CliRunner().invoke(app, ["bench", "-n", "10", "-c", "1", *flags])

    assert result.exit_code == exit_code, result.output
    assert "not met" in result.output and "p50 <= 2.0x floor" in result.output


def test_targets_all_met_pass_with_fail_on_targets(planned):
    """With every target met (here: none measured), --fail-on-targets exits 0."""
    result = CliRunner().invoke(app, ["bench", "-n", "10", "-c", "1", "--fail-on-targets"])

    assert result.exit_code == 0, result.output


def test_the_tracing_target_says_what_share_of_traces_was_recorded(planned):
    """`--trace-sampling 0.1` runs mesh-traced recording a tenth of the traces, with the sampler
    the SDK reads; the target line names the sampling and still asks for 0.9x the mesh."""
    result = CliRunner().invoke(app, ["bench", "-n", "10", "-c", "128", "--trace-sampling", "0.1"])
    assert result.exit_code == 0, result.output
    assert [plan.trace_sampling for plan in planned] == [0.1]
    assert trace_sampler_env(0.1) == {
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    }
    assert trace_sampler_env(1.0)["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"

    row = Row(128, 1)
    row.add(run("mesh", decided=100, seconds=1.0, latencies=[10.0] * 100))
    row.add(run("mesh-traced", decided=100, seconds=1.2, latencies=[12.0] * 100))
    for sampling, words in ((0.1, "10 % of traces recorded"), (1.0, "every trace recorded")):
        [target] = BenchReport(config={"trace_sampling": sampling}, rows=[row]).targets()
        assert words in target["target"] and f">= {TRACING_TARGET}x mesh" in target["target"]
        assert target["met"] is False  # 0.83x


def test_a_traced_benchs_proposals_start_their_traces_sampled_at_the_share_asked():
    """The driver's publisher adds a fresh W3C `traceparent` per proposal, flagged sampled for
    that share of them, and keeps the headers it was given."""

    def flags(sampling: float) -> set[str]:
        sent = []
        for _ in range(50):
            with TraceStarter(sampling).publishing("mesh-bench", "s", {"Nats-Msg-Id": "x"}) as headers:
                sent.append(headers)
        assert all(h["Nats-Msg-Id"] == "x" and len(h["traceparent"]) == 55 for h in sent)
        assert len({h["traceparent"] for h in sent}) == 50
        return {h["traceparent"][-2:] for h in sent}

    assert flags(1.0) == {"01"} and flags(0.0) == {"00"} and flags(0.5) == {"00", "01"}
