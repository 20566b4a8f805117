"""Helpers of the daemon runtime's tests: the toy daemon in this process, a crash, a witness."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bus.ops.bench.tally import TallySettings, build
from bus.runtime import Agent


def tally(settings, instance: str, **overrides) -> Agent:
    """The toy daemon (bus/ops/bench/tally.py) as instance `instance`, with a 1 s lease."""
    values = {**settings.model_dump(), "instance_id": instance, "daemon_lease_seconds": 1, **overrides}
    return build(TallySettings(**values))


async def crash(agent: Agent) -> None:
    """What SIGKILL leaves behind: no last checkpoint, the lease not given up (it expires)."""
    task, agent.daemon._task = agent.daemon._task, None
    while not task.done():  # again and again: nats-py's requests can swallow a cancellation
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)


async def until(check, *, timeout: float = 15.0, interval: float = 0.05):
    """Poll `check` (sync or async) until it returns something truthy; that value, or None."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(interval)
    return None


@dataclass
class Counted:
    """A core NATS subscriber: it sees every publish, duplicates the stream dropped included."""

    messages: list = field(default_factory=list)

    @classmethod
    async def on(cls, nc, subject: str) -> Counted:
        counted = cls()

        async def seen(msg) -> None:
            counted.messages.append(msg)

        await nc.subscribe(subject, cb=seen)
        return counted

    def ids(self) -> list[str]:
        return [(m.headers or {}).get("Nats-Msg-Id", "") for m in self.messages]
