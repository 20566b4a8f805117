"""Fixtures of the deploy tests: a Docker engine (or a clear failure), and the images and secrets
`mesh deploy compose` makes, once per session, on the locally made base image."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bus.ops.deploy import image_tags
from tests.deploy.stack import build_images, ensure_base_image, require_docker, run


@dataclass(frozen=True)
class Deployment:
    out: Path  # compose's MESH_DEPLOY_DIR: seeds, auth.conf, the gateway's keys
    image: str
    nats_image: str
    build_seconds: float

    def size_mb(self, image: str) -> float:
        return json.loads(run(["docker", "image", "inspect", image]).stdout)[0]["Size"] / 1e6


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    require_docker()
    started = time.monotonic()
    ensure_base_image()
    out = tmp_path_factory.mktemp("deploy") / "deploy"
    build_images(out)
    image, nats_image = image_tags()
    return Deployment(out, image, nats_image, time.monotonic() - started)
