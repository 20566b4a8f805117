"""Helpers for end-to-end tests: sample proposals, reading streams, waiting for a condition."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from importlib.resources import files

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
