"""The systems under test, each on its own embedded nats-server, started and stopped alike.

    mesh       the real services (`mesh run security|compliance|coordinator`), started by the
               same launcher as `mesh up`, R replicas per reviewer, secured: one identity per
               service and a server that checks each publish and subscription against it
    mesh-open  the same mesh on a server without authorization (`start_mesh(secure=False)`),
               so mesh against mesh-open is what authorization costs
    mesh-traced  the secured mesh with tracing on: every service exports its spans to a trace
               collector that stores them as `mesh up` does (bus/ops/trace_collector.py, in a
               process of its own, `trace-store`), so mesh-traced against mesh is what tracing
               costs, the store included; in the other two tracing is off. It records every
               trace unless told a ratio (`--trace-sampling`: OTEL_TRACES_SAMPLER=
               parentbased_traceidratio), whatever this shell's OTEL_TRACES_SAMPLER says
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
from bus.ops.embedded import EmbeddedNats, free_port
from bus.ops.launcher import RunningMesh, provision_mesh, replica_labels, start_mesh
from bus.ops.processes import child_env, spawn, stop_all
from bus.ops.settings import MeshSettings

REVIEWERS = ["security", "compliance"]
SERVICES = [*REVIEWERS, "coordinator"]
FLOORS = ("floor", "floor+kv")
MESHES = ("mesh", "mesh-open", "mesh-traced")
SYSTEMS = (*FLOORS, *MESHES)
TRACE_STORE = "trace-store"  # mesh-traced's collector, as a process label


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
            stop_all(self._mesh.services)  # first, so a traced mesh's last spans still reach its store
        _stop_children(self._children)
        if self._mesh is not None:
            self._mesh.stop()
        self.nats.stop()
        shutil.rmtree(self.home / "nats", ignore_errors=True)  # stores grow; logs stay for reading


def start_system(
    name: str, settings: MeshSettings, *, home: Path, replicas: int, trace_sampling: float = 1.0
) -> System:
    """Start one of SYSTEMS with `replicas` processes per reviewer; wait until ready.
    `trace_sampling`: the share of traces mesh-traced records."""
    if name in MESHES:
        traced = name == "mesh-traced"
        return _start_mesh(
            name,
            settings,
            home=home,
            replicas=replicas,
            secure=name != "mesh-open",
            traced=traced,
            sampling=trace_sampling if traced else None,
        )
    if name in FLOORS:
        return _start_floor(name, settings, home=home, replicas=replicas, durable=name == "floor+kv")
    raise MeshError(f"unknown system {name!r}; choose one of {', '.join(SYSTEMS)}")


def _start_mesh(
    name: str, settings: MeshSettings, *, home: Path, replicas: int, secure: bool, traced: bool, sampling: float | None
) -> System:
    if not secure:  # the driver too connects as nobody, not as the operator of some earlier `mesh up`
        settings = settings.model_copy(update={"nats_credentials": None})
    # Off means off whatever this shell's OTEL_* say; on means exporting to our collector only.
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = (
        {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{endpoint}/v1/traces"}
        | {"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}
        | trace_sampler_env(1.0 if sampling is None else sampling)
        if traced
        else {"OTEL_SDK_DISABLED": "true"}
    )
    mesh = start_mesh(
        settings,
        names=SERVICES,
        home=home,
        embedded=True,
        fresh=True,
        replicas=dict.fromkeys(REVIEWERS, replicas),
        secure=secure,
        env=env,
    )
    processes = dict(zip(replica_labels([s.name for s in mesh.services]), [s.pid for s in mesh.services], strict=True))
    processes["nats-server"] = mesh.nats.process.pid
    children = []
    if traced:
        try:
            children.append(_start_trace_store(mesh, endpoint, home / "logs" / f"{TRACE_STORE}.log"))
        except BaseException:
            mesh.stop()
            raise
        processes[TRACE_STORE] = children[0].pid
    return System(name, mesh.settings, home, mesh.nats, processes, _mesh=mesh, _children=children)


def trace_sampler_env(sampling: float) -> dict[str, str]:
    """The OTEL_TRACES_SAMPLER(_ARG) that record `sampling` of the traces (1: every one, as the
    SDK's default does), each service following the decision a message's sender made."""
    if sampling >= 1:
        return {"OTEL_TRACES_SAMPLER": "parentbased_always_on", "OTEL_TRACES_SAMPLER_ARG": ""}
    return {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": f"{sampling:g}"}


def _start_trace_store(mesh: RunningMesh, endpoint: str, log: Path) -> subprocess.Popen:
    """The collector `mesh up` runs, as a process of its own (the driver shares no interpreter
    with it), storing as the operator; the services retry their first exports until it listens."""
    own = {"MESH_NATS_CREDENTIALS": str(mesh.settings.nats_credentials)} if mesh.settings.nats_credentials else {}
    env = child_env(**{**mesh.settings.as_env(), "MESH_NATS_URL": mesh.nats_url, **own})
    port = endpoint.rsplit(":", 1)[1]
    child = spawn([sys.executable, "-m", "bus.ops.trace_collector", "--port", port], env=env, log_path=log)
    try:
        _wait_for_ready([log], [child])
    except BaseException:
        _stop_children([child])
        raise
    return child


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
            raise MeshError("processes did not start: see " + ", ".join(str(log) for log, _ in pending))
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
