"""The command line a newcomer types, run as real subprocesses: demo, up/status/stop, publish --wait."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path

import httpx

from services.index import SERVICES
from tests.bus.ops.test_cli import mesh
from tests.e2e.support import mesh_up

SAMPLES = files("contracts") / "samples"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie that nobody reaped yet is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_demo_runs_end_to_end_and_leaves_nothing_behind(tmp_path):
    """`mesh demo` approves the clean release, blocks the one with a planted secret (naming the
    finding), exits 0 well under 30 s, and leaves no process running."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bus.ops.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
        env={**os.environ, "MESH_HOME": str(tmp_path / ".mesh"), "COLUMNS": "200"},
    )
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stdout + result.stderr
    assert "APPROVED rel-42" in result.stdout
    assert "BLOCKED rel-43" in result.stdout
    assert "src/provider.py:3" in result.stdout
    assert "AKIAZ7VRSQ5TJXK3M2PL" not in result.stdout
    assert elapsed < 60, f"mesh demo took {elapsed:.1f} s"  # a margin for a loaded 2-core machine
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"processes left running: {leftovers}"


def test_up_writes_run_file_reports_status_and_stops_cleanly_on_sigterm(tmp_path):
    """`mesh up` starts NATS and every service, writes .mesh/run.json, the registry lists the
    live security reviewer, `mesh status` sees every service ready, and SIGTERM stops every
    process it started."""
    home = tmp_path / ".mesh"
    env = {**os.environ, "MESH_HOME": str(home), "COLUMNS": "200"}
    env.pop("MESH_NATS_URL", None)
    up, run_file = mesh_up(tmp_path, env)
    try:
        assert run_file.exists(), up.stdout.read() if up.poll() is not None else "no run file"
        info = json.loads(run_file.read_text())
        assert set(info["services"]) == set(SERVICES)  # every service the mesh has
        for service in info["services"].values():
            assert httpx.get(f"{service['url']}/healthz", timeout=5).status_code == 200
        registry = info["services"]["registry"]["url"]
        found = httpx.get(f"{registry}/agents", params={"skill": "review.security"}, timeout=5).json()
        assert [a["name"] for a in found["agents"]] == ["security"]

        status = subprocess.run(
            [sys.executable, "-m", "bus.ops.cli", "status", "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        assert {s["health"] for s in json.loads(status.stdout)["services"].values()} == {"ready"}
        pids = [s["pid"] for s in info["services"].values()] + [info["embedded_nats_pid"]]
    finally:
        up.send_signal(signal.SIGTERM)
        output, _ = up.communicate(timeout=30)

    assert up.returncode == 0, output
    # `mesh up` waits for every process it started before it exits: its exit is the signal
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert not run_file.exists()


async def test_publish_wait_exit_codes_follow_the_outcome(settings, launch):
    """`mesh publish --wait` exits 0 for approved and 1 for blocked, printing the outcome."""
    await asyncio.to_thread(launch, settings, ["security", "compliance", "coordinator"])
    clean = Path(str(SAMPLES / "release_clean.json"))
    secret = Path(str(SAMPLES / "release_secret.json"))

    approved = await asyncio.to_thread(
        mesh, "publish", "release.proposed", str(clean), "--wait", "20", "--json", settings=settings
    )
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["outcome"] == "approved"

    blocked = await asyncio.to_thread(
        mesh, "publish", "release.proposed", str(secret), "--wait", "20", settings=settings
    )
    assert blocked.returncode == 1, blocked.stderr
    assert "BLOCKED" in blocked.stdout

    again = await asyncio.to_thread(
        mesh, "publish", "release.proposed", str(clean), "--wait", "5", "--json", settings=settings
    )
    assert again.returncode == 0  # already decided: the same outcome comes back at once
    assert json.loads(again.stdout)["release_id"] == "rel-42"


async def test_publish_wait_exits_4_when_no_outcome_arrives(settings, launch):
    """With no coordinator running, `--wait` gives up after its timeout with exit code 4."""
    await asyncio.to_thread(launch, settings, ["security"])
    clean = Path(str(SAMPLES / "release_clean.json"))
    result = await asyncio.to_thread(mesh, "publish", "release.proposed", str(clean), "--wait", "2", settings=settings)
    assert result.returncode == 4
    assert "no outcome" in result.stderr
