"""What a chaos run knows while it runs: which proposals NATS has acknowledged, and which
outcomes a plain core-NATS subscriber has heard — so which rounds are open right now, and how
often each outcome reached a consumer.

The subscriber hears every publish on the outcome subjects, duplicates the stream dropped
(same `Nats-Msg-Id`) included: what a consumer outside the mesh would get. The outcomes stream
alone cannot show those, since it dedupes them (the e2e tests' `OutcomeTap`, counting).
While NATS is down it hears nothing; nothing can be published then either, but an outcome
flushed by a publisher that reconnected before it may be missed: `heard` is a floor.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter


class Progress:
    """Proposals published and outcomes heard, by release id; `changed` is set on each change."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.published: set[str] = set()
        self.heard: Counter[str] = Counter()  # outcome messages heard per release, duplicates included
        self.open: set[str] = set()  # published, no outcome heard yet
        self.over = False  # every outcome is in, or the wait for them ran out
        self.last_heard: float | None = None  # time.monotonic() of the last outcome heard
        self.changed = asyncio.Event()

    def proposal_published(self, release_id: str) -> None:
        self.published.add(release_id)
        if release_id not in self.heard:  # its outcome may be heard before the PubAck is read
            self.open.add(release_id)
        self.changed.set()

    def outcome_heard(self, release_id: str) -> None:
        self.heard[release_id] += 1
        self.open.discard(release_id)
        self.last_heard = time.monotonic()
        self.changed.set()

    def end(self) -> None:
        self.over = True
        self.changed.set()

    async def listen(self, nc, subject: str) -> None:
        """Subscribe (core NATS, no stream) to `subject`, the outcome subjects, counting what is heard."""

        async def heard(msg) -> None:
            try:
                release_id = json.loads(msg.data)["release_id"]
            except (ValueError, KeyError, TypeError):
                return  # not an outcome we can read: not ours
            self.outcome_heard(release_id)

        await nc.subscribe(subject, cb=heard)
        await nc.flush()
