"""bus/ops/cli/chaos.py: what `mesh chaos` prints and how it exits, given a run's report
(the run itself is faked: tests/e2e/test_chaos.py runs the real one)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bus.ops.chaos.runner import ChaosReport
from bus.ops.chaos.strikes import Kill
from bus.ops.chaos.tally import Tally
from bus.ops.cli import app
from bus.ops.cli import chaos as chaos_cli

CLEAN = Tally.count({"a": 0.0}, [("a", 0.5)], dead_lettered=0, heard={"a": 1}, published={"a": 1})


@pytest.fixture
def reported(monkeypatch, tmp_path):
    """Make `mesh chaos` report the given kills instead of running a mesh."""
    kills: list[Kill] = []

    async def run_chaos(settings, plan, *, home, say):
        return ChaosReport(CLEAN, kills=kills)

    monkeypatch.setattr(chaos_cli, "run_chaos", run_chaos)
    monkeypatch.setenv("MESH_HOME", str(tmp_path))
    return kills


def test_kills_that_met_open_rounds_pass(reported):
    """Every kill met work in flight: exit 0, the kills line before the summary line."""
    reported.append(Kill(1.0, 5, 12, 3, "killed coordinator (pid 1, coordinator.log)", open_in_kv=2))
    result = CliRunner().invoke(app, ["chaos", "--kill", "coordinator", "--kills", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-2:] == ["kills=1 idle=0 open_rounds=3 open_in_kv=2", CLEAN.line()]


@pytest.mark.parametrize(
    ("flags", "exit_code"),
    [
        ([], 1),  # a kill that hit nothing proves nothing: the run fails and says why
        (["--allow-idle-kills"], 0),  # unless asked for
    ],
)
def test_an_idle_kill_fails_the_run_unless_allowed(reported, flags, exit_code):
    """A kill with no round open fails an otherwise clean run, unless --allow-idle-kills."""
    reported.append(Kill(3.0, 12, 12, 0, "killed coordinator (pid 1, coordinator.log)"))
    result = CliRunner().invoke(app, ["chaos", "--kill", "coordinator", "--kills", "1", *flags])
    assert result.exit_code == exit_code, result.output
    assert "kills=1 idle=1 open_rounds=0 open_in_kv=-" in result.stdout
    assert ("--allow-idle-kills" in result.stderr) is (exit_code == 1)
