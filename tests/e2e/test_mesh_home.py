"""One folder, one mesh, as a user meets it: commands run where `mesh up` runs talk to that mesh
(not to whatever holds port 4222), an unreachable or refusing server is one line and exit 5 within
seconds, a second `mesh up` in the same MESH_HOME is refused without touching the first, and
`mesh run X` leaves `mesh up`'s registry port alone.

Each test runs `mesh up` and the CLI as real subprocesses, the way a user types them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import httpx
import pytest

from bus.ops.embedded import free_port
from tests.e2e.support import mesh_up

CLEAN = str(files("contracts") / "samples" / "release_clean.json")
NOT_OURS = ("MESH_NATS_URL", "MESH_NAMESPACE", "MESH_NATS_CREDENTIALS", "MESH_NATS_IDENTITY", "MESH_HTTP_PORT")


def cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bus.ops.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, as Ctrl-C would; SIGKILL if that is not enough, so nothing outlives the test."""
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


@dataclass
class LiveMesh:
    env: dict[str, str]  # a terminal in the mesh's folder: MESH_HOME, and no MESH_NATS_URL
    home: Path
    info: dict  # its run.json
    process: subprocess.Popen


@contextlib.contextmanager
def holding_port(port: int) -> Iterator[None]:
    """Something else listens on `port` (unless something already does)."""
    with socket.socket() as sock:
        with contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            sock.listen()
        yield


@pytest.fixture
def live_mesh(tmp_path) -> Iterator[LiveMesh]:
    """`mesh up` in tmp_path, with port 4222 taken by something else while it runs."""
    home = tmp_path / ".mesh"
    env = {k: v for k, v in os.environ.items() if k not in NOT_OURS} | {"MESH_HOME": str(home), "COLUMNS": "200"}
    with holding_port(4222):
        up, run_file = mesh_up(tmp_path, env)
        try:
            assert run_file.exists(), up.stdout.read() if up.poll() is not None else "no run file"
            yield LiveMesh(env, home, json.loads(run_file.read_text()), up)
        finally:
            stop(up)


def test_publish_in_the_folder_of_mesh_up_reaches_its_mesh_and_names_it(live_mesh):
    """With 4222 taken by something else, `mesh up` runs NATS elsewhere; `mesh publish --wait`
    in its folder, without MESH_NATS_URL, reaches that mesh (the outcome arrives), names it on
    stderr, and keeps --json stdout clean."""
    nats_url = live_mesh.info["nats_url"]
    assert not nats_url.endswith(":4222")

    published = cli("publish", "release.proposed", CLEAN, "--wait", "30", "--json", env=live_mesh.env)

    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["outcome"] == "approved"
    assert f"mesh: using the mesh of {live_mesh.home / 'run.json'} ({nats_url}, pid {live_mesh.process.pid})" in (
        published.stderr
    )


def test_an_unreachable_server_is_one_line_and_exit_5_within_seconds(tmp_path):
    """Nothing listening at MESH_NATS_URL: one `error:` line naming the URL and why, exit 5,
    within seconds (not the 30 s harness timeout of a client that keeps retrying), no traceback."""
    url = f"nats://127.0.0.1:{free_port()}"
    env = {**os.environ, "MESH_HOME": str(tmp_path / ".mesh"), "MESH_NATS_URL": url, "COLUMNS": "200"}
    started = time.monotonic()

    result = cli("agents", env=env, timeout=30)

    took = time.monotonic() - started
    assert took < 20, f"gave up after {took:.1f} s"  # a CLI's start-up alone takes seconds under load
    assert result.returncode == 5
    assert result.stderr.splitlines() == [
        f"error: cannot reach NATS at {url} (connection refused); is the mesh up? start it with `mesh up`, "
        "or set MESH_NATS_URL"
    ]


def test_a_refused_credential_is_one_line_naming_it(live_mesh, tmp_path):
    """The mesh's server, reached from another folder: without a credential, and with a seed it
    does not know, each is one line naming what to set, exit 5."""
    elsewhere = {**live_mesh.env, "MESH_HOME": str(tmp_path / "elsewhere"), "MESH_NATS_URL": live_mesh.info["nats_url"]}
    anonymous = cli("agents", env=elsewhere, timeout=30)
    assert anonymous.returncode == 5
    assert anonymous.stderr.splitlines() == [
        f"error: NATS at {live_mesh.info['nats_url']} requires a credential and none was given (authorization "
        "violation); set MESH_NATS_CREDENTIALS, or run the command in the folder of the `mesh up` that started it"
    ]

    strangers = tmp_path / "strangers"
    assert cli("identities", "generate", "--out", str(strangers), env=elsewhere).returncode == 0
    seed = strangers / "operator.nk"
    stranger = cli("agents", env={**elsewhere, "MESH_NATS_CREDENTIALS": str(seed)}, timeout=30)
    assert stranger.returncode == 5
    assert stranger.stderr.splitlines() == [
        f"error: NATS at {live_mesh.info['nats_url']} refused the credential {seed} (authorization violation); "
        "check MESH_NATS_CREDENTIALS, or that the server includes its auth.conf"
    ]


def test_a_second_mesh_up_in_the_same_home_is_refused_and_changes_nothing(live_mesh):
    """A second `mesh up` in the folder exits 1 at once naming the first's pid; the first's
    run.json is intact after it exits, no second nats-server wrote to the first's log, and the
    first still answers."""
    run_file = live_mesh.home / "run.json"
    before = run_file.read_text()
    nats_log = live_mesh.home / "logs" / "nats.log"
    servers_started = nats_log.read_text().count("Starting nats-server")
    started = time.monotonic()

    second = cli("up", "--base-port", "0", env=live_mesh.env, timeout=30)

    took = time.monotonic() - started
    assert took < 20, f"refused after {took:.1f} s"  # at once, not after starting servers; a margin for load
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"error: another mesh is running in {live_mesh.home} (pid {live_mesh.process.pid}, started " in second.stderr
    assert run_file.read_text() == before
    assert nats_log.read_text().count("Starting nats-server") == servers_started
    status = cli("status", "--json", env=live_mesh.env, timeout=30)
    assert status.returncode == 0, status.stderr


@pytest.mark.timeout(120)  # it reads the service's stderr line by line
def test_mesh_run_without_a_port_leaves_8080_to_mesh_up_and_joins_its_mesh(live_mesh):
    """`mesh run security` in the folder of `mesh up`, with neither --port nor MESH_HTTP_PORT,
    serves on a free port it prints (not the registry's 8080) and joins that mesh: `mesh agents`
    there lists a second security instance."""
    service = subprocess.Popen(
        [sys.executable, "-m", "bus.ops.cli", "run", "security"],
        stderr=subprocess.PIPE,
        text=True,
        env=live_mesh.env,
    )
    try:
        lines = [service.stderr.readline() for _ in range(2)]
        printed = next((m for line in lines if (m := re.search(r"HTTP on (http://127\.0\.0\.1:(\d+))", line))), None)
        assert printed, lines
        url, port = printed.group(1), int(printed.group(2))
        assert port != 8080
        assert f"mesh: using the mesh of {live_mesh.home / 'run.json'}" in lines[0]

        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        deadline = time.monotonic() + 20
        instances = 0
        while instances < 2 and time.monotonic() < deadline:
            listed = cli("agents", "--skill", "review.security", "--json", env=live_mesh.env, timeout=30)
            instances = json.loads(listed.stdout)[0]["instances"] if listed.returncode == 0 else 0
            time.sleep(0.3)
        assert instances == 2
    finally:
        stop(service)
