"""The systems under test, each on its own embedded nats-server, started and stopped alike.

    mesh       the real services (`mesh run security|compliance|coordinator`), started by the
               same launcher as `mesh up`, R replicas per reviewer, secured: one identity per
               service and a server that checks each publish and subscription against it
    mesh-open  the same mesh on a server without authorization (`start_mesh(secure=False)`),
               so mesh against mesh-open is what authorization costs
    floor      `python -m bus.ops.bench.floor ...` processes, the same count and roles
    floor+kv   the floor with durable rounds (`coordinator --kv`)

Every system's streams, consumers and buckets are provisioned from the services' own
declarations, so all of them read through identical durable consumers.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bus.errors import MeshError
from bus.ops.embedded import EmbeddedNats
from bus.ops.launcher import RunningMesh, provision_mesh, replica_labels, start_mesh
from bus.ops.processes import child_env, spawn
from bus.ops.settings import MeshSettings

REVIEWERS = ["security", "compliance"]
SERVICES = [*REVIEWERS, "coordinator"]
FLOORS = ("floor", "floor+kv")
SYSTEMS = (*FLOORS, "mesh", "mesh-open")


def bench_settings(settings: MeshSettings, *, deadline_seconds: float) -> MeshSettings:
    """The user's settings with the round shape every system must share.

    The deadline is long so that no deadline fires while a row is measured.
    """
    return settings.model_copy(update={"reviewers": REVIEWERS, "policy": "all", "deadline_seconds": deadline_seconds})


@dataclass
class System:
    """A running system under test: its settings (pointing at its own server) and processes."""

    name: str
    settings: MeshSettings
    home: Path
    nats: EmbeddedNats
    processes: dict[str, int] = field(default_factory=dict)  # label -> pid, nats-server included
    _mesh: RunningMesh | None = None
    _children: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        if self._mesh is not None:
            self._mesh.stop()
        _stop_children(self._children)
        self.nats.stop()
        shutil.rmtree(self.home / "nats", ignore_errors=True)  # stores grow; logs stay for reading


def start_system(name: str, settings: MeshSettings, *, home: Path, replicas: int) -> System:
    """Start one of SYSTEMS with `replicas` processes per reviewer; wait until ready."""
    if name in ("mesh", "mesh-open"):
        return _start_mesh(name, settings, home=home, replicas=replicas, secure=name == "mesh")
    if name in FLOORS:
        return _start_floor(name, settings, home=home, replicas=replicas, durable=name == "floor+kv")
    raise MeshError(f"unknown system {name!r}; choose one of {', '.join(SYSTEMS)}")


def _start_mesh(name: str, settings: MeshSettings, *, home: Path, replicas: int, secure: bool) -> System:
    if not secure:  # the driver too connects as nobody, not as the operator of some earlier `mesh up`
        settings = settings.model_copy(update={"nats_credentials": None})
    mesh = start_mesh(
        settings,
        names=SERVICES,
        home=home,
        embedded=True,
        fresh=True,
        replicas=dict.fromkeys(REVIEWERS, replicas),
        secure=secure,
    )
    processes = dict(zip(replica_labels([s.name for s in mesh.services]), [s.pid for s in mesh.services], strict=True))
    processes["nats-server"] = mesh.nats.process.pid
    return System(name, mesh.settings, home, mesh.nats, processes, _mesh=mesh)


def _start_floor(name: str, settings: MeshSettings, *, home: Path, replicas: int, durable: bool) -> System:
    shutil.rmtree(home, ignore_errors=True)
    logs = home / "logs"
    logs.mkdir(parents=True)
    nats = EmbeddedNats(store_dir=home / "nats", log_file=logs / "nats.log").start()
    settings = settings.model_copy(update={"nats_url": nats.url})
    children: list[subprocess.Popen] = []
    try:
        asyncio.run(provision_mesh(settings, names=SERVICES))
        env = child_env(**settings.as_env())
        roles = [["reviewer", r] for r in REVIEWERS for _ in range(replicas)]
        roles.append(["coordinator", "--kv"] if durable else ["coordinator"])
        labels = replica_labels([role[1] if role[0] == "reviewer" else "coordinator" for role in roles])
        for label, role in zip(labels, roles, strict=True):
            log = logs / f"{label.replace('#', '-')}.log"
            children.append(spawn([sys.executable, "-m", "bus.ops.bench.floor", *role], env=env, log_path=log))
        _wait_for_ready([logs / f"{label.replace('#', '-')}.log" for label in labels], children)
    except BaseException:
        _stop_children(children)
        nats.stop()
        raise
    processes = {label: child.pid for label, child in zip(labels, children, strict=True)}
    processes["nats-server"] = nats.process.pid
    return System(name, settings, home, nats, processes, _children=children)


def _wait_for_ready(logs: list[Path], children: list[subprocess.Popen], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(zip(logs, children, strict=True))
    while pending:
        if time.monotonic() > deadline or any(child.poll() is not None for _, child in pending):
            raise MeshError("floor processes did not start: see " + ", ".join(str(log) for log, _ in pending))
        pending = [(log, child) for log, child in pending if not (log.exists() and b"ready" in log.read_bytes())]
        time.sleep(0.05)


def _stop_children(children: list[subprocess.Popen], timeout: float = 10.0) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
