"""`mesh up` and `mesh status` against a nats-server that requires a password never print or write it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from bus.ops.embedded import EmbeddedNats
from tests.e2e.support import mesh_up

PASSWORD = "hunter2-Zq8v"


def test_mesh_up_and_status_never_print_or_write_the_nats_password(tmp_path):
    """With MESH_NATS_URL=nats://mesh:<password>@…, every service connects (status: ready), yet the
    password appears in none of `mesh up`'s output, `.mesh/run.json`, `mesh status` (table or
    JSON) or the services' logs."""
    server = EmbeddedNats(store_dir=tmp_path / "nats", extra_args=["--user", "mesh", "--pass", PASSWORD]).start()
    home = tmp_path / ".mesh"
    url = f"nats://mesh:{PASSWORD}@127.0.0.1:{server.port}"
    env = {**os.environ, "MESH_HOME": str(home), "MESH_NATS_URL": url, "MESH_NAMESPACE": "creds", "COLUMNS": "200"}
    up, run_file = mesh_up(tmp_path, env)
    try:
        assert run_file.exists(), up.stdout.read() if up.poll() is not None else "no run file"
        written = run_file.read_text()
        assert json.loads(written)["nats_url"] == f"nats://mesh:***@127.0.0.1:{server.port}"

        shown = [
            subprocess.run(
                [sys.executable, "-m", "bus.ops.cli", "status", *flags],
                capture_output=True,
                text=True,
                env=env,
                timeout=30,
            )
            for flags in ([], ["--json"])
        ]
        for result in shown:
            assert result.returncode == 0, result.stdout + result.stderr  # every service connected and ready
        assert {s["health"] for s in json.loads(shown[1].stdout)["services"].values()} == {"ready"}
    finally:
        up.send_signal(signal.SIGTERM)
        output, _ = up.communicate(timeout=30)
        server.stop()

    assert f"nats://mesh:***@127.0.0.1:{server.port}" in output
    logs = "".join(p.read_text(errors="replace") for p in (home / "logs").glob("*.log"))
    for text in (output, written, shown[0].stdout, shown[1].stdout, logs):
        assert PASSWORD not in text
