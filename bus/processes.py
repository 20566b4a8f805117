"""Services as OS processes: start them, watch their health, stop them leaving nothing behind.

Children run in their own process group (a terminal's Ctrl-C reaches only us, so we can drain
in order: services first, NATS last) and, on Linux, receive SIGTERM if we die, so not even a
SIGKILLed `mesh up` leaves orphans.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: stop() still cleans up on every normal exit


def spawn(args: list[str], *, env: dict[str, str], log_path: Path | None) -> subprocess.Popen:
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        args,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
    )


@dataclass
class ServiceProcess:
    """One running service: `mesh run <name>` in a child process."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path | None = None
    host: str = "127.0.0.1"
    process: subprocess.Popen | None = None
    restarts: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> ServiceProcess:
        env = {**self.env, **self.extra_env, "MESH_HTTP_PORT": str(self.port), "MESH_HTTP_HOST": self.host}
        self.process = spawn([sys.executable, "-m", "bus.cli", "run", self.name], env=env, log_path=self.log_path)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def health(self, timeout: float = 1.0) -> str:
        """`ready`, `starting` (alive but not ready yet), or `down`."""
        if not self.alive():
            return "down"
        try:
            response = httpx.get(f"{self.url}/readyz", timeout=timeout)
        except httpx.HTTPError:
            return "starting"
        return "ready" if response.status_code == 200 else "starting"

    def terminate(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait()

    def wait(self, timeout: float) -> bool:
        if self.process is None:
            return True
        try:
            self.process.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False


def wait_ready(services: list[ServiceProcess], *, timeout: float) -> list[ServiceProcess]:
    """Wait until every service answers /readyz; returns the ones that did not."""
    deadline = time.monotonic() + timeout
    pending = list(services)
    while pending and time.monotonic() < deadline:
        pending = [s for s in pending if s.health() != "ready"]
        if any(not s.alive() for s in pending):
            break
        if pending:
            time.sleep(0.1)
    return pending


def stop_all(services: list[ServiceProcess], *, timeout: float = 10.0) -> None:
    """SIGTERM everyone at once (they drain in parallel), then SIGKILL whoever hangs."""
    for service in services:
        service.terminate()
    deadline = time.monotonic() + timeout
    for service in services:
        if not service.wait(max(deadline - time.monotonic(), 0.1)):
            service.kill()


def child_env(**overrides: str) -> dict[str, str]:
    """Our environment plus `overrides` (the settings every child must agree on)."""
    env = dict(os.environ)
    env.update(overrides)
    return env
