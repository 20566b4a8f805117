"""`supervise_nats`: a killed embedded nats-server (or cluster node) is reaped and started again
where it was, with its store, after a backoff while it keeps dying. Real servers, real kills."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import nats
import pytest

from bus.ops.cluster import EmbeddedCluster
from bus.ops.embedded import EmbeddedNats
from bus.ops.nats_watch import supervise_nats, watch_nats
from tests.e2e.support import eventually


def reaped(pid: int) -> bool:
    """Gone for good: not running, and not a zombie waiting for its parent either."""
    return not Path(f"/proc/{pid}").exists()


async def stream_count(url: str) -> int:
    nc = await nats.connect(url)
    try:
        return len(await nc.jetstream().streams_info())
    finally:
        await nc.close()


async def _stream_count_is(url: str, expected: int) -> bool:
    try:
        return await stream_count(url) == expected
    except Exception:  # noqa: BLE001 - the node is still catching up
        return False


async def add_stream(url: str, name: str, replicas: int = 1) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().add_stream(name=name, subjects=[f"{name}.>"], num_replicas=replicas)
    finally:
        await nc.close()


@pytest.fixture
def server(tmp_path):
    nats_server = EmbeddedNats(store_dir=tmp_path / "store", log_file=tmp_path / "nats.log").start()
    try:
        yield nats_server
    finally:
        nats_server.stop()


async def test_a_killed_server_is_reaped_and_started_again_on_its_port_with_its_store(server):
    """SIGKILL leaves a zombie until someone waits for it; one round reaps it and starts the server
    again on the same client and monitoring ports with the same store (its streams are there)."""
    await add_stream(server.url, "KEPT")
    (node,) = watch_nats(server, None)
    assert supervise_nats([node]) == [] and node.state == "ready"
    old_pid, port, monitor_port = node.pid, server.port, server.monitor_port
    server.process.send_signal(9)  # not .kill(): that would reap it itself
    time.sleep(0.2)

    assert await asyncio.to_thread(supervise_nats, [node]) == [node]

    assert reaped(old_pid) and node.pid != old_pid
    assert (server.port, server.monitor_port) == (port, monitor_port)
    assert node.state == "ready" and node.restarts == 1 and node.last_restart == "exited with code -9"
    assert await stream_count(server.url) == 1


async def test_a_server_that_keeps_dying_waits_longer_each_time(server):
    """The first restart is at once; a second death right after waits for the backoff, and the
    status line says how long; a start that fails (its port taken) counts as one more death."""
    (node,) = watch_nats(server, None)
    now = [1000.0]

    def clock() -> float:
        return now[0]

    def crash() -> None:
        server.process.kill()
        server.process.wait()

    crash()
    assert await asyncio.to_thread(supervise_nats, [node], clock=clock) == [node]
    crash()
    now[0] += 0.5
    assert await asyncio.to_thread(supervise_nats, [node], clock=clock) == []
    assert node.state == "down (exit -9); restart in 1 s"

    with socket.create_server((server.host, server.port)):  # someone else took the port meanwhile
        now[0] += 1.0
        assert await asyncio.to_thread(supervise_nats, [node], clock=clock, start_timeout=5) == []
        assert node.state == "down" and node.last_restart.startswith("could not start again")
    now[0] += 1.0
    assert await asyncio.to_thread(supervise_nats, [node], clock=clock) == []
    assert node.state == "down (exit 1); restart in 2 s"
    now[0] += 2.0
    assert await asyncio.to_thread(supervise_nats, [node], clock=clock) == [node]
    assert node.state == "ready" and node.restarts == 2


async def test_a_killed_cluster_node_is_started_again_and_catches_up(tmp_path):
    """Each node of an embedded cluster is watched: a SIGKILLed one is started again with its
    routes and store, rejoins, and reports ready once its R3 stream is current."""
    cluster = EmbeddedCluster(store_dir=tmp_path / "cluster", size=3, log_dir=tmp_path).start()
    try:
        await add_stream(cluster.url.split(",")[0], "R3", replicas=3)
        nodes = watch_nats(None, cluster)
        assert [n.label for n in nodes] == ["nats-n1", "nats-n2", "nats-n3"]
        cluster.nodes[1].process.send_signal(9)
        time.sleep(0.2)

        assert await asyncio.to_thread(supervise_nats, nodes) == [nodes[1]]

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and {n.state for n in nodes} != {"ready"}:
            await asyncio.to_thread(supervise_nats, nodes)
            await asyncio.sleep(0.2)
        assert [n.state for n in nodes] == ["ready"] * 3
        assert len(cluster.running) == 3
        # "ready" is the node's own health; its view of the stream list may trail by a moment
        assert await eventually(lambda: _stream_count_is(nodes[1].url, 1), timeout=15)
    finally:
        cluster.stop()
