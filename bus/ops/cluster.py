"""An embedded JetStream cluster: N nats-server processes on loopback, joined by routes.

    cluster = EmbeddedCluster(store_dir=Path(".mesh/cluster"), size=3).start()
    cluster.url        # "nats://127.0.0.1:p1,nats://127.0.0.1:p2,nats://127.0.0.1:p3"
    cluster.nodes[1].kill(); cluster.nodes[1].start()   # a crash, then the node rejoins

Each node is an `EmbeddedNats` with its own store folder and log, a server name, and routes to
every node (a node ignores its route to itself). With `MESH_STREAM_REPLICAS=3` every stream and
KV bucket is an R3 raft group, so losing any one node loses no acknowledged message. This is for
running and testing on one machine; a production cluster is run by NATS's own tooling and the
mesh only needs its URLs (see the README).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bus.errors import NatsServerFailed
from bus.ops.embedded import EmbeddedNats, free_port


@dataclass
class EmbeddedCluster:
    store_dir: Path
    size: int = 3
    name: str = "mesh"
    host: str = "127.0.0.1"
    log_dir: Path | None = None
    extra_args: list[str] = field(default_factory=list)  # for every node (e.g. `-c auth.conf`)
    nodes: list[EmbeddedNats] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated: what MESH_NATS_URL takes."""
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 30.0) -> EmbeddedCluster:
        if self.size < 1:
            raise ValueError("a cluster needs at least one node")
        route_ports = [free_port(self.host) for _ in range(self.size)]
        routes = ",".join(f"nats://{self.host}:{port}" for port in route_ports)
        try:
            for index, route_port in enumerate(route_ports, start=1):
                server = f"{self.name}-n{index}"
                node = EmbeddedNats(
                    store_dir=self.store_dir / server,
                    host=self.host,
                    log_file=self.log_dir / f"nats-{server}.log" if self.log_dir else None,
                    extra_args=[
                        "--server_name",
                        server,
                        "--cluster_name",
                        self.name,
                        "--cluster",
                        f"nats://{self.host}:{route_port}",
                        "--routes",
                        routes,
                        *self.extra_args,
                    ],
                )
                self.nodes.append(node.start(timeout))
            self.wait_for_leader(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_leader(self, timeout: float = 30.0) -> str:
        """Block until the JetStream meta group has a leader that sees every node; return its name."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.running:
                try:
                    jsz = httpx.get(f"http://{node.host}:{node.monitor_port}/jsz", timeout=0.5).json()
                except (httpx.HTTPError, ValueError):
                    continue
                meta = jsz.get("meta_cluster") or {}
                if meta.get("leader") and meta.get("cluster_size", 0) >= self.size:
                    return meta["leader"]
            time.sleep(0.1)
        raise NatsServerFailed(f"the {self.size}-node cluster elected no JetStream leader within {timeout:.0f} s")

    @property
    def running(self) -> list[EmbeddedNats]:
        return [node for node in self.nodes if node.process and node.process.poll() is None]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
