"""What a daemon agent's checkpoints cost, and how long a standby takes to take over.

Runs the toy daemon (bus/ops/bench/tally.py) as real processes against one nats-server:

- *throughput*: N events already in the stream; one instance applies them all, checkpointing
  every event; then, in a fresh namespace on the same server, every 100 events. Events/s of each
  (from the moment it is active to the moment it has applied the last one).
- *takeover*: two instances, an event published every 20 ms; SIGKILL the active one and time
  until the standby says it is active (`/readyz`) and until it has applied an event published
  after the kill; start the killed one again (the next standby); repeat.

The process helpers here (`TallyProcess`, reading the stream and the checkpoint) are also what
the daemon tests use.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from bus.ops.bench.tally import Added, Reached, Tally, TallySettings, added_subject, reached_subject
from bus.ops.embedded import free_port
from bus.ops.processes import child_env, spawn
from bus.provision import provision
from bus.stateful.checkpoint import CheckpointStore


@dataclass
class TallyProcess:
    """One instance of the toy daemon: `python -m bus.ops.bench.tally` with its own port."""

    env: dict[str, str]
    log_path: Path | None = None
    port: int = field(default_factory=free_port)
    process: object | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TallyProcess:
        self.starts += 1
        env = {**self.env, "MESH_HTTP_PORT": str(self.port), "MESH_INSTANCE_ID": f"tally-{self.port}-{self.starts}"}
        self.process = spawn([sys.executable, "-m", "bus.ops.bench.tally"], env=env, log_path=self.log_path)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            self.process.send_signal(signum)

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a clean stop: last checkpoint, lease given up), SIGKILL if it hangs."""
        if not self.alive():
            return
        self.process.send_signal(signal.SIGCONT)  # a frozen process cannot stop
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except Exception:  # noqa: BLE001 - it hangs: kill it
            self.kill()

    async def ready(self, client: httpx.AsyncClient) -> dict | None:
        """Its /readyz body (with `role`), or None while it does not answer."""
        try:
            response = await client.get(f"{self.url}/readyz", timeout=1.0)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    async def tally(self, client: httpx.AsyncClient) -> dict | None:
        try:
            return (await client.get(f"{self.url}/tally", timeout=2.0)).json()
        except httpx.HTTPError:
            return None


def tally_env(settings: TallySettings, **overrides: str) -> dict[str, str]:
    return child_env(**{**settings.as_env(), "MESH_LOG_FORMAT": "json", **overrides})


async def provisioned(settings: TallySettings) -> None:
    """Create the namespace's streams and buckets (what `mesh provision` does)."""
    nc = await nats.connect(settings.nats_url)
    try:
        await provision(nc.jetstream(), settings, reconcile=False)
    finally:
        await nc.close()


async def publish_added(js: JetStreamContext, namespace: str, events: list[Added]) -> list[int]:
    """Publish the events; their stream sequences."""
    subject = added_subject(namespace)
    return [(await js.publish(subject, e.model_dump_json().encode())).seq for e in events]


async def stored(js: JetStreamContext, stream: str, subject: str) -> list[tuple[int, bytes, dict]]:
    """Every message on `subject` in `stream`, oldest first: (seq, data, headers)."""
    found, seq = [], 1
    while True:
        try:
            msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return found
        found.append((msg.seq, msg.data, msg.headers or {}))
        seq = msg.seq + 1


async def stored_added(js: JetStreamContext, settings: TallySettings) -> list[tuple[int, Added]]:
    rows = await stored(js, settings.subjects.events_stream, added_subject(settings.namespace))
    return [(seq, Added.model_validate_json(data)) for seq, data, _ in rows]


async def stored_reached(js: JetStreamContext, settings: TallySettings) -> list[tuple[str, Reached]]:
    """(Nats-Msg-Id, message) of every `Reached` the stream holds."""
    rows = await stored(js, settings.subjects.events_stream, reached_subject(settings.namespace))
    return [(headers.get("Nats-Msg-Id", ""), Reached.model_validate_json(data)) for _, data, headers in rows]


async def checkpointed(js: JetStreamContext, settings: TallySettings) -> tuple[Tally | None, dict[str, int]]:
    """The state and positions in the tally's checkpoint (None before its first)."""
    store = CheckpointStore(js, bucket=settings.subjects.daemons_bucket, agent="tally", chunk_bytes=1)
    checkpoint, _ = await store.read()
    if checkpoint is None:
        return None, {}
    return Tally.model_validate_json(checkpoint.state), checkpoint.positions


