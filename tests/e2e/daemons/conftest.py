"""Fixtures of the daemon tests: instances of the toy daemon (bus/ops/bench/tally.py) as real
processes, each connecting with the `tally` identity and only the permissions it declares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import pytest

from bus.ops.bench.daemon import (
    TallyProcess,
    active_one,
    checkpointed,
    provisioned,
    stored_added,
    stored_reached,
    tally_env,
    until,
)
from bus.ops.bench.tally import TallySettings, build, replay
from bus.ops.identities import generate


@dataclass
class Tallies:
    settings: TallySettings
    env: dict[str, str]
    folder: Path
    processes: list[TallyProcess] = field(default_factory=list)

    def start(self, n: int) -> list[TallyProcess]:
        for _ in range(n):
            index = len(self.processes)
            self.processes.append(TallyProcess(self.env, log_path=self.folder / f"tally-{index}.log").start())
        return self.processes[-n:]

    def logs(self) -> str:
        return "\n".join(p.log_path.read_text() for p in self.processes if p.log_path and p.log_path.exists())

    async def active(self, client: httpx.AsyncClient, timeout: float = 20.0) -> TallyProcess | None:
        return await until(lambda: active_one(client, self.processes), timeout=timeout)

    async def settled(self, client: httpx.AsyncClient, js, *, last: int, timeout: float = 30.0) -> TallyProcess:
        """The active instance once its checkpoint covers every event up to `last`."""
        stream = self.settings.subjects.events_stream

        async def done():
            active = await active_one(client, self.processes)
            _, positions = await checkpointed(js, self.settings)
            return active if active and positions.get(stream, 0) >= last else None

        active = await until(done, timeout=timeout, interval=0.1)
        assert active is not None, f"no instance caught up with seq {last}:\n{self.logs()[-3000:]}"
        return active

    async def expected(self, js):
        """The state and effects a replay of the stream gives."""
        events = await stored_added(js, self.settings)
        return replay(events, namespace=self.settings.namespace, stream=self.settings.subjects.events_stream)

    async def stored_effect_ids(self, js) -> list[str]:
        return [msg_id for msg_id, _ in await stored_reached(js, self.settings)]


@pytest.fixture
async def tallies(make_settings, gatekeeper, tmp_path):
    """`tallies(**env)`: a provisioned namespace and a way to start tally processes in it."""
    made: list[Tallies] = []

    async def make(**env: str) -> Tallies:
        base = make_settings()
        settings = TallySettings(**{**base.model_dump(), **{k.lower(): v for k, v in env.items()}})
        await provisioned(settings)
        extra = {f"MESH_{k.upper()}": str(v) for k, v in env.items()}
        if gatekeeper is not None:
            permissions = build(settings).permissions
            identities = gatekeeper.admit(generate(settings, tmp_path / "ids", services={"tally": permissions}))
            extra["MESH_NATS_CREDENTIALS"] = str(identities.credential("tally"))
        made.append(Tallies(settings, tally_env(settings, **extra), tmp_path))
        return made[-1]

    yield make
    for group in made:
        for process in group.processes:
            process.stop(timeout=5)


@pytest.fixture
async def harness(settings):
    """A client of the test's server without an identity (the harness is not under test)."""
    nc = await nats.connect(settings.nats_url)
    yield nc
    await nc.close()
