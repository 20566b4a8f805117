"""`mesh chaos`, small, for each kill kind: real processes, real nats-servers, real SIGKILLs."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.bus.test_cli import mesh

LINE = re.compile(
    r"^proposals=(\d+) outcomes=(\d+) lost=(\d+) duplicated=(\d+) dead_lettered=(\d+) p50=([\d.]+)s p99=([\d.]+)s$"
)


@pytest.mark.parametrize("kind", ["reviewer", "coordinator", "nats", "node"])
async def test_chaos_loses_and_duplicates_nothing(kind, tmp_path):
    """Proposals go out while a reviewer, the coordinator, the nats-server or one node of a
    3-node cluster is SIGKILLed and restarted: every proposal gets exactly one outcome, the
    command prints its one-line summary and exits 0."""
    result = await asyncio.to_thread(
        mesh, "chaos", "--proposals", "12", "--kill", kind, "--kills", "1", "--rate", "8", "--seed", "5",
        timeout=170, MESH_HOME=str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = LINE.match(result.stdout.strip().splitlines()[-1])
    assert summary, result.stdout
    proposals, outcomes, lost, duplicated = map(int, summary.groups()[:4])
    assert (proposals, outcomes, lost, duplicated) == (12, 12, 0, 0)
    assert "killed" in result.stderr  # the kill really happened
    if kind == "node":
        assert "nats-mesh-n3.log" in {p.name for p in (tmp_path / "chaos" / "logs").iterdir()}


async def test_chaos_refuses_an_unknown_kill_kind(tmp_path):
    """A typo in --kill is a clear error, not a run."""
    result = await asyncio.to_thread(mesh, "chaos", "--kill", "disk", MESH_HOME=str(tmp_path))
    assert result.returncode == 1
    assert "unknown kill kind 'disk'" in result.stderr
