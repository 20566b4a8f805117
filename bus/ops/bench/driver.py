"""The load: N proposals with C in flight, each timed from publish to its outcome.

A proposal's clock starts just before its JetStream publish (which waits for the PubAck,
like `MeshClient.propose`) and stops when its outcome arrives on a core NATS subscription
to the outcome subjects. A new proposal starts as soon as one of the C in flight is
decided. Warm-up proposals run first and are not counted.

Against a traced mesh (`trace_sampling`) each proposal starts its own trace, as `mesh publish`
does: a W3C `traceparent`, sampled at that share, which the services follow (parent-based). So a
proposal is one trace, sampled or not as a whole; the driver itself records no span.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.aio.msg import Msg

from bus.client import MeshClient
from bus.connect import connect
from bus.ops.bench.payloads import proposal, sample_proposal
from bus.ops.settings import MeshSettings
from bus.telemetry import Telemetry


@dataclass
class Load:
    """What one run of the driver saw."""

    proposals: int
    concurrency: int
    latencies: list[float] = field(default_factory=list)  # seconds, decided proposals only
    wall_seconds: float = 0.0  # first publish -> last outcome
    outcomes: Counter = field(default_factory=Counter)  # approved / blocked / escalated
    missing: int = 0  # no outcome within the timeout

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall_seconds if self.wall_seconds else 0.0


class Outcomes:
    """Futures for outcomes we are waiting on, resolved from one wildcard subscription."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future] = {}

    def expect(self, token: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.waiting[token] = future
        return future

    async def on_message(self, msg: Msg) -> None:
        arrived = time.perf_counter()
        release_token = msg.subject.split(".")[-2]  # <ns>.outcomes.release.<release>.<digest>
        future = self.waiting.pop(release_token, None)
        if future is not None and not future.done():
            future.set_result((arrived, msg.data))


async def drive(
    settings: MeshSettings,
    *,
    proposals: int,
    concurrency: int,
    timeout: float = 60.0,
    on_outcome: Callable[[], None] | None = None,
    trace_sampling: float | None = None,
) -> Load:
    """Publish `proposals` proposals, `concurrency` at a time, and time each to its outcome;
    with `trace_sampling`, each starts a trace, sampled at that share."""
    telemetry = TraceStarter(trace_sampling) if trace_sampling is not None else None
    client = MeshClient(await connect(settings, name="mesh-bench"), settings, telemetry=telemetry)
    outcomes = Outcomes()
    sub = await client.nc.subscribe(settings.subjects.outcomes, cb=outcomes.on_message)
    try:
        await client.nc.flush()
        run = uuid.uuid4().hex[:8]
        load = Load(proposals, concurrency)
        release_ids = [f"b{run}-{i}" for i in range(proposals)]
        await _wave(client, outcomes, release_ids, sample_proposal(), concurrency, timeout, load, on_outcome)
        return load
    finally:
        await sub.unsubscribe()
        await client.close()


class TraceStarter(Telemetry):
    """Starts each published message's trace and records nothing: a new `traceparent`, its
    sampled flag set for `sampling` of them."""

    def __init__(self, sampling: float) -> None:
        self.sampling = sampling

    def publishing(
        self, service: str, subject: str, headers: dict[str, str], model: object = None
    ) -> contextlib.AbstractContextManager[dict[str, str]]:
        flags = "01" if random.random() < self.sampling else "00"
        trace_id, span_id = random.getrandbits(128) or 1, random.getrandbits(64) or 1
        return contextlib.nullcontext({**headers, "traceparent": f"00-{trace_id:032x}-{span_id:016x}-{flags}"})


async def _wave(
    client: MeshClient,
    outcomes: Outcomes,
    release_ids: list[str],
    template: dict,
    concurrency: int,
    timeout: float,
    load: Load,
    on_outcome: Callable[[], None] | None,
) -> None:
    in_flight = asyncio.Semaphore(concurrency)
    events = [proposal(rid, template) for rid in release_ids]  # built before the clock runs
    first: list[float] = []
    last = [0.0]

    async def one(event) -> None:
        async with in_flight:
            decided = outcomes.expect(event.release_id)  # ids are subject-safe: token == id
            started = time.perf_counter()
            first.append(started)
            await client.propose(event)
            try:
                arrived, data = await asyncio.wait_for(decided, timeout)
            except TimeoutError:
                outcomes.waiting.pop(event.release_id, None)
                load.missing += 1
                return
        load.latencies.append(arrived - started)
        last[0] = max(last[0], arrived)
        load.outcomes[json.loads(data).get("outcome", "?")] += 1
        if on_outcome:
            on_outcome()

    await asyncio.gather(*(one(event) for event in events))
    load.wall_seconds = last[0] - min(first) if load.latencies else 0.0
