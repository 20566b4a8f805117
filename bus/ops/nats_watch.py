"""`mesh up` looks after the nats-servers it started as it does after its services.

`supervise_nats` is one round of that watch: a server that exited is reaped at once (no zombie)
and started again — at once the first time, with a growing backoff while it keeps dying — with
the same arguments, port, store folder and configuration (`-c auth.conf`: the same identities),
so the services' connections find it where they left it and JetStream recovers from the store;
a cluster node rejoins its routes. A live server is probed on its monitoring port (`/healthz`,
which a node answers 200 only once its streams are current), for `mesh up`'s status table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from bus.errors import NatsServerFailed
from bus.ops.backoff import Backoff
from bus.ops.cluster import EmbeddedCluster
from bus.ops.embedded import EmbeddedNats

PROBE_TIMEOUT = 1.0


@dataclass
class WatchedNats:
    """One embedded nats-server, with what its line in the status table shows."""

    label: str  # `nats`, or `nats-n1`… for the nodes of a cluster
    server: EmbeddedNats
    backoff: Backoff = field(default_factory=Backoff)
    state: str = "ready"  # the last probe: ready, not ready, no answer; or down (restart in N s)
    restarts: int = 0
    last_restart: str = ""  # why it was last started again

    @property
    def pid(self) -> int | None:
        return self.server.process.pid if self.server.process else None

    @property
    def url(self) -> str:
        return self.server.url


def watch_nats(nats: EmbeddedNats | None, cluster: EmbeddedCluster | None) -> list[WatchedNats]:
    """What `mesh up` started: its one server, or every node of its cluster (none for your own)."""
    if cluster:
        return [WatchedNats(f"nats-n{i}", node) for i, node in enumerate(cluster.nodes, 1)]
    return [WatchedNats("nats", nats)] if nats else []


def supervise_nats(
    nodes: list[WatchedNats], *, clock=time.monotonic, probe_timeout: float = PROBE_TIMEOUT, start_timeout: float = 15.0
) -> list[WatchedNats]:
    """One round: reap and start again what exited (when its backoff allows), probe the rest.

    Returns the servers started again in this round; each one's `last_restart` says why.
    """
    restarted = []
    for node in nodes:
        process = node.server.process
        if process is not None and process.poll() is None:  # poll() reaps a child that exited
            node.state = _probe(node.server, probe_timeout)
            continue
        code = process.returncode if process else None
        if not node.backoff.due(clock()):
            node.state = f"down (exit {code}); restart in {node.backoff.remaining(clock()):.0f} s"
            continue
        try:
            node.server.start(timeout=start_timeout)  # the same port, store and arguments
        except NatsServerFailed as exc:
            node.state = "down"
            node.last_restart = f"could not start again: {exc}"
            node.backoff.started(clock())  # a failed start counts as a death: the next wait is longer
            continue
        node.backoff.started(clock())
        node.restarts += 1
        node.last_restart = f"exited with code {code}"
        node.state = _probe(node.server, probe_timeout)
        restarted.append(node)
    return restarted


def _probe(server: EmbeddedNats, timeout: float) -> str:
    try:
        response = httpx.get(f"http://{server.host}:{server.monitor_port}/healthz", timeout=timeout)
    except httpx.HTTPError:
        return "no answer"
    return "ready" if response.status_code == 200 else "not ready"
