"""`mesh up` keeps the services' spans itself: after a proposal, `mesh trace` draws its flow."""

from __future__ import annotations

import json
import os
import signal
import time
from importlib.resources import files

from tests.bus.ops.test_cli import mesh
from tests.e2e.support import mesh_up

SAMPLES = files("contracts") / "samples"


def test_mesh_up_stores_the_services_spans_for_mesh_trace(tmp_path):
    """Started with no OTLP endpoint of the user's, `mesh up` runs its trace store and points the
    services at it, and `mesh publish` from another shell (it finds the store in run.json): the
    proposal's flow is ONE trace rooted at the CLI's span — every service's `process` span, the
    outcome sent — with the id `mesh publish` printed, and stopping says how many spans were stored."""
    home = tmp_path / ".mesh"
    env = {**os.environ, "MESH_HOME": str(home), "COLUMNS": "200", "OTEL_BSP_SCHEDULE_DELAY": "200"}
    for name in (
        "MESH_NATS_URL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "MESH_JAEGER_URL",
    ):
        env.pop(name, None)
    up, run_file = mesh_up(tmp_path, env)
    try:
        assert run_file.exists(), up.stdout.read() if up.poll() is not None else "no run file"
        cli_env = {"MESH_HOME": str(home), "MESH_NATS_URL": json.loads(run_file.read_text())["nats_url"]}
        clean = str(SAMPLES / "release_clean.json")
        published = mesh("publish", "release.proposed", clean, "--wait", "30", **cli_env)
        assert published.returncode == 0, published.stdout + published.stderr

        deadline = time.monotonic() + 20
        while True:  # the services export in batches: wait until the outcome's span is in
            shown = mesh("trace", "rel-42", "--json", **cli_env)
            names = [
                (s["service"], s["name"])
                for t in json.loads(shown.stdout or "{}").get("traces", [])
                for s in t["spans"]
            ]
            if ("coordinator", "send mesh.outcomes.release.*.*") in names or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert shown.returncode == 0, shown.stderr
        for service in ("security", "compliance", "coordinator"):
            assert (service, "process mesh.events.release.proposed") in names
        assert ("coordinator", "send mesh.outcomes.release.*.*") in names
        traces = json.loads(shown.stdout)["traces"]
        assert len(traces) == 1, [t["spans"][0]["name"] for t in traces]
        assert ("mesh-cli", "mesh publish release.proposed") in names
        printed = [line.split()[1] for line in published.stdout.splitlines() if line.startswith("trace ")]
        printed += [line.split()[1] for line in published.stderr.splitlines() if line.startswith("trace ")]
        assert printed and printed[0] in shown.stdout

        tree = mesh("trace", "rel-42", **cli_env)
        assert tree.returncode == 0 and "outcome=approved" in tree.stdout, tree.stdout + tree.stderr
    finally:
        up.send_signal(signal.SIGTERM)
        output, _ = up.communicate(timeout=30)

    assert up.returncode == 0, output
    assert "kept 24 h in stream MESH_TRACES" in output
    assert "spans stored from" in output
