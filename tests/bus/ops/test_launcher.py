"""The launcher's replicas: more than one process of a service, sharing its durable consumer,
each one listed in run.json."""

from __future__ import annotations

import asyncio

from bus.client import MeshClient
from bus.ops.launcher import RunningMesh, start_mesh
from bus.ops.processes import ServiceProcess
from tests.e2e.support import eventually, sample


async def test_replicas_run_as_separate_processes_that_share_the_work(settings, tmp_path, service_identities):
    """Two security replicas get their own pid, port and log, and both review from one durable."""
    mesh = await asyncio.to_thread(
        start_mesh,
        settings,
        names=["security"],
        home=tmp_path / "mesh",
        embedded=False,
        replicas={"security": 2},
        identities=service_identities(settings, ["security"]),
    )
    try:
        first, second = mesh.services
        assert first.name == second.name == "security"
        assert first.pid != second.pid and first.port != second.port
        assert (first.log_path.name, second.log_path.name) == ("security.log", "security-2.log")

        async with await MeshClient.connect(settings) as client:
            for i in range(40):
                await client.propose(sample("release_clean", release_id=f"rel-replica-{i}"))

            async def reviewed() -> int:
                info = await client.js.stream_info(settings.subjects.reviews_stream)
                return info.state.messages >= 40

            assert await eventually(reviewed, timeout=30)
        assert all("reviewed" in service.log_path.read_text() for service in mesh.services)
    finally:
        await asyncio.to_thread(mesh.stop)


def test_run_json_lists_every_replica_under_its_own_label(settings):
    """`mesh up --replicas` writes each process to run.json (`security`, `security#2`), so
    `mesh status` checks every replica, not only the last one started."""
    services = [
        ServiceProcess("security", 8081, {}),
        ServiceProcess("security", 8082, {}),
        ServiceProcess("coordinator", 8083, {}),
    ]
    described = RunningMesh(settings, "nats://127.0.0.1:4222", services).describe()["services"]

    assert list(described) == ["security", "security#2", "coordinator"]
    assert [row["url"] for row in described.values()] == [s.url for s in services]
    assert [row["service"] for row in described.values()] == ["security", "security", "coordinator"]
