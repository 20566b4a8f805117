"""The suite's NATS fixture in a container (tests/conftest.py's container path), run for real
with the NATS image compose.yml runs, so that path is proven rather than written."""

from __future__ import annotations

import os
import sys

import pytest

from tests.deploy.conftest import Deployment
from tests.deploy.stack import ROOT, run

pytestmark = pytest.mark.timeout(900)  # the first test here may build the base image and both images

# Small files that need JetStream: streams, consumers, advisories.
NATS_BACKED = ("tests/bus/test_stream_reads.py", "tests/bus/test_exhausted.py")


def test_nats_backed_tests_pass_against_the_nats_image_in_a_container(deployment: Deployment) -> None:
    """With MESH_TEST_NATS_IMAGE naming agent-mesh/nats, the session header says it runs in a
    container, the tests pass, and no container is left behind. (Ryuk, testcontainers' reaper,
    is off: its image cannot be pulled here.)"""
    image = deployment.nats_image
    before = set(run(["docker", "ps", "-aq", "--filter", f"ancestor={image}"]).stdout.split())
    env = {k: v for k, v in os.environ.items() if k != "MESH_TEST_NATS_URL"}
    env.update(MESH_TEST_NATS_IMAGE=image, TESTCONTAINERS_RYUK_DISABLED="true")
    done = run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rN", *NATS_BACKED],
        cwd=ROOT,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"nats-server: container {image} (MESH_TEST_NATS_IMAGE forces a container)" in done.stdout
    assert " passed" in done.stdout and "skipped" not in done.stdout
    after = set(run(["docker", "ps", "-aq", "--filter", f"ancestor={image}"]).stdout.split())
    assert after <= before, f"left behind: {after - before}"
