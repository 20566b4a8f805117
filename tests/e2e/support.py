"""Helpers for end-to-end tests: sample proposals, reading streams, waiting for a condition."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import nats

from contracts.releases import ReleaseProposed

SAMPLES = files("contracts") / "samples"


def sample(name: str, **changes) -> ReleaseProposed:
    """A sample proposal from contracts/samples, with fields replaced (e.g. a fresh release_id)."""
    data = json.loads((SAMPLES / f"{name}.json").read_text())
    data.update(changes)
    return ReleaseProposed.model_validate(data)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: `*` is one token, a final `>` is one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


async def stream_messages(nats_url: str, stream: str, subject: str | None = None) -> list[bytes]:
    """Every message currently stored in a stream (optionally one subject), oldest first."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except Exception:  # noqa: BLE001 - a deleted sequence
                continue
            if subject is None or subject_matches(subject, msg.subject):
                found.append(msg.data)
        return found
    finally:
        await nc.close()


async def eventually(check: Callable, *, timeout: float = 10.0, interval: float = 0.1):
    """Poll an async `check` until it returns something truthy; return that value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(interval)


def mesh_up(cwd, env: dict[str, str], *, timeout: float = 60.0):
    """Start `mesh up` as a user does and wait for its run file; returns (process, run file).

    The caller stops the process (SIGTERM) when done."""
    up = subprocess.Popen(
        [sys.executable, "-m", "bus.ops.cli", "up", "--base-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
    )
    run_file = Path(env["MESH_HOME"]) / "run.json"
    deadline = time.monotonic() + timeout
    while not run_file.exists() and time.monotonic() < deadline and up.poll() is None:
        time.sleep(0.2)
    return up, run_file


class OutcomeTap:
    """A plain core-NATS subscriber on every outcome subject, as a consumer outside the mesh
    would have: it sees each publish, duplicates included, before any stream dedupes them."""

    def __init__(self, nats_url: str, subjects) -> None:
        self.nats_url = nats_url
        self.subject = subjects.outcomes
        self.seen: list[tuple[str, bytes]] = []

    async def __aenter__(self) -> OutcomeTap:
        self.nc = await nats.connect(self.nats_url)

        async def heard(msg) -> None:
            self.seen.append((msg.subject, msg.data))

        await self.nc.subscribe(self.subject, cb=heard)
        await self.nc.flush()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.nc.drain()

    def of(self, release_id: str) -> list[dict]:
        """Every outcome heard for a release, parsed, in the order heard."""
        found = [json.loads(data) for _, data in self.seen]
        return [o for o in found if o.get("release_id") == release_id]


async def mesh_settled(settings, names: list[str], tap: OutcomeTap | None = None, *, timeout: float = 30.0) -> None:
    """The positive signal before asserting that nothing more happened: every durable consumer of
    the named services has settled all it was given (whatever a handler publishes, it publishes
    before its ack), and the tap, if any, has heard what the server sent it before now."""
    from bus.ops.launcher import all_consumers
    from tests.settled import all_settled

    await all_settled(settings.nats_url, all_consumers(settings, names), timeout=timeout)
    if tap is not None:
        await tap.nc.flush()
        await asyncio.sleep(0.1)  # the subscription's callback task runs what the flush brought in
