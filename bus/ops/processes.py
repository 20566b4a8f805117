"""Services as OS processes: start them, watch their health, stop them leaving nothing behind.

Children run in their own process group (a terminal's Ctrl-C reaches only us, so we can drain
in order: services first, NATS last) and, on Linux, receive SIGTERM if we die, so not even a
SIGKILLed `mesh up` leaves orphans.

`supervise` is one round of `mesh up`'s watch: a service that exited is started again (at once
the first time, then with a growing `Backoff` while it keeps dying), and one that is alive but
no longer answers its health probe (its event loop stuck, or the process frozen) is killed and
started again once its `Watchdog` says it has been silent long enough.
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

from bus.ops.backoff import Backoff

_PR_SET_PDEATHSIG = 1
PROBE_TIMEOUT = 1.0  # a live event loop answers /readyz in milliseconds


@dataclass
class Watchdog:
    """When to give up on a live service that stopped answering; pure, so it is tested alone.

    A probe that gets no HTTP answer in time is a miss: the event loop is stuck (a frozen
    handler, SIGSTOP) or the service is still starting. An answer, even a 503 (NATS away, which
    a restart would not cure), clears the misses. `misses` misses in a row spanning at least
    `window_seconds` condemn a service that has answered since its start, or one that has
    not answered within `grace_seconds` of it.
    """

    misses: int = 5
    window_seconds: float = 10.0
    grace_seconds: float = 60.0
    started: float = 0.0
    answered: bool = False
    missed: int = 0
    first_miss: float | None = None

    def restarted(self, now: float) -> None:
        """Forget the old process: a new one starts at `now`."""
        self.started, self.answered, self.missed, self.first_miss = now, False, 0, None

    def observe(self, answered: bool, now: float) -> bool:
        """Record one probe at `now`; True when the process should be killed and started again."""
        if answered:
            self.answered, self.missed, self.first_miss = True, 0, None
            return False
        if not self.answered and now - self.started < self.grace_seconds:
            return False  # still starting
        self.missed += 1
        self.first_miss = now if self.first_miss is None else self.first_miss
        return self.missed >= self.misses and now - self.first_miss >= self.window_seconds


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
    watchdog: Watchdog = field(default_factory=Watchdog)
    backoff: Backoff = field(default_factory=Backoff)
    state: str = "starting"  # the last probe: ready, not ready, no answer, down
    last_restart: str = ""  # why it was last started again, for the status line

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> ServiceProcess:
        env = {**self.env, **self.extra_env, "MESH_HTTP_PORT": str(self.port), "MESH_HTTP_HOST": self.host}
        self.process = spawn([sys.executable, "-m", "bus.ops.cli", "run", self.name], env=env, log_path=self.log_path)
        self.watchdog.restarted(time.monotonic())
        self.backoff.started(time.monotonic())
        self.state = "starting"
        return self

    def restart(self, reason: str) -> None:
        """Kill what is left of the process and start a new one; `reason` goes on the status line."""
        self.kill()
        self.restarts += 1
        self.last_restart = reason
        self.start()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def health(self, timeout: float = 1.0) -> str:
        """`ready`, `starting` (alive but not ready yet), or `down`."""
        state = self.probe(timeout)
        return state if state in ("ready", "down") else "starting"

    def probe(self, timeout: float = PROBE_TIMEOUT) -> str:
        """`ready`, `not ready` (answered, e.g. 503), `no answer` (alive, silent), or `down`."""
        if not self.alive():
            return "down"
        try:
            response = httpx.get(f"{self.url}/readyz", timeout=timeout)
        except httpx.HTTPError:
            return "no answer"
        return "ready" if response.status_code == 200 else "not ready"

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


def supervise(
    services: list[ServiceProcess], *, probe_timeout: float = PROBE_TIMEOUT, clock=time.monotonic
) -> list[ServiceProcess]:
    """One round of watching: start again what exited, kill and start again what stopped answering.

    A service that exited with `EXIT_DRAINED` was drained by an operator (`mesh admin drain`):
    it stays down, with state `drained`. Returns the services started again in this round;
    each one's `last_restart` says why.
    """
    from bus.drain import EXIT_DRAINED

    restarted = []
    for service in services:
        if not service.alive():
            code = service.process.returncode if service.process else None
            if code == EXIT_DRAINED:
                service.state = "drained"
                continue
            if not service.backoff.due(clock()):  # it keeps dying: wait before the next try
                service.state = f"down (exit {code}); restart in {service.backoff.remaining(clock()):.0f} s"
                continue
            service.restart(f"exited with code {code}")
            restarted.append(service)
            continue
        service.state = service.probe(probe_timeout)
        if service.watchdog.observe(service.state != "no answer", clock()):
            silent = clock() - (service.watchdog.first_miss or clock())
            service.restart(f"killed after {service.watchdog.missed} health probes unanswered over {silent:.0f} s")
            restarted.append(service)
    return restarted


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
