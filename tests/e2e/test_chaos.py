"""`mesh chaos`, small, for each kill kind: real processes, real nats-servers, real SIGKILLs
and SIGSTOPs, every outcome judged against its release's content."""

from __future__ import annotations

import asyncio
import re

import pytest

from bus.ops.chaos import ChaosPlan, run_chaos
from bus.ops.settings import MeshSettings
from contracts.outcomes import Outcome
from tests.bus.ops.test_cli import mesh

LINE = re.compile(
    r"^proposals=(\d+) outcomes=(\d+) lost=(\d+) duplicated=(\d+) wrong=(\d+) dead_lettered=(\d+) "
    r"p50=([\d.]+)s p99=([\d.]+)s$"
)


@pytest.mark.parametrize("kind", ["reviewer", "coordinator", "nats", "node"])
async def test_chaos_loses_and_duplicates_nothing(kind, tmp_path):
    """Proposals go out while a reviewer, the coordinator, the nats-server or one node of a
    3-node cluster is SIGKILLed and restarted: every proposal gets exactly one outcome, none
    contradicts its content, the command prints its one-line summary and exits 0."""
    result = await asyncio.to_thread(
        mesh,
        "chaos",
        "--proposals",
        "12",
        "--kill",
        kind,
        "--kills",
        "1",
        "--rate",
        "8",
        "--seed",
        "5",
        timeout=170,
        MESH_HOME=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = LINE.match(result.stdout.strip().splitlines()[-1])
    assert summary, result.stdout
    proposals, outcomes, lost, duplicated, wrong = map(int, summary.groups()[:5])
    assert (proposals, outcomes, lost, duplicated, wrong) == (12, 12, 0, 0, 0)
    assert "killed" in result.stderr  # the kill really happened
    if kind == "node":
        assert "nats-mesh-n3.log" in {p.name for p in (tmp_path / "chaos" / "logs").iterdir()}


async def test_chaos_refuses_an_unknown_kill_kind(tmp_path):
    """A typo in --kill is a usage error (exit 2), not a run."""
    result = await asyncio.to_thread(mesh, "chaos", "--kill", "disk", MESH_HOME=str(tmp_path))
    assert result.returncode == 2
    assert "unknown kill kind 'disk'" in result.stderr


async def test_a_reviewer_frozen_past_its_heartbeat_ttl_decides_nothing_wrongly(tmp_path):
    """The security reviewer is SIGSTOPped for 20 s (past the 15 s heartbeat TTL and, for the
    proposals sent early in the freeze, past the 12 s deadline) while 30 releases, a quarter of
    them risky, keep coming: nothing is lost or duplicated, and no outcome contradicts its
    content — rounds opened while security was silent still wait for it, so a committed key is
    never approved by compliance alone. (Seed 1 freezes security at t=3.1 s.)"""
    result = await asyncio.to_thread(
        mesh,
        "chaos",
        "--proposals",
        "30",
        "--kill",
        "freeze",
        "--freeze",
        "reviewer",
        "--freeze-for",
        "20",
        "--deadline",
        "12",
        "--kills",
        "1",
        "--rate",
        "1.5",
        "--seed",
        "1",
        timeout=150,
        MESH_HOME=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = LINE.match(result.stdout.strip().splitlines()[-1])
    assert summary, result.stdout
    proposals, outcomes, lost, duplicated, wrong = map(int, summary.groups()[:5])
    assert (proposals, outcomes, lost, duplicated, wrong) == (30, 30, 0, 0, 0)
    assert "froze security" in result.stderr and "down 20.0 s" in result.stderr


async def test_a_nats_restart_leaves_no_round_without_reviewers(tmp_path):
    """The nats-server is SIGKILLed twice and restarted while 30 releases go out: every
    outcome fits its content (wrong=0) and every round expected its reviewers — none was
    decided with an empty `expected` ("no live reviewer") after the restart."""
    report = await run_chaos(
        MeshSettings(),
        ChaosPlan(proposals=30, kill="nats", kills=2, rate=6, seed=5, timeout=120),
        home=tmp_path / "chaos",
        say=lambda _: None,
    )
    assert (report.tally.lost, report.tally.duplicated, report.tally.wrong) == (0, 0, 0), report.wrong
    assert len(report.outcomes) == 30 and len(report.kills) == 2
    assert all(outcome.expected for outcome in report.outcomes)
    assert {o.outcome for o in report.outcomes} >= {Outcome.APPROVED, Outcome.BLOCKED}
