"""The floor: the mesh's message flow written directly on nats-py, with nothing else.

    python -m bus.ops.bench.floor reviewer security     # one reviewer process
    python -m bus.ops.bench.floor coordinator [--kv]    # the coordinator process

It reads the same streams through the same durable pull consumers as the mesh services
(provisioned by the benchmark from the services' own declarations), runs the same offline
rules, publishes the same payloads with the same `Nats-Msg-Id`s, waits for every PubAck and
acks only after it. The coordinator applies the same pure round transitions (`Round.open`,
`Round.record`) and publishes one outcome per round.

It reads with the services' own pull technique (bus/pull.py: requests kept outstanding for
the free workers), so the floor is never slower for want of the faster technique.

What it leaves out: FastStream, logging, in-progress acks, dead-lettering, HTTP health
routes. Without `--kv` it keeps rounds only in memory (a crash loses them); with `--kv` it
writes every round change to the rounds bucket with compare-and-set and schedules the
deadline on the server, like the mesh, but never reads a round back (it remembers the last
revision it wrote and re-reads only when a write loses the race).

Prints `ready` on standard output once it consumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable

import nats
from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from bus.connect import connect_options
from bus.ops.settings import MeshSettings
from bus.pull import PullFeed, new_inbox
from contracts.deadlines import RoundDeadline, rfc3339_ceil
from contracts.envelope import utc_now
from contracts.ids import deadline_msg_id, outcome_msg_id, review_msg_id
from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted
from coordinator.policy import Policy
from coordinator.rounds import Round, RoundState, new_round
from coordinator.service import agent_named_after
from coordinator.store import round_key
from services.review.offline import OfflineReviewer
from services.review.reviewer import review_of
from services.review.rules import load_rules

JSON = "application/json"


async def consume(
    nc: nats.NATS, *, stream: str, durable: str, handle: Callable[[Msg], Awaitable[None]], workers: int
) -> None:
    """Keep pull requests outstanding for the free workers (bus/pull.py, the services' own
    technique) and handle each message in its own task as it arrives."""
    tasks: set[asyncio.Task] = set()
    feed = PullFeed(stream=stream, durable=durable, inbox=new_inbox("_INBOX.floor"), free=lambda: workers - len(tasks))

    async def run(msg: Msg) -> None:
        try:
            await handle(msg)
        except Exception as exc:  # noqa: BLE001 - the floor retries like JetStream would
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)

    def finished(task: asyncio.Task) -> None:
        tasks.discard(task)
        feed.wake()

    async def on_message(msg: Msg) -> None:
        if feed.heard(msg):
            return
        task = asyncio.create_task(run(msg))
        tasks.add(task)
        task.add_done_callback(finished)

    await nc.subscribe(feed.inbox, cb=on_message)
    await feed.start(nc)
    try:
        await asyncio.Event().wait()  # until cancelled
    finally:
        await feed.stop()


async def run_reviewer(settings: MeshSettings, name: str, nc: nats.NATS) -> list[Awaitable[None]]:
    js = nc.jetstream(timeout=settings.publish_timeout_seconds)
    s = settings.subjects
    brain = OfflineReviewer(load_rules(name), name=name)
    subject, stream = s.review_submitted(name), s.reviews_stream

    async def handle(msg: Msg) -> None:
        proposal = ReleaseProposed.model_validate_json(msg.data)
        review = review_of(proposal, name, await brain.assess(proposal))
        data = review.model_dump_json().encode()
        headers = {"Nats-Msg-Id": review_msg_id(review), "content-type": JSON}
        await js.publish(subject, data, stream=stream, headers=headers)
        await msg.ack()

    return [consume(nc, stream=s.events_stream, durable=name, handle=handle, workers=settings.workers)]


class Rounds:
    """Rounds in memory; with a KV bucket, every change is also written there with CAS."""

    def __init__(self, kv: KeyValue | None) -> None:
        self.kv = kv
        self.rounds: dict[str, Round] = {}
        self.revisions: dict[str, int] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    async def change(self, release_id: str, digest: str, transition: Callable[[Round], bool]) -> tuple[Round, bool]:
        key = round_key(release_id, digest)
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            round_ = self.rounds.get(key) or new_round(release_id, digest)
            changed = transition(round_)
            while changed and self.kv is not None:
                try:
                    self.revisions[key] = await self._write(key, round_)
                    break
                except KeyWrongLastSequenceError:  # someone else wrote first: re-read, re-apply
                    round_ = await self._read(key, release_id, digest)
                    changed = transition(round_)
            self.rounds[key] = round_
            return round_, changed

    def forget(self, release_id: str, digest: str) -> None:
        for table in (self.rounds, self.revisions, self.locks):
            table.pop(round_key(release_id, digest), None)

    async def _write(self, key: str, round_: Round) -> int:
        data = round_.model_dump_json().encode()
        revision = self.revisions.get(key)
        if revision is None:
            return await self.kv.create(key, data)
        return await self.kv.update(key, data, last=revision)

    async def _read(self, key: str, release_id: str, digest: str) -> Round:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            entry = None
        if entry is None or entry.value is None:
            self.revisions.pop(key, None)
            return new_round(release_id, digest)
        self.revisions[key] = entry.revision
        return Round.model_validate_json(entry.value)


async def run_coordinator(settings: MeshSettings, nc: nats.NATS, *, durable: bool) -> list[Awaitable[None]]:
    js = nc.jetstream(timeout=settings.publish_timeout_seconds)
    s = settings.subjects
    policy = Policy.parse(settings.policy)
    expected = sorted({*settings.reviewers, *(agent_named_after(skill) for skill in settings.required_skills)})
    known = frozenset(expected)
    fallbacks = {name: settings.fallback_for(name) for name in expected}
    rounds = Rounds(await js.key_value(s.rounds_bucket) if durable else None)

    async def publish(subject: str, data: bytes, msg_id: str, **headers: str) -> None:
        headers = {"Nats-Msg-Id": msg_id, "content-type": JSON, **headers}
        await js.publish(subject, data, stream=s.stream_for(subject), headers=headers)

    async def settle(round_: Round) -> None:
        if round_.state == RoundState.DECIDED and not round_.outcome_published:
            rid, digest = round_.release_id, round_.content_digest
            await publish(
                s.round_decided(rid, digest), round_.outcome.model_dump_json().encode(), outcome_msg_id(rid, digest)
            )
            await rounds.change(rid, digest, Round.mark_published)
            rounds.forget(rid, digest)

    async def handle_proposal(msg: Msg) -> None:
        proposal = ReleaseProposed.model_validate_json(msg.data)
        round_, changed = await rounds.change(
            proposal.release_id,
            proposal.content_digest,
            lambda r: r.open(
                proposal,
                expected=expected,
                policy=policy,
                fallbacks=fallbacks,
                deadline_seconds=settings.deadline_seconds,
                now=utc_now(),
            ),
        )
        if durable and changed and round_.state == RoundState.OPEN:
            rid, digest, at = round_.release_id, round_.content_digest, rfc3339_ceil(round_.deadline)
            tick = RoundDeadline(
                release_id=rid,
                content_digest=digest,
                correlation_id=rid,
                causation_id=proposal.event_id,
                producer="coordinator",
            )
            await publish(
                s.deadline_schedule(rid, digest),
                tick.model_dump_json().encode(),
                deadline_msg_id(rid, digest, at),
                **{"Nats-Schedule": f"@at {at}", "Nats-Schedule-Target": s.deadline_fired(rid, digest)},
            )
        await settle(round_)
        await msg.ack()

    async def handle_review(msg: Msg) -> None:
        submitted = ReviewSubmitted.model_validate_json(msg.data)
        round_, _ = await rounds.change(
            submitted.release_id, submitted.content_digest, lambda r: r.record(submitted, now=utc_now(), known=known)
        )
        await settle(round_)
        await msg.ack()

    return [
        consume(
            nc,
            stream=s.events_stream,
            durable="coordinator-proposals",
            handle=handle_proposal,
            workers=settings.workers,
        ),
        consume(
            nc, stream=s.reviews_stream, durable="coordinator-reviews", handle=handle_review, workers=settings.workers
        ),
    ]


async def main(argv: list[str], settings: MeshSettings | None = None) -> None:
    settings = settings or MeshSettings()
    role, rest = argv[0], argv[1:]
    label = f"floor-{role}-{rest[0]}" if rest and not rest[0].startswith("-") else f"floor-{role}"
    nc = await nats.connect(**connect_options(settings, name=label))
    if role == "reviewer":
        loops = await run_reviewer(settings, rest[0], nc)
    elif role == "coordinator":
        loops = await run_coordinator(settings, nc, durable="--kv" in rest)
    else:
        raise SystemExit(f"unknown role {role!r}: use `reviewer <name>` or `coordinator [--kv]`")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(loop) for loop in loops]
    print("ready", flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    with contextlib.suppress(Exception):
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
