"""`mesh up --cluster 3`: three embedded nats-servers joined by routes, R3 streams and buckets."""

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

import nats

from tests.bus.ops.test_cli import mesh
from tests.e2e.test_cli_e2e import pid_alive

SAMPLES = files("contracts") / "samples"


async def replicas_of(url: str, stream: str, operator: Path) -> tuple[int, int]:
    """(configured replicas, peers that are current) of a stream."""
    nc = await nats.connect(url.split(","), nkeys_seed=str(operator), inbox_prefix="_INBOX.operator")
    try:
        info = await nc.jetstream().stream_info(stream)
        current = 1 + sum(1 for peer in info.cluster.replicas or [] if peer.current)
        return info.config.num_replicas, current
    finally:
        await nc.close()


def test_up_cluster_runs_three_nodes_with_r3_streams(tmp_path):
    """`mesh up --cluster 3` starts three routed nodes and every service; streams and KV are R3
    with every peer current; a proposal gets its outcome; SIGTERM stops every process. (Killing
    a node under load is `mesh chaos --kill node`, in test_chaos.py.)"""
    home = tmp_path / ".mesh"
    env = {**os.environ, "MESH_HOME": str(home), "COLUMNS": "200"}
    env.pop("MESH_NATS_URL", None)
    up = subprocess.Popen(
        [sys.executable, "-m", "bus.ops.cli", "up", "--cluster", "3", "--base-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    run_file = home / "run.json"
    try:
        deadline = time.monotonic() + 90
        while not run_file.exists() and time.monotonic() < deadline and up.poll() is None:
            time.sleep(0.2)
        assert run_file.exists(), up.stdout.read() if up.poll() is not None else "no run file"
        info = json.loads(run_file.read_text())
        nodes = info["embedded_cluster_pids"]
        assert len(nodes) == 3 and all(pid_alive(pid) for pid in nodes)
        url = info["nats_url"]
        assert len(url.split(",")) == 3
        assert asyncio.run(replicas_of(url, "MESH_EVENTS", home / "identities" / "operator.nk")) == (3, 3)
        assert asyncio.run(replicas_of(url, "KV_mesh_rounds", home / "identities" / "operator.nk"))[0] == 3

        published = mesh(
            "publish",
            "release.proposed",
            str(SAMPLES / "release_clean.json"),
            "--wait",
            "45",
            "--json",
            MESH_NATS_URL=url,
            MESH_HOME=str(home),
        )
        assert published.returncode == 0, published.stdout + published.stderr
        assert json.loads(published.stdout)["outcome"] == "approved"
        pids = [s["pid"] for s in info["services"].values()] + nodes
    finally:
        up.send_signal(signal.SIGTERM)
        output, _ = up.communicate(timeout=60)

    assert up.returncode == 0, output
    # `mesh up` waits for every process it started before it exits: its exit is the signal
    assert [pid for pid in pids if pid_alive(pid)] == []
