"""Provisioning never quietly loses durability or data: downgrades are refused unless allowed."""

from __future__ import annotations

from collections.abc import Iterator

import nats
import pytest
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from bus.ops.cluster import EmbeddedCluster
from bus.ops.settings import MeshSettings
from bus.provision import DAY, Change, desired_streams
from tests.bus.ops.test_cli import mesh


@pytest.mark.parametrize(
    ("change", "loses"),
    [
        (Change("num_replicas", 3, 1), True),
        (Change("num_replicas", 1, 3), False),
        (Change("max_age", 30 * DAY, 7 * DAY), True),
        (Change("max_age", 0.0, 7 * DAY), True),  # 0: unlimited
        (Change("max_age", 7 * DAY, 0.0), False),
        (Change("max_bytes", -1, 2**20), True),  # -1: unlimited
        (Change("max_bytes", 2**20, 2**30), False),
        (Change("storage", "file", StorageType.MEMORY), True),
        (Change("storage", "memory", StorageType.FILE), False),
        (Change("retention", "limits", RetentionPolicy.INTEREST), True),
        (Change("duplicate_window", 120.0, 60.0), False),
        (Change("description", "old", "new"), False),
    ],
)
def test_a_change_is_a_downgrade_when_it_loses_durability_or_data(change, loses):
    """Fewer replicas, a tighter limit, memory storage or another retention lose something; the rest do not."""
    assert bool(change.loss) is loses


async def stream_configs(url: str, names: list[str]) -> dict[str, StreamConfig]:
    nc = await nats.connect(url.split(","))
    try:
        js = nc.jetstream()
        return {name: (await js.stream_info(name)).config for name in names}
    finally:
        await nc.close()


async def test_a_shorter_max_age_is_refused_and_the_rest_of_the_stream_corrected(settings):
    """A stream kept longer than desired, with a changed description: `mesh provision` corrects
    the description, keeps the longer max_age, says why and exits 1; `--allow-downgrade` applies it."""
    events = desired_streams(settings)[0]
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().add_stream(
            StreamConfig(
                name=events.name,
                subjects=events.subjects,
                max_age=30 * DAY,
                duplicate_window=events.duplicate_window,
                description="hand-made",
            )
        )
    finally:
        await nc.close()

    refused = mesh("provision", settings=settings, COLUMNS="200")

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"refused   stream {events.name}: max_age {30 * DAY!r} -> {7 * DAY!r}" in refused.stdout
    assert "--allow-downgrade" in refused.stdout
    assert f"corrected stream {events.name}: description" in refused.stdout
    config = (await stream_configs(settings.nats_url, [events.name]))[events.name]
    assert config.max_age == 30 * DAY and config.description == events.description

    allowed = mesh("provision", "--allow-downgrade", settings=settings)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert (await stream_configs(settings.nats_url, [events.name]))[events.name].max_age == 7 * DAY


@pytest.fixture
def cluster(tmp_path) -> Iterator[EmbeddedCluster]:
    """A real 3-node JetStream cluster of our own, stopped after the test."""
    nodes = EmbeddedCluster(store_dir=tmp_path / "cluster", size=3, log_dir=tmp_path).start()
    try:
        yield nodes
    finally:
        nodes.stop()


async def test_provision_without_replicas_refuses_to_make_an_r3_cluster_r1(cluster, tmp_path):
    """Against a 3-node cluster provisioned R3, `mesh provision` with the default settings
    (MESH_STREAM_REPLICAS unset) refuses every R3 -> R1 change, changes nothing and exits 1;
    `--check` reports the same as drift; `--allow-downgrade` applies it."""
    env = {
        "MESH_NATS_URL": cluster.url,
        "MESH_NAMESPACE": "prov",
        "MESH_HOME": str(tmp_path / "home"),
        "COLUMNS": "200",
    }
    assert mesh("provision", MESH_STREAM_REPLICAS="3", **env).returncode == 0
    names = [s.name for s in desired_streams(MeshSettings(namespace="prov"))]
    assert {c.num_replicas for c in (await stream_configs(cluster.url, names)).values()} == {3}

    refused = mesh("provision", **env)

    assert refused.returncode == 1, refused.stdout + refused.stderr
    for name in names:
        assert f"refused   stream {name}: num_replicas 3 -> 1 (a downgrade" in refused.stdout
    assert f"0 corrected, 0 drifted, {len(names)} refused" in refused.stdout
    assert "mesh provision --allow-downgrade" in refused.stdout
    assert {c.num_replicas for c in (await stream_configs(cluster.url, names)).values()} == {3}

    check = mesh("provision", "--check", **env)
    assert check.returncode == 1 and check.stdout.count("num_replicas 3 -> 1 (a downgrade") == len(names)

    allowed = mesh("provision", "--allow-downgrade", **env)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert {c.num_replicas for c in (await stream_configs(cluster.url, names)).values()} == {1}
