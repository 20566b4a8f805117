"""Bring up a whole mesh on this machine: NATS (embedded or given), provisioning, services.

`mesh up`, `mesh demo` and the end-to-end tests all start the mesh through here, so what the
tests prove is what users run.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bus.connect import connect, redact_nats_url
from bus.errors import MeshError
from bus.ops.cluster import EmbeddedCluster
from bus.ops.embedded import EmbeddedNats, free_port
from bus.ops.identities import OPERATOR, Identities, generate_for_mesh
from bus.ops.processes import ServiceProcess, child_env, stop_all, wait_ready
from bus.ops.settings import IDENTITIES, MeshSettings
from bus.provision import ConsumerSpec, Report, provision
from bus.scheduling.specs import ScheduleSpec


def all_consumers(settings: MeshSettings, names: list[str]) -> list[ConsumerSpec]:
    """Every durable consumer the named services read from (each service declares its own)."""
    from services.index import SERVICES

    specs: list[ConsumerSpec] = []
    for name in names:
        specs += SERVICES[name].load().build(settings).consumers
    return specs


def all_schedules(settings: MeshSettings, names: list[str]) -> list[ScheduleSpec]:
    """Every schedule the named services declare (`@agent.scheduled`, `@agent.self_scheduled`)."""
    from services.index import SERVICES

    return [spec for name in names for spec in SERVICES[name].load().build(settings).schedules]


async def provision_mesh(
    settings: MeshSettings,
    *,
    names: list[str],
    reconcile: bool = True,
    allow_downgrade: bool = False,
    create: bool = True,
) -> Report:
    nc = await connect(settings, name="mesh-provision")
    try:
        from services.index import SERVICES

        consumers = all_consumers(settings, names)
        return await provision(
            nc.jetstream(),
            settings,
            consumers,
            reconcile=reconcile,
            allow_downgrade=allow_downgrade,
            create=create,
            schedules=all_schedules(settings, names),
            # every service named: a schedule none of them declares is an orphan, whoever it was for;
            # some of them: only those services' undeclared schedules are
            schedule_owners=None if set(SERVICES) <= set(names) else names,
        )
    finally:
        await nc.drain()


@dataclass
class RunningMesh:
    settings: MeshSettings
    nats_url: str
    services: list[ServiceProcess]
    nats: EmbeddedNats | None = None
    home: Path = Path(".mesh")
    provisioning: Report = field(default_factory=Report)
    cluster: EmbeddedCluster | None = None  # `cluster=N`: N embedded nodes instead of `nats`
    identities: Identities | None = None  # None: the server enforces no identities of ours
    otlp_endpoint: str | None = None  # where the services send spans (`mesh up`'s trace store)

    def stop(self) -> None:
        stop_all(self.services)
        if self.nats:
            self.nats.stop()
        if self.cluster:
            self.cluster.stop()

    @property
    def shown_nats_url(self) -> str:
        """The NATS URL without its credentials: what may be printed or written down."""
        return redact_nats_url(self.nats_url)

    def write_run_file(self) -> Path:
        """Write `run.json`: NATS URL (credentials masked), namespace, each process's pid and URL."""
        path = self.home / "run.json"
        path.write_text(json.dumps(self.describe(), indent=2))
        return path

    def describe(self) -> dict:
        # Never the password: tools that connect take the URL (with it) from MESH_NATS_URL.
        return {
            "nats_url": self.shown_nats_url,
            "pid": os.getpid(),  # the process that runs this mesh (`mesh up`): `bus.ops.run_file` checks it
            "namespace": self.settings.namespace,
            "embedded_nats_pid": self.nats.process.pid if self.nats and self.nats.process else None,
            "embedded_cluster_pids": [n.process.pid for n in self.cluster.nodes if n.process] if self.cluster else None,
            "otlp_endpoint": self.otlp_endpoint,
            "services": {
                label: {"service": s.name, "pid": s.pid, "url": s.url, "log": str(s.log_path)}
                for label, s in zip(replica_labels([s.name for s in self.services]), self.services, strict=True)
            },
        }


