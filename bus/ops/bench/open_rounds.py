"""The coordinator holding many open rounds: memory per open round, and time per review.

Only NATS and the real coordinator run. Background proposals open rounds that no reviewer
will ever answer (the deadline is a day away), 10 -> 100 -> ... -> N of them. At each
checkpoint the benchmark reads the memory of the coordinator and of nats-server and the
bytes the rounds and their scheduled deadlines take on disk, then times `probes` reviews
one at a time: a probe round is proposed and gets its security review, and once that is
recorded the clock runs from publishing its compliance review to receiving its outcome --
the real code path of one deciding review (change the round with compare-and-set, publish
the outcome). Probe rounds are decided, so the number of open rounds stays at the
checkpoint. A few unmeasured probes run first, before any round is open.

Wall-clock time on a busy machine moves with everything else running, so the coordinator's
own CPU time per probe round (its proposal and both reviews) is recorded beside it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from bus.client import MeshClient
from bus.connect import connect
from bus.ops.bench.driver import Outcomes
from bus.ops.bench.payloads import proposal, sample_proposal
from bus.ops.bench.resources import cpu_seconds, memory
from bus.ops.bench.results import Checkpoint, OpenRounds
from bus.ops.launcher import start_mesh
from bus.ops.settings import MeshSettings
from contracts.ids import review_msg_id
from coordinator.store import round_key
from services.review.offline import OfflineReviewer
from services.review.reviewer import review_of
from services.review.rules import load_rules

Progress = Callable[[int, str], None]  # (steps done, description)
_WARMUP_PROBES = 10


def checkpoints(open_rounds: int) -> list[int]:
    """10, 100, 1000, ... below `open_rounds`, then `open_rounds` itself."""
    marks = [10**k for k in range(1, 8) if 10**k < open_rounds]
    return [*marks, open_rounds]


def measure_open_rounds(
    settings: MeshSettings, *, home: Path, open_rounds: int, probes: int, progress: Progress | None = None
) -> OpenRounds:
    """Start NATS and the coordinator alone, grow its open rounds, measure at each checkpoint."""
    mesh = start_mesh(settings, names=["coordinator"], home=home, embedded=True, fresh=True)
    try:
        pids = {"coordinator": mesh.services[0].pid, "nats": mesh.nats.process.pid}
        return asyncio.run(
            _measure(mesh.settings, pids, checkpoints(open_rounds), probes, progress or (lambda *_: None))
        )
    finally:
        mesh.stop()
        shutil.rmtree(home / "nats", ignore_errors=True)


async def _measure(settings: MeshSettings, pids: dict, marks: list[int], probes: int, progress: Progress) -> OpenRounds:
    client = MeshClient(await connect(settings, name="mesh-bench-rounds"), settings)
    outcomes = Outcomes()
    await client.nc.subscribe(settings.subjects.outcomes, cb=outcomes.on_message)
    kv = await client.js.key_value(settings.subjects.rounds_bucket)
    template = sample_proposal()
    sample = proposal("sample", template)
    assessments = {
        name: OfflineReviewer(load_rules(name), name=name).review(sample) for name in ("security", "compliance")
    }
    found: list[Checkpoint] = []
    opened, opening_seconds = 0, 0.0
    try:
        progress(0, "warming up")
        for j in range(min(_WARMUP_PROBES, probes)):  # first connections and code paths: not measured
            await _probe(client, kv, outcomes, f"warm-{j}", template, assessments)
        for mark in marks:
            progress(opened, f"opening {mark:,} rounds")
            started = time.perf_counter()
            await _open(client, [f"open-{i}" for i in range(opened, mark)], template)
            opening_seconds += time.perf_counter() - started
            opened = mark
            progress(opened, f"{mark:,} open rounds: timing reviews")
            js = client.js
            s = settings.subjects
            kv_info = await js.stream_info(f"KV_{s.rounds_bucket}")
            deadlines = await js.stream_info(s.deadlines_stream)
            point = Checkpoint(
                open_rounds=mark,
                review_ms=[],
                coordinator_rss_bytes=memory(pids["coordinator"])["rss"],
                nats_rss_bytes=memory(pids["nats"])["rss"],
                kv_bytes=kv_info.state.bytes,
                deadline_bytes=deadlines.state.bytes,
            )
            cpu = cpu_seconds(pids["coordinator"])
            for j in range(probes):
                point.review_ms.append(await _probe(client, kv, outcomes, f"probe-{mark}-{j}", template, assessments))
            point.cpu_ms_per_probe = (cpu_seconds(pids["coordinator"]) - cpu) / probes * 1000
            found.append(point)
    finally:
        await client.close()
    return OpenRounds(found, open_rate=opened / opening_seconds if opening_seconds else 0.0)


async def _open(client: MeshClient, release_ids: list[str], template: dict, in_flight: int = 256) -> None:
    """Propose every release and wait until the coordinator has handled them all."""
    gate = asyncio.Semaphore(in_flight)

    async def one(release_id: str) -> None:
        async with gate:
            await client.propose(proposal(release_id, template))

    await asyncio.gather(*(one(rid) for rid in release_ids))
    await _drained(client.js, client.subjects.events_stream, "coordinator-proposals")


async def _drained(js: JetStreamContext, stream: str, durable: str, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = await js.consumer_info(stream, durable)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{durable} did not catch up within {timeout:.0f} s")


async def _probe(
    client: MeshClient, kv: KeyValue, outcomes: Outcomes, release_id: str, template: dict, assessments: dict
) -> float:
    """Milliseconds from publishing the deciding review of a fresh round to its outcome."""
    event = proposal(release_id, template)
    await client.propose(event)
    await _submit(client, event, "security", assessments)
    await _recorded(kv, round_key(release_id, event.content_digest), "security")
    decided = outcomes.expect(release_id)
    started = time.perf_counter()
    await _submit(client, event, "compliance", assessments)
    arrived, _ = await asyncio.wait_for(decided, 30.0)
    return (arrived - started) * 1000


async def _submit(client: MeshClient, event, reviewer: str, assessments: dict) -> None:
    review = review_of(event, reviewer, assessments[reviewer])
    data = review.model_dump_json().encode()
    headers = {"Nats-Msg-Id": review_msg_id(review), "content-type": "application/json"}
    await client.js.publish(client.subjects.review_submitted(reviewer), data, headers=headers)


async def _recorded(kv: KeyValue, key: str, reviewer: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            entry = await kv.get(key)
            if entry.value and reviewer in json.loads(entry.value).get("reviews", {}):
                return
        except KeyNotFoundError:
            pass
        await asyncio.sleep(0.001)
    raise TimeoutError(f"the coordinator did not record {reviewer}'s review in round {key} within {timeout:.0f} s")
