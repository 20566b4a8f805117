"""Drain: an operator asks every instance of an agent to finish what it holds and exit.

`mesh admin drain security` sends one core NATS request to `<ns>.control.security.drain` and
collects the answers. Each instance answers at once (`{"agent", "instance", "draining": true}`),
then, on its own: asks for no more messages, finishes and acks what it holds, leaves the
registry and ends its process (`Agent.drain`). Nothing is redelivered: what it never pulled
waits in the stream for the next instance.

`mesh run` then exits with `EXIT_DRAINED`, and `mesh up`'s supervisor does not start such a
service again (bus/ops/processes.py): a drained agent stays down until someone starts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

EXIT_DRAINED = 10  # `mesh run`'s exit code after a drain: "stopped on purpose, do not restart"


def drain_subject(control: str) -> str:
    """`<ns>.control.<agent>.drain`, from `Subjects.control(agent)`."""
    return f"{control}.drain"


def end_this_process() -> None:
    """What a drained process does by default: SIGTERM to itself, so its server shuts down as usual."""
    os.kill(os.getpid(), signal.SIGTERM)


class DrainListener:
    """Answers drain requests on one subject and runs `on_drain(by)` once, in a task of its own
    (`by`: who asked, when the request says so)."""

    def __init__(self, *, answer: dict[str, Any], on_drain: Callable[[str], Awaitable[None]]) -> None:
        self.answer = {**answer, "draining": True}
        self.on_drain = on_drain
        self.task: asyncio.Task | None = None
        self._subscription: Any = None

    async def start(self, nc: Any, subject: str) -> None:
        self._subscription = await nc.subscribe(subject, cb=self._requested)

    async def _requested(self, msg: Any) -> None:
        if msg.reply:
            with contextlib.suppress(Exception):  # the operator stopped waiting: drain anyway
                await msg.respond(json.dumps(self.answer).encode())
        if self.task is None:
            # Not in this callback: draining unsubscribes, which would cancel the callback's task.
            self.task = asyncio.create_task(self.on_drain(_asked_by(msg.data)))

    async def stop(self) -> None:
        """Listen no more (a drain already started carries on)."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(Exception):  # NATS away: the server forgets us anyway
                await subscription.unsubscribe()


def _asked_by(data: bytes) -> str:
    try:
        return str(json.loads(data).get("by", ""))
    except (ValueError, AttributeError):
        return ""