def replica_labels(names: list[str]) -> list[str]:
    """`security`, `security#2`, … : one label per process, the first replica keeping the name."""
    seen: Counter[str] = Counter()
    labels = []
    for name in names:
        seen[name] += 1
        labels.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return labels


def start_mesh(
    settings: MeshSettings,
    *,
    names: list[str],
    home: Path,
    embedded: bool,
    fresh: bool = False,
    base_port: int = 0,
    ready_timeout: float = 30.0,
    env: dict[str, str] | None = None,
    replicas: dict[str, int] | None = None,
    cluster: int = 0,
    secure: bool = True,
    identities: Identities | None = None,
) -> RunningMesh:
    """Start NATS (if embedded), provision, start every named service and wait until ready.

    `base_port=0` picks free ports; otherwise service i listens on base_port + i.
    `replicas` runs more than one process of a service (`{"security": 2}`); replicas share
    the service's durable consumers, each has its own port and log file (`security-2.log`).
    `cluster=3` (with `embedded`) starts a 3-node JetStream cluster instead of one server,
    and makes every stream and bucket R3.

    Embedded servers are `secure` by default: every service gets its own identity (generated
    into `<home>/identities`, bus/ops/identities.py) and the server lets each do only what it
    declared; provisioning runs as the operator, and the returned `settings` connect as it.
    With a server of your own, pass the `identities` it already knows (tests do), or none: the
    services then use whatever MESH_NATS_CREDENTIALS their environment gives them.
    """
    if fresh and home.exists():
        shutil.rmtree(home)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    if embedded and secure and identities is None:
        identities = generate_for_mesh(settings, home / IDENTITIES, names=names)
    auth = ["-c", str(identities.authorization_file)] if embedded and identities else []
    nats: EmbeddedNats | None = None
    nodes: EmbeddedCluster | None = None
    nats_url = settings.nats_url
    if embedded and cluster > 1:
        nodes = EmbeddedCluster(
            store_dir=home / "cluster", size=cluster, log_dir=home / "logs", extra_args=auth
        ).start()
        nats_url = nodes.url
        settings = settings.model_copy(update={"nats_url": nats_url, "stream_replicas": min(cluster, 3)})
    elif embedded:
        port = 4222 if base_port and _port_free(4222) else 0
        nats = EmbeddedNats(
            store_dir=home / "nats", port=port, log_file=home / "logs" / "nats.log", extra_args=auth
        ).start()
        nats_url = nats.url
        settings = settings.model_copy(update={"nats_url": nats_url})
    if identities:
        settings = settings.model_copy(update={"nats_credentials": identities.credential(OPERATOR)})
    services: list[ServiceProcess] = []
    try:
        report = asyncio.run(provision_mesh(settings, names=names))
        shared = child_env(**{**settings.as_env(), "MESH_NATS_URL": nats_url, **(env or {})})
        shared.setdefault("MESH_LOG_FORMAT", "json")
        for name in names:
            own = {"MESH_NATS_CREDENTIALS": str(identities.credential(name))} if identities else {}
            for replica in range((replicas or {}).get(name, 1)):
                port = base_port + len(services) if base_port else free_port()
                log = f"{name}.log" if replica == 0 else f"{name}-{replica + 1}.log"
                process = ServiceProcess(name, port, shared, log_path=home / "logs" / log, extra_env=own)
                services.append(process.start())
        not_ready = wait_ready(services, timeout=ready_timeout)
        if not_ready:
            raise MeshError(
                "services did not become ready: " + ", ".join(f"{s.name} (see {s.log_path})" for s in not_ready)
            )
    except BaseException:
        stop_all(services)
        if nats:
            nats.stop()
        if nodes:
            nodes.stop()
        raise
    return RunningMesh(settings, nats_url, services, nats, home, report, cluster=nodes, identities=identities)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def nats_url_was_given(settings: MeshSettings) -> bool:
    return "nats_url" in settings.model_fields_set or "MESH_NATS_URL" in os.environ
