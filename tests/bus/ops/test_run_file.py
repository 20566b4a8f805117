"""bus/ops/run_file.py: commands find the mesh running in their MESH_HOME, and one home holds one
running mesh."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bus.errors import MeshError
from bus.ops.run_file import MeshHomeInUse, lock_home, use_live_mesh
from bus.ops.settings import MeshSettings


def write_run_file(home: Path, *, pid: int | None, nats_url: str = "nats://127.0.0.1:50999", **extra) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "run.json"
    path.write_text(json.dumps({"nats_url": nats_url, "namespace": "blue", "pid": pid, "services": {}, **extra}))
    return path


def dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # reaped: the pid names no process
    return finished.pid


def test_a_live_run_file_gives_its_url_and_namespace_and_says_so(tmp_path):
    """Without MESH_NATS_URL, the NATS URL and namespace come from a live run.json, and one line
    names the mesh used."""
    path = write_run_file(tmp_path, pid=os.getpid())
    said: list[str] = []

    settings = use_live_mesh(MeshSettings(home=tmp_path), say=said.append)

    assert (settings.nats_url, settings.namespace) == ("nats://127.0.0.1:50999", "blue")
    assert said == [f"mesh: using the mesh of {path} (nats://127.0.0.1:50999, pid {os.getpid()})"]


def test_mesh_nats_url_wins_over_the_run_file(tmp_path):
    """MESH_NATS_URL set: the run file is not even read, and nothing is said."""
    write_run_file(tmp_path, pid=os.getpid())
    said: list[str] = []
    given = MeshSettings(home=tmp_path, nats_url="nats://elsewhere:4222")

    settings = use_live_mesh(given, say=said.append)

    assert settings.nats_url == "nats://elsewhere:4222" and settings.namespace == "mesh"
    assert said == []


def test_mesh_namespace_wins_over_the_run_files(tmp_path):
    """MESH_NAMESPACE set: the run file's URL is used, its namespace is not."""
    write_run_file(tmp_path, pid=os.getpid())
    settings = use_live_mesh(MeshSettings(home=tmp_path, namespace="green"), say=lambda _: None)
    assert (settings.nats_url, settings.namespace) == ("nats://127.0.0.1:50999", "green")


def test_a_run_file_whose_mesh_is_gone_is_ignored_with_a_note(tmp_path):
    """A run.json left by a killed `mesh up` (its pid gone) changes nothing, and says why."""
    pid = dead_pid()
    path = write_run_file(tmp_path, pid=pid)
    said: list[str] = []

    settings = use_live_mesh(MeshSettings(home=tmp_path), say=said.append)

    assert settings.nats_url == "nats://127.0.0.1:4222"
    assert said == [f"mesh: ignoring {path}: the mesh that wrote it is gone (pid {pid}); using nats://127.0.0.1:4222"]


def test_an_older_run_file_is_live_while_a_process_it_started_is(tmp_path):
    """Run files written before they named `mesh up`'s pid are judged by the processes they list."""
    write_run_file(tmp_path, pid=None, embedded_nats_pid=dead_pid(), services={"security": {"pid": os.getpid()}})
    settings = use_live_mesh(MeshSettings(home=tmp_path), say=lambda _: None)
    assert settings.nats_url == "nats://127.0.0.1:50999"


def test_a_masked_password_asks_for_mesh_nats_url(tmp_path):
    """run.json never keeps a password, so a mesh on a password-protected URL needs MESH_NATS_URL."""
    write_run_file(tmp_path, pid=os.getpid(), nats_url="nats://ops:***@nats.internal:4222")
    with pytest.raises(MeshError, match="set MESH_NATS_URL to that URL, with its password"):
        use_live_mesh(MeshSettings(home=tmp_path), say=lambda _: None)


def test_a_second_lock_on_a_home_is_refused_naming_the_holder(tmp_path):
    """While one holder has the home, another is refused with its pid and start time, and the
    holder's record is left as it was; once released, the home can be taken again."""
    home = tmp_path / ".mesh"
    first = lock_home(home, clock=lambda: 0.0)
    record = first.path.read_text()

    with pytest.raises(MeshHomeInUse) as refused:
        lock_home(home)

    assert f"another mesh is running in {home} (pid {os.getpid()}, started " in str(refused.value)
    assert f"MESH_HOME={home}-2" in str(refused.value)
    assert first.path.read_text() == record
    first.release()
    with lock_home(home):
        pass


HOLD = """
from pathlib import Path
from bus.ops.run_file import lock_home
lock = lock_home(Path({home!r}))
print("held", flush=True)
input()
"""


def test_the_lock_goes_with_a_sigkilled_holder(tmp_path):
    """A holder killed with SIGKILL leaves the home free: the kernel drops the lock."""
    home = tmp_path / ".mesh"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(home=str(home))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(MeshHomeInUse, match=f"pid {holder.pid}"):
            lock_home(home)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with lock_home(home):
        pass
