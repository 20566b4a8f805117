"""`mesh up` looks after what it started: a killed nats-server comes back, and a hang-up stops
everything in order (services drained first, NATS last) without a traceback or a stale run file."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from importlib.resources import files
from pathlib import Path

from tests.bus.ops.test_cli import mesh
from tests.e2e.support import mesh_up
from tests.e2e.test_cli_e2e import pid_alive

SAMPLES = files("contracts") / "samples"


def up_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "MESH_HOME": str(tmp_path / ".mesh"), "COLUMNS": "200"}
    env.pop("MESH_NATS_URL", None)
    return env


def wait_for(check, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(interval)
    return check()


def pids_of(run_file: Path) -> tuple[list[int], int]:
    info = json.loads(run_file.read_text())
    return [s["pid"] for s in info["services"].values()], info["embedded_nats_pid"]


def test_a_killed_nats_server_is_reaped_restarted_and_the_mesh_decides_again(tmp_path):
    """SIGKILL the embedded nats-server of a running `mesh up`: it is reaped (no zombie) and
    started again on the same port with the same store and identities; run.json names the new
    pid; every service is ready again; a proposal published afterwards gets its outcome; the
    status table shows the NATS row with its restart."""
    env = up_env(tmp_path)
    up, run_file = mesh_up(tmp_path, env)
    try:
        assert run_file.exists(), up.stdout.read() if up.poll() is not None else "no run file"
        url = json.loads(run_file.read_text())["nats_url"]
        _, nats_pid = pids_of(run_file)
        os.kill(nats_pid, signal.SIGKILL)

        assert wait_for(lambda: pids_of(run_file)[1] != nats_pid, timeout=20), "nats-server was not restarted"
        assert not Path(f"/proc/{nats_pid}").exists(), "the killed nats-server was left a zombie"
        assert json.loads(run_file.read_text())["nats_url"] == url  # same port

        def all_ready() -> bool:
            return mesh("status", "--json", MESH_HOME=env["MESH_HOME"]).returncode == 0

        assert wait_for(all_ready, timeout=30, interval=0.5), "services did not become ready again"
        published = mesh(
            "publish",
            "release.proposed",
            str(SAMPLES / "release_clean.json"),
            "--wait",
            "30",
            "--json",
            MESH_HOME=env["MESH_HOME"],
        )
        assert published.returncode == 0, published.stdout + published.stderr
        assert json.loads(published.stdout)["outcome"] == "approved"
    finally:
        up.send_signal(signal.SIGTERM)
        output, _ = up.communicate(timeout=60)

    assert up.returncode == 0, output
    assert "restarted nats (now pid" in output and "exited with code -9" in output
    nats_row = next(line for line in output.splitlines() if line.split()[:1] == ["nats"])
    assert url in nats_row and "ready" in nats_row and nats_row.split()[-1] == "1"


def test_sighup_drains_the_services_before_nats_and_leaves_no_run_file(tmp_path):
    """SIGHUP (the terminal closed) stops `mesh up` as SIGTERM does: every service has exited
    before the nats-server does; exit 0, no traceback, run.json removed, nothing left running."""
    env = up_env(tmp_path)
    up, run_file = mesh_up(tmp_path, env)
    try:
        assert run_file.exists(), up.stdout.read() if up.poll() is not None else "no run file"
        services, nats_pid = pids_of(run_file)
        up.send_signal(signal.SIGHUP)
        ended: dict[int, float] = {}
        deadline = time.monotonic() + 60
        while len(ended) < len(services) + 1 and time.monotonic() < deadline:
            for pid in [*services, nats_pid]:
                if pid not in ended and not pid_alive(pid):
                    ended[pid] = time.monotonic()
            time.sleep(0.01)
        output, _ = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()

    assert up.returncode == 0, output
    assert "Traceback" not in output and "stopped." in output
    assert not run_file.exists()
    assert set(ended) == {*services, nats_pid}, "something was left running"
    assert max(ended[pid] for pid in services) <= ended[nats_pid], "NATS stopped before a service had drained"
    for log in (tmp_path / ".mesh" / "logs").glob("*.log"):
        assert "Traceback" not in log.read_text(), log.name


def test_a_closed_terminal_stops_the_mesh_cleanly(tmp_path):
    """`mesh up` in a terminal that is closed: its terminal hangs up (writes fail with EIO) and it
    gets SIGHUP; it still drains and stops everything, removes run.json and exits 0."""
    env = up_env(tmp_path)
    run_file = tmp_path / ".mesh" / "run.json"
    terminal, its_end = pty.openpty()
    up = subprocess.Popen(
        [sys.executable, "-m", "bus.ops.cli", "up", "--base-port", "0"],
        stdin=its_end,
        stdout=its_end,
        stderr=its_end,
        env=env,
        cwd=tmp_path,
    )
    os.close(its_end)
    shown = bytearray()

    def read_terminal() -> None:  # as a terminal does: keep reading, or the live table blocks
        while True:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        assert wait_for(run_file.exists, timeout=60), bytes(shown).decode(errors="replace")
        services, nats_pid = pids_of(run_file)
        time.sleep(1.0)  # the live table is being redrawn
        os.close(terminal)  # the terminal window closes: its end of the pty hangs up
        up.send_signal(signal.SIGHUP)
        code = up.wait(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()

    assert code == 0, bytes(shown).decode(errors="replace")[-3000:]
    assert not run_file.exists()
    # `mesh up` waits for every process it started before it exits: its exit is the signal
    assert [pid for pid in [*services, nats_pid] if pid_alive(pid)] == []
