"""Helpers for the scheduling tests: the ticker's settings and identity, its log, and what the
schedules stream holds."""

from __future__ import annotations

import asyncio
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
from nats.js.errors import NotFoundError

from bus.ops.embedded import free_port
from bus.ops.identities import generate
from bus.ops.processes import child_env, spawn
from bus.provision import provision
from bus.scheduling.specs import tick_from
from contracts.schedules import ScheduleDefinition, ScheduleTick
from tests.bus.scheduling.ticker import TickerSettings, build


def ticker_settings(settings, log: Path, **overrides) -> TickerSettings:
    """The test's settings for the ticker (its own namespace), redelivering after 2 s."""
    values = {
        "nats_url": settings.nats_url,
        "namespace": settings.namespace,
        "home": settings.home,
        "ticker_log": log,
        "ack_wait_seconds": 2.0,
        "log_format": "json",
        **overrides,
    }
    return TickerSettings(**values)


def admit_ticker(gatekeeper, settings: TickerSettings, folder: Path) -> tuple[TickerSettings, Path | None]:
    """Give the ticker its own identity (only what it declares), admitted by the shared server;
    returns its settings with that credential, and the operator's credential."""
    if gatekeeper is None:
        return settings, None
    everything = settings.model_copy(update={"ticker_every": True, "ticker_check": True})
    identities = gatekeeper.admit(
        generate(
            settings, folder / f"identities-{uuid.uuid4().hex[:6]}", services={"ticker": build(everything).permissions}
        )
    )
    return settings.model_copy(update={"nats_credentials": identities.credential("ticker")}), identities.credential(
        "operator"
    )


async def provision_for(settings: TickerSettings, **options) -> None:
    """Streams, buckets and the ticker's consumers, as `mesh provision` makes them (as the harness)."""
    nc = await nats.connect(settings.nats_url)
    try:
        await provision(nc.jetstream(), settings, build(settings).consumers, reconcile=True, **options)
    finally:
        await nc.close()


@dataclass(frozen=True)
class Line:
    what: str  # start | done
    tick_id: str
    coalesced: int
    manual: bool
    pid: int


def lines(log: Path) -> list[Line]:
    found = []
    for raw in log.read_text().splitlines() if log.exists() else []:
        parts = raw.split()
        if parts[0] == "start":
            found.append(Line("start", parts[1], 0, False, int(parts[2])))
        else:
            found.append(Line("done", parts[1], int(parts[2]), parts[3] == "True", int(parts[4])))
    return found


def done(log: Path, schedule: str = "every") -> list[Line]:
    return [line for line in lines(log) if line.what == "done" and line.tick_id.startswith(f"{schedule}:")]


async def until(check, *, timeout: float = 15.0, interval: float = 0.05):
    """Poll `check` (sync or async) until it returns something truthy; fail after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout:g} s: {getattr(check, '__doc__', None) or check}")
        await asyncio.sleep(interval)


async def fired(js, settings, schedule: str, agent: str = "ticker") -> list[tuple[int, ScheduleTick]]:
    """Every tick the stream holds for a schedule, oldest first: (stream sequence, tick)."""
    s = settings.subjects
    subject, seq, found = s.schedule_tick(agent, schedule), 1, []
    while True:
        try:
            msg = await js.get_msg(s.schedules_stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return found
        found.append((msg.seq, tick_from(ScheduleDefinition.model_validate_json(msg.data), fired_at=msg.time)))
        seq = msg.seq + 1


async def definitions(js, settings, schedule: str, agent: str = "ticker") -> list:
    """The schedule messages on a schedule subject (the server keeps at most one)."""
    s = settings.subjects
    subject = s.schedule_definition(agent, schedule)
    info = await js.stream_info(s.schedules_stream, subjects_filter=subject)
    if not (info.state.subjects or {}).get(subject):
        return []
    return [await js.get_last_msg(s.schedules_stream, subject)]


@dataclass
class TickerProcess:
    """`python -m tests.bus.scheduling.ticker` as a deployed replica runs, with its own identity."""

    settings: TickerSettings
    log_path: Path
    port: int = 0
    process: object = None

    def start(self) -> TickerProcess:
        self.port = free_port()
        env = child_env(**{**self.settings.as_env(), "MESH_HTTP_PORT": str(self.port)})
        if self.settings.nats_credentials:
            env["MESH_NATS_CREDENTIALS"] = str(self.settings.nats_credentials)
        self.process = spawn([sys.executable, "-m", "tests.bus.scheduling.ticker"], env=env, log_path=self.log_path)
        return self

    async def ready(self, timeout: float = 20.0) -> None:
        async def answers() -> bool:
            try:
                async with httpx.AsyncClient(timeout=0.5) as client:
                    return (await client.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await until(answers, timeout=timeout, interval=0.1)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except Exception:  # noqa: BLE001 - it would not stop: make it
                self.process.kill()
