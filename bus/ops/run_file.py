"""The mesh that runs in a MESH_HOME, as the other commands in that folder find it.

`mesh up` holds `<home>/up.lock` for as long as it runs: one home, one running mesh. The lock is
an exclusive `flock`, so the kernel drops it however the process ends (SIGKILL included); the
file keeps the holder's pid and start time for the message a second `mesh up` prints. Once its
mesh is ready, `mesh up` writes `<home>/run.json` (bus/ops/launcher.py, `RunningMesh.describe`).

The other commands run in that folder (`mesh publish`, `agents`, `dlq`, `provision`, …) talk to
that mesh unless MESH_NATS_URL names another (`use_live_mesh`), and say so on stderr.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bus.errors import MeshError
from bus.ops.settings import MeshSettings

RUN_FILE = "run.json"
LOCK_FILE = "up.lock"


class MeshHomeInUse(MeshError):
    """Another `mesh up` holds this MESH_HOME."""


@dataclass(frozen=True)
class RunInfo:
    """What `run.json` says about a mesh: where its NATS is and which processes are it."""

    path: Path
    nats_url: str
    namespace: str | None = None
    pid: int | None = None  # the `mesh up` that wrote it (None in run files older than that field)
    pids: list[int] = field(default_factory=list)  # its embedded servers, then its services

    @property
    def alive(self) -> bool:
        """The `mesh up` that wrote the file still runs (or, in older files, any process it started)."""
        if self.pid is not None:
            return _alive(self.pid)
        return any(_alive(pid) for pid in self.pids)

    @property
    def shown_pid(self) -> int | None:
        return self.pid if self.pid is not None else next(iter(self.pids), None)


def read_run_file(home: Path) -> RunInfo | None:
    """`<home>/run.json`, or None when there is none (or it is not one `mesh up` wrote)."""
    path = home / RUN_FILE
    try:
        data = json.loads(path.read_text())
        nats_url = data["nats_url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    services = data.get("services") or {}
    started = [data.get("embedded_nats_pid"), *(data.get("embedded_cluster_pids") or [])]
    started += [service.get("pid") for service in services.values() if isinstance(service, dict)]
    return RunInfo(
        path=path,
        nats_url=nats_url,
        namespace=data.get("namespace"),
        pid=data.get("pid"),
        pids=[pid for pid in started if isinstance(pid, int)],
    )


def use_live_mesh(settings: MeshSettings, *, say: Callable[[str], None]) -> MeshSettings:
    """These settings pointed at the mesh running in MESH_HOME: its NATS URL, and its namespace
    unless MESH_NATS_URL or MESH_NAMESPACE is set. `say` gets one line naming the mesh used, or
    why a run file was ignored. Settings without a live run file come back unchanged."""
    if "nats_url" in settings.model_fields_set:
        return settings
    run = read_run_file(settings.home)
    if run is None:
        return settings
    if not run.alive:
        say(
            f"mesh: ignoring {run.path}: the mesh that wrote it is gone (pid {run.shown_pid}); using {settings.nats_url}"
        )
        return settings
    if "***@" in run.nats_url:
        raise MeshError(
            f"the mesh of {run.path} connects to {run.nats_url}, and run files never keep a password; "
            "set MESH_NATS_URL to that URL, with its password"
        )
    update: dict[str, str] = {"nats_url": run.nats_url}
    if run.namespace and "namespace" not in settings.model_fields_set:
        update["namespace"] = run.namespace
    say(f"mesh: using the mesh of {run.path} ({run.nats_url}, pid {run.shown_pid})")
    return settings.model_copy(update=update)


@dataclass
class HomeLock:
    """Held while the `mesh up` that took it runs; `release()` (or the process ending) frees it."""

    path: Path
    file: IO[str]

    def release(self) -> None:
        self.file.close()

    def __enter__(self) -> HomeLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_home(home: Path, *, clock: Callable[[], float] = time.time) -> HomeLock:
    """Take `<home>/up.lock`, or raise `MeshHomeInUse` naming the pid that holds it.

    Nothing else in the home is touched either way; the lock file is never deleted (another
    process may be about to lock that very file)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOCK_FILE
    file = path.open("a+")  # not "w": the holder's pid is in there until we hold the lock
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.seek(0)
        holder = file.read()
        file.close()
        raise MeshHomeInUse(_in_use(home, holder)) from None
    file.seek(0)
    file.truncate()
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(clock()))
    file.write(json.dumps({"pid": os.getpid(), "started": started}) + "\n")
    file.flush()
    return HomeLock(path, file)


def _in_use(home: Path, holder: str) -> str:
    try:
        held = json.loads(holder)
        pid, started = held["pid"], held["started"]
    except (ValueError, KeyError, TypeError):  # its holder has not written it yet
        return f"another mesh is running in {home}; stop it, or use another folder: MESH_HOME={home}-2 mesh up"
    return (
        f"another mesh is running in {home} (pid {pid}, started {started}); stop it (Ctrl-C in its terminal, "
        f"or kill {pid}), or use another folder: MESH_HOME={home}-2 mesh up"
    )


def _alive(pid: int) -> bool:
    if pid <= 0:  # kill(0 or -1) would signal process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
