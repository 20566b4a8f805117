"""What `mesh chaos --kill KIND` kills, and how it comes back.

Every kill is a SIGKILL — no drain, no goodbye — and every restart reuses what a real restart
would: the same command for a service, the same port and store folder for a nats-server.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from bus.launcher import RunningMesh
from bus.processes import ServiceProcess

KINDS = ("reviewer", "coordinator", "nats", "node", "none")
REVIEWERS = ("security", "compliance")


class Fault(Protocol):
    """Kill one thing (`kill` says what), then bring it back (`restart`)."""

    def kill(self, rng: random.Random) -> str: ...

    def restart(self) -> None: ...


@dataclass
class ServiceFault(Fault):
    """SIGKILL one process of the named services, picked at random; restart it the same way."""

    mesh: RunningMesh
    names: tuple[str, ...]
    victim: ServiceProcess | None = None

    def kill(self, rng: random.Random) -> str:
        candidates = [s for s in self.mesh.services if s.name in self.names and s.alive()]
        if not candidates:
            return "nothing to kill"
        self.victim = rng.choice(candidates)
        pid = self.victim.pid
        self.victim.kill()
        return f"{self.victim.name} (pid {pid}, {self.victim.log_path.name if self.victim.log_path else ''})"

    def restart(self) -> None:
        if self.victim is not None:
            self.victim.restarts += 1
            self.victim.start()
            self.victim = None


@dataclass
class NatsFault(Fault):
    """SIGKILL the embedded nats-server; restart it on the same port with the same store."""

    mesh: RunningMesh

    def kill(self, rng: random.Random) -> str:
        pid = self.mesh.nats.process.pid
        self.mesh.nats.kill()
        return f"nats-server (pid {pid})"

    def restart(self) -> None:
        self.mesh.nats.start()


@dataclass
class NodeFault(Fault):
    """SIGKILL one node of the embedded cluster, picked at random; it rejoins on restart."""

    mesh: RunningMesh
    down: int | None = None

    def kill(self, rng: random.Random) -> str:
        nodes = self.mesh.cluster.nodes
        self.down = rng.randrange(len(nodes))
        pid = nodes[self.down].process.pid
        nodes[self.down].kill()
        return f"node n{self.down + 1} (pid {pid})"

    def restart(self) -> None:
        if self.down is not None:
            self.mesh.cluster.nodes[self.down].start()
            self.down = None


def fault_for(kind: str, mesh: RunningMesh) -> Fault | None:
    if kind == "reviewer":
        return ServiceFault(mesh, REVIEWERS)
    if kind == "coordinator":
        return ServiceFault(mesh, ("coordinator",))
    if kind == "nats":
        return NatsFault(mesh)
    if kind == "node":
        return NodeFault(mesh)
    if kind == "none":
        return None
    raise ValueError(f"unknown kill kind {kind!r}; choose one of {', '.join(KINDS)}")
