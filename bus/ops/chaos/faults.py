"""What `mesh chaos --kill KIND` kills, and how it comes back.

Every kill is a SIGKILL — no drain, no goodbye — and every restart reuses what a real restart
would: the same command for a service, the same port and store folder for a nats-server.
`--kill freeze` is the other way to fail: SIGSTOP, so the process stays alive, connected and
holding its messages, but silent (no heartbeat, no ack, no /readyz), until its SIGCONT.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
from dataclasses import dataclass
from typing import Protocol

from bus.ops.chaos.proposals import REVIEWERS
from bus.ops.launcher import RunningMesh
from bus.ops.processes import ServiceProcess

KINDS = ("reviewer", "coordinator", "steward", "nats", "node", "freeze", "none")
FREEZE_TARGETS = {"reviewer": REVIEWERS, "coordinator": ("coordinator",), "any": (*REVIEWERS, "coordinator")}
# A frozen process is thawed by a detached helper this long after its planned SIGCONT, should
# this process die first (SIGKILL runs no `finally`): nothing stays stopped forever.
THAW_GRACE_SECONDS = 30.0


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
        return f"killed {self.victim.name} (pid {pid}, {self.victim.log_path.name if self.victim.log_path else ''})"

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
        return f"killed nats-server (pid {pid})"

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
        return f"killed node n{self.down + 1} (pid {pid})"

    def restart(self) -> None:
        if self.down is not None:
            self.mesh.cluster.nodes[self.down].start()
            self.down = None


@dataclass
class FreezeFault(Fault):
    """SIGSTOP one process of the named services, picked at random; `restart` SIGCONTs it.

    `hold` is how long it is meant to stay frozen: a detached `sh` thaws it after
    `hold + THAW_GRACE_SECONDS` even if the chaos run itself is killed before `restart`.
    """

    mesh: RunningMesh
    names: tuple[str, ...]
    hold: float
    victim: ServiceProcess | None = None
    guard: subprocess.Popen | None = None

    def kill(self, rng: random.Random) -> str:
        candidates = [s for s in self.mesh.services if s.name in self.names and s.alive()]
        if not candidates:
            return "nothing to freeze"
        self.victim = rng.choice(candidates)
        pid = self.victim.pid
        self.guard = subprocess.Popen(
            ["sh", "-c", f"sleep {self.hold + THAW_GRACE_SECONDS:.0f}; kill -CONT {pid} 2>/dev/null"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives us, and a Ctrl-C to our group
        )
        os.kill(pid, signal.SIGSTOP)
        return f"froze {self.victim.name} (pid {pid}, {self.victim.log_path.name if self.victim.log_path else ''})"

    def restart(self) -> None:
        if self.victim is not None and self.victim.alive():
            os.kill(self.victim.pid, signal.SIGCONT)
        self.victim = None
        if self.guard is not None:
            self.guard.kill()
            self.guard.wait()
            self.guard = None


def fault_for(kind: str, mesh: RunningMesh, *, freeze: str = "any", hold: float = 30.0) -> Fault | None:
    """The fault of `kind`; `freeze` (a key of FREEZE_TARGETS) and `hold` shape `--kill freeze`."""
    if kind == "freeze":
        if freeze not in FREEZE_TARGETS:
            raise ValueError(f"unknown freeze target {freeze!r}; choose one of {', '.join(FREEZE_TARGETS)}")
        return FreezeFault(mesh, FREEZE_TARGETS[freeze], hold)
    if kind == "reviewer":
        return ServiceFault(mesh, REVIEWERS)
    if kind == "coordinator":
        return ServiceFault(mesh, ("coordinator",))
    if kind == "steward":  # the daemon agent: its active instance or its standby
        return ServiceFault(mesh, ("steward",))
    if kind == "nats":
        return NatsFault(mesh)
    if kind == "node":
        return NodeFault(mesh)
    if kind == "none":
        return None
    raise ValueError(f"unknown kill kind {kind!r}; choose one of {', '.join(KINDS)}")
