"""End-to-end fixtures: the real services as OS processes, started the way `mesh up` starts them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bus.client import MeshClient
from bus.ops.launcher import RunningMesh, start_mesh


@pytest.fixture
def launch(tmp_path, service_identities) -> Callable[..., RunningMesh]:
    """Start services as real processes against the test's NATS, each with its own identity
    and only the permissions it declares; everything is stopped after."""
    started: list[RunningMesh] = []

    def _launch(settings, names: list[str], *, replicas: dict[str, int] | None = None, **env: str) -> RunningMesh:
        mesh = start_mesh(
            settings,
            names=names,
            home=tmp_path / f"mesh{len(started)}",
            embedded=False,
            env={f"MESH_{k.upper()}": str(v) for k, v in env.items()},
            replicas=replicas,
            identities=service_identities(settings, names),
        )
        started.append(mesh)
        return mesh

    yield _launch
    for mesh in started:
        mesh.stop()


@pytest.fixture
async def client(settings) -> AsyncIterator[MeshClient]:
    async with await MeshClient.connect(settings, name="test-client") as mesh_client:
        yield mesh_client
