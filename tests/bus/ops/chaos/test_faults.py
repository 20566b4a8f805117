"""bus/ops/chaos/faults.py: a SIGSTOP always gets its SIGCONT (the kill loop's side: test_strikes.py)."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from bus.ops.chaos import faults
from bus.ops.chaos.faults import FreezeFault
from bus.ops.processes import ServiceProcess


def state(pid: int) -> str:
    """The process's state letter in /proc: `T` stopped, `S` sleeping, `R` running."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def sleeper():
    """A stand-in service process: `sleep 60` under the name `security`."""
    service = ServiceProcess("security", port=0, env={})
    service.process = subprocess.Popen(["sleep", "60"])
    yield service
    service.process.kill()
    service.process.wait()


def wait_for_state(pid: int, letter: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while state(pid) != letter and time.monotonic() < deadline:
        time.sleep(0.05)
    return state(pid)


def test_freeze_stops_the_process_and_restart_continues_it(sleeper):
    """`kill` SIGSTOPs one of the named services (it stays alive), `restart` SIGCONTs it and
    takes down the thaw guard."""
    fault = FreezeFault(SimpleNamespace(services=[sleeper]), ("security",), hold=30)
    what = fault.kill(random.Random(0))
    assert what.startswith(f"froze security (pid {sleeper.pid}")
    assert wait_for_state(sleeper.pid, "T") == "T" and sleeper.alive()
    guard = fault.guard
    fault.restart()
    assert wait_for_state(sleeper.pid, "S") == "S"
    assert guard.poll() is not None and fault.guard is None and fault.victim is None


def test_a_freeze_thaws_by_itself_if_the_run_dies_before_its_restart(sleeper, monkeypatch):
    """The detached guard SIGCONTs the frozen process after `hold` + grace even when nobody
    calls `restart` (a chaos run SIGKILLed mid-freeze runs no `finally`)."""
    monkeypatch.setattr(faults, "THAW_GRACE_SECONDS", 0.0)
    fault = FreezeFault(SimpleNamespace(services=[sleeper]), ("security",), hold=1)
    fault.kill(random.Random(0))
    assert wait_for_state(sleeper.pid, "T") == "T"
    assert wait_for_state(sleeper.pid, "S", timeout=10) == "S"
    fault.guard.wait()
