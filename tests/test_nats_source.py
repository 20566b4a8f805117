"""The suite's choice of nats-server: a container only when it can actually run."""

from __future__ import annotations

import pytest

from tests.nats_source import DEFAULT_IMAGE, choose


class FakeDocker:
    def __init__(self, *, answers: bool = True, images: set[str] = frozenset()) -> None:
        self.answers, self.present = answers, images
        self.images = self

    def ping(self) -> None:
        if not self.answers:
            raise ConnectionError("no engine")

    def get(self, image: str) -> object:
        if image not in self.present:
            raise LookupError(image)  # docker.errors.ImageNotFound in life
        return object()


def engine(**kwargs):
    return lambda: FakeDocker(**kwargs)


def no_docker():
    raise FileNotFoundError("/var/run/docker.sock")


@pytest.mark.parametrize(
    ("environ", "docker", "kind", "says"),
    [
        ({"MESH_TEST_NATS_URL": "nats://x:4222"}, engine(images={DEFAULT_IMAGE}), "url", "MESH_TEST_NATS_URL"),
        ({"MESH_TEST_NATS_IMAGE": "nats:latest"}, no_docker, "container", "forces"),
        ({}, no_docker, "binary", "no Docker engine"),
        ({}, engine(answers=False), "binary", "no Docker engine"),
        ({}, engine(images=set()), "binary", f"has no {DEFAULT_IMAGE} image"),
        ({}, engine(images={DEFAULT_IMAGE}), "container", "has the image"),
    ],
    ids=["url", "forced-image", "no-engine", "engine-down", "engine-without-image", "engine-with-image"],
)
def test_a_container_is_chosen_only_when_it_can_run(environ, docker, kind, says):
    """A Docker engine without the image no longer fails every NATS test at setup: the binary is
    used, with a notice naming why; `MESH_TEST_NATS_IMAGE` still forces a container."""
    source = choose(environ, docker)
    assert source.kind == kind
    assert says in source.notice
