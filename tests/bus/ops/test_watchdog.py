"""`mesh up`'s watch: a live service whose event loop stopped answering is killed and started again."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from bus.ops.launcher import start_mesh
from bus.ops.processes import Watchdog, supervise


def probes(watchdog: Watchdog, answers: str, *, every: float = 1.0, start: float = 0.0) -> list[bool]:
    """Feed one probe per `every` seconds: `y` answered, `n` no answer; the verdict of each."""
    return [watchdog.observe(a == "y", start + i * every) for i, a in enumerate(answers)]


def test_a_service_that_answered_and_then_went_silent_is_condemned_after_misses_over_the_window():
    """Five misses in a row are not enough until they span ten seconds; then the verdict is kill."""
    dog = Watchdog(misses=5, window_seconds=10.0, grace_seconds=60.0)
    dog.restarted(0.0)
    verdicts = probes(dog, "y" + "n" * 12, every=1.0, start=1.0)
    assert verdicts.index(True) == 11  # misses at t=2..12: the 11th spans 10 s
    assert not any(verdicts[:11])


def test_an_answer_clears_the_misses():
    """A slow moment is not a stuck loop: one answer between misses starts the count again."""
    dog = Watchdog(misses=3, window_seconds=2.0, grace_seconds=60.0)
    dog.restarted(0.0)
    assert not any(probes(dog, "ynnynnynny", every=1.0, start=1.0))
    assert probes(dog, "nnn", every=1.0, start=11.0) == [False, False, True]


def test_a_starting_service_is_left_alone_until_its_grace_runs_out():
    """No answer while starting is normal; silence past the grace period is not."""
    dog = Watchdog(misses=3, window_seconds=2.0, grace_seconds=30.0)
    dog.restarted(0.0)
    assert not any(probes(dog, "n" * 29, every=1.0, start=0.0))
    assert probes(dog, "nnn", every=1.0, start=30.0) == [False, False, True]


def test_a_restart_forgets_the_old_process():
    """The new process gets its own grace period, whatever the old one did."""
    dog = Watchdog(misses=2, window_seconds=1.0, grace_seconds=5.0)
    dog.restarted(0.0)
    assert probes(dog, "ynn", every=1.0, start=1.0) == [False, False, True]
    dog.restarted(4.0)
    assert not any(probes(dog, "nnnn", every=1.0, start=4.0))


@pytest.mark.timeout(120)
async def test_a_frozen_service_is_killed_and_started_again(settings, tmp_path, service_identities):
    """A real `mesh run security` frozen with SIGSTOP (alive, silent) is SIGKILLed and replaced by
    `supervise`, its status says why, and the new process answers its health probe."""
    identities = service_identities(settings, ["security"])
    mesh = await asyncio.to_thread(
        start_mesh, settings, names=["security"], home=tmp_path / "mesh", embedded=False, identities=identities
    )
    try:
        (service,) = mesh.services
        service.watchdog = Watchdog(misses=3, window_seconds=2.0, grace_seconds=30.0)
        frozen = service.process
        assert await asyncio.to_thread(supervise, mesh.services, probe_timeout=0.3) == []
        assert service.state == "ready"

        os.kill(frozen.pid, signal.SIGSTOP)
        started = time.monotonic()
        restarted = []
        while not restarted and time.monotonic() - started < 20:
            restarted = await asyncio.to_thread(supervise, mesh.services, probe_timeout=0.3)
            await asyncio.sleep(0.2)

        assert restarted == [service]
        assert 2.0 <= time.monotonic() - started < 20
        assert frozen.poll() == -signal.SIGKILL  # the frozen process is gone, not left behind
        assert service.pid != frozen.pid and service.restarts == 1
        assert "health probes unanswered" in service.last_restart
        deadline = time.monotonic() + 30
        while service.probe(0.5) != "ready" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert service.probe(0.5) == "ready"
    finally:
        await asyncio.to_thread(mesh.stop)