async def until(check: Callable, *, timeout: float, interval: float = 0.02):
    """Poll an async `check` until it returns something truthy (returned), or None at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := await check():
            return value
        await asyncio.sleep(interval)
    return None


async def active_one(client: httpx.AsyncClient, processes: list[TallyProcess]) -> TallyProcess | None:
    for process in processes:
        body = await process.ready(client)
        if body and body.get("role") == "active":
            return process
    return None


# --- the figures ----------------------------------------------------------------------------


@dataclass
class Throughput:
    checkpoint_every: int
    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass
class Takeovers:
    lease_seconds: int
    to_active: list[float] = field(default_factory=list)  # kill -> the standby says it is active
    to_applied: list[float] = field(default_factory=list)  # kill -> it applied an event sent after the kill

    @staticmethod
    def summary(gaps: list[float]) -> dict[str, float]:
        ordered = sorted(gaps)
        if not ordered:
            return {}
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return {
            "median": statistics.median(ordered),
            "p99": p99,
            "min": ordered[0],
            "max": ordered[-1],
            "n": len(ordered),
        }


async def measure_throughput(
    base: TallySettings, *, events: int, checkpoint_every: int, folder: Path | None = None
) -> Throughput:
    """Replay `events` already in the stream with one instance; events/s from active to done."""
    settings = base.model_copy(update={"namespace": f"bd{uuid.uuid4().hex[:8]}"})
    await provisioned(settings)
    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    keys = [f"k{n % 17}" for n in range(events)]
    last = (await publish_added(js, settings.namespace, [Added(key=k, amount=n % 7) for n, k in enumerate(keys)]))[-1]
    log = folder / f"throughput-{checkpoint_every}.log" if folder else None
    env = tally_env(settings, MESH_TALLY_CHECKPOINT_EVERY=str(checkpoint_every))
    process = TallyProcess(env, log_path=log).start()
    stream = settings.subjects.events_stream
    try:
        async with httpx.AsyncClient() as client:

            async def active():
                body = await process.ready(client)
                return body if body and body.get("role") == "active" else None

            if not await until(active, timeout=30, interval=0.005):
                raise RuntimeError(f"the tally daemon never became active (log: {log})")
            started = time.monotonic()

            async def done():
                body = await process.ready(client)
                return body and body["daemon"]["applied"].get(stream, 0) >= last

            if not await until(done, timeout=600, interval=0.01):
                raise RuntimeError(f"the tally daemon did not apply {events} events in 10 minutes (log: {log})")
            return Throughput(checkpoint_every, events, time.monotonic() - started)
    finally:
        process.stop()
        await nc.close()


async def measure_takeovers(
    base: TallySettings, *, takeovers: int, folder: Path | None = None, on_one: Callable[[float, float], None] = print
) -> Takeovers:
    """SIGKILL the active instance `takeovers` times, two instances running, events flowing."""
    settings = base.model_copy(update={"namespace": f"bd{uuid.uuid4().hex[:8]}"})
    await provisioned(settings)
    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    env = tally_env(settings)
    processes = [TallyProcess(env, log_path=folder / f"takeover-{n}.log" if folder else None).start() for n in range(2)]
    result = Takeovers(settings.daemon_lease_seconds)
    stream = settings.subjects.events_stream
    sent: list[int] = []
    stop = asyncio.Event()

    async def flow() -> None:
        n = 0
        while not stop.is_set():  # a flag, not cancel(): nats-py's request can swallow a cancellation
            sent.extend(await publish_added(js, settings.namespace, [Added(key=f"k{n % 5}", amount=1)]))
            n += 1
            await asyncio.sleep(0.02)

    feeder = asyncio.create_task(flow())
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(takeovers):
                active = await until(lambda: active_one(client, processes), timeout=30)
                standby = next(p for p in processes if p is not active) if active else None
                if active is None or not await until(lambda s=standby: s.ready(client), timeout=30):
                    raise RuntimeError("no active instance with a live standby")
                await asyncio.sleep(0.5)  # a moment of steady state
                killed_at, after_kill = time.monotonic(), (sent[-1] if sent else 0)
                active.kill()

                async def took_over(s=standby):
                    body = await s.ready(client)
                    return body if body and body.get("role") == "active" else None

                if not await until(took_over, timeout=30, interval=0.005):
                    raise RuntimeError("the standby never took over")
                to_active = time.monotonic() - killed_at

                async def applied_new(s=standby, seq=after_kill):
                    body = await s.ready(client)
                    return body and body["daemon"]["applied"].get(stream, 0) > seq

                if not await until(applied_new, timeout=30, interval=0.005):
                    raise RuntimeError("the new active instance applied nothing new")
                to_applied = time.monotonic() - killed_at
                result.to_active.append(to_active)
                result.to_applied.append(to_applied)
                on_one(to_active, to_applied)
                active.start()  # the next standby
    finally:
        stop.set()
        await feeder
        for process in processes:
            process.stop()
        await nc.close()
    return result
