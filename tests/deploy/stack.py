"""Driving Docker and Compose from the deploy tests: the engine, the images, a stack of compose.yml.

Compose v1 (`docker-compose`, what Debian ships here) or v2 (`docker compose`), whichever is
installed. Every stack runs on the host's network, on loopback (deploy/compose.hostnet.yml):
test traffic never goes to a bridge address.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "local/debian-python:bookworm"  # no registry here: made with debootstrap when missing
# Every service compose.yml runs (Jaeger apart: its image cannot be pulled here).
SERVICES = ("registry", "security", "compliance", "coordinator", "gateway", "steward", "digest", "watch", "approvals")
MIRROR_FILES = ("/etc/apt/sources.list", *sorted(map(str, Path("/etc/apt/sources.list.d").glob("*"))))


def run(command: list[str], *, timeout: float = 300, check: bool = True, **options) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **options)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def require_docker() -> None:
    """Fail (never skip) when no engine answers: `.ci/run` installs and starts Docker."""
    if shutil.which("docker") is None:
        pytest.fail("no `docker` client: install docker.io and start dockerd (.ci/run does)", pytrace=False)
    done = run(["docker", "info", "--format", "{{.ServerVersion}}"], check=False, timeout=20)
    if done.returncode != 0:
        pytest.fail(
            f"no Docker engine answers ({done.stderr.strip()[:200]}): start dockerd (.ci/run does)", pytrace=False
        )


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if run(["docker", "compose", "version"], check=False, timeout=20).returncode == 0:
        return ["docker", "compose"]
    pytest.fail("no Docker Compose: install docker-compose (v1) or the compose plugin (.ci/run does)", pytrace=False)


def compose_config(files: list[Path], env: dict[str, str]) -> dict:
    """The merged, interpolated configuration, as Compose itself reads the files."""
    compose = compose_command()
    arguments = [part for f in files for part in ("-f", str(f))]
    if compose == ["docker-compose"]:
        text = run([*compose, *arguments, "config"], env=env, cwd=ROOT).stdout
        # Compose v1 prints YAML only: read it with the YAML library Compose itself runs on.
        interpreter = Path(shutil.which("docker-compose")).read_text().splitlines()[0].removeprefix("#!").split()
        convert = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"
        return json.loads(run([*interpreter, "-c", convert], input=text).stdout)
    return json.loads(run([*compose, *arguments, "config", "--format", "json"], env=env, cwd=ROOT).stdout)


def ensure_base_image() -> None:
    """Make local/debian-python:bookworm from Debian's packages (~1 min) unless it exists."""
    if run(["docker", "image", "inspect", BASE_IMAGE], check=False).returncode == 0:
        return
    if shutil.which("debootstrap") is None:
        pytest.fail("no debootstrap to make the base image: apt-get install debootstrap (.ci/run does)", pytrace=False)
    mirror = _apt_mirror()
    rootfs = Path("/tmp") / f"mesh-base-rootfs-{time.time_ns()}"
    try:
        run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm"]
            + [str(rootfs), mirror],
            timeout=600,
        )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(["docker", "import", "-", BASE_IMAGE], stdin=tar.stdout, timeout=300)
        tar.wait()
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def _apt_mirror() -> str:
    for name in MIRROR_FILES:
        try:
            text = Path(name).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and "security" not in line:
                return next(w for w in words[1:] if "://" in w)
    return "http://deb.debian.org/debian"


def build_images(deploy_dir: Path) -> str:
    """`mesh deploy compose` from the checkout, on the local base; its output."""
    mesh = Path(sys.executable).with_name("mesh")
    command = [str(mesh), "deploy", "compose", "--out", str(deploy_dir), "--base-image", BASE_IMAGE]
    return run(command, cwd=ROOT, timeout=900).stdout


@dataclass
class Stack:
    """One compose project: `up`, look at its containers, `down` (containers, network, volume)."""

    project: str
    file: Path  # the resolved configuration (JSON)
    env: dict[str, str]
    compose: list[str] = field(default_factory=compose_command)

    def __call__(self, *arguments: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        command = [*self.compose, "--project-name", self.project, "-f", str(self.file), *arguments]
        return run(command, env=self.env, cwd=self.file.parent, timeout=timeout, check=check)

    def containers(self, service: str, *, every: bool = False) -> list[dict]:
        """`docker inspect` of the service's containers (running ones, or `every` one)."""
        names = run(
            ["docker", "ps", "--quiet", *(["--all"] if every else [])]
            + ["--filter", f"label=com.docker.compose.project={self.project}"]
            + ["--filter", f"label=com.docker.compose.service={service}"]
        ).stdout.split()
        return json.loads(run(["docker", "inspect", *names]).stdout) if names else []

    def health(self, service: str) -> list[str]:
        return [c["State"].get("Health", {}).get("Status", c["State"]["Status"]) for c in self.containers(service)]

    def wait_healthy(
        self, services: tuple[str, ...], *, replicas: dict[str, int] | None = None, timeout: float
    ) -> None:
        """Until every running container of each service is healthy: `replicas[s]` of them, else
        at least one."""
        deadline = time.monotonic() + timeout
        while True:
            states = {s: self.health(s) for s in services}
            want = {s: (replicas or {}).get(s, max(1, len(states[s]))) for s in services}
            if all(states[s].count("healthy") == want[s] == len(states[s]) for s in services):
                return
            if time.monotonic() > deadline:
                checks = {
                    c["Name"]: c["State"].get("Health", {}).get("Log", [{}])[-1:]
                    for s in services
                    for c in self.containers(s)
                    if c["State"].get("Health", {}).get("Status") != "healthy"
                }
                raise AssertionError(f"not all healthy after {timeout:.0f} s: {states}\nlast checks: {checks}")
            time.sleep(0.5)

    def logs(self, *services: str, tail: int = 200) -> str:
        return self("logs", "--no-color", f"--tail={tail}", *services, check=False).stdout

    def down(self) -> None:
        self("down", "--volumes", "--remove-orphans", "--timeout", "30", check=False)


def container_logs(container: dict) -> list[str]:
    done = run(["docker", "logs", container["Id"]], check=False)
    return (done.stdout + done.stderr).splitlines()
