"""One chaos run: start a mesh, propose N releases while killing things, count the outcomes.

The mesh is the real one (`start_mesh`: an embedded nats-server, or a 3-node cluster for
`--kill node`; the security, compliance and coordinator services as processes), configured as
`mesh up` would be, except that the reviewers' model chain is pinned to `offline`. Kills are
SIGKILLs (or, for `--kill freeze`, SIGSTOPs) at seeded random moments while proposals go out,
each followed by a restart (a SIGCONT). The publisher retries each proposal (same
`Nats-Msg-Id`) until NATS acknowledges it, the way a well-behaved producer would. At the end,
every outcome in the outcomes stream is counted, and judged against what its release's content
deserves (`bus.ops.chaos.proposals`, `bus.ops.chaos.tally.judge`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats.errors

from bus.client import MeshClient
from bus.ops.chaos.faults import fault_for
from bus.ops.chaos.proposals import REVIEWERS, deserved, proposals
from bus.ops.chaos.steward import EffectWitness, StewardCheck, check_steward
from bus.ops.chaos.tally import Tally, judge
from bus.ops.dead_letters import read_stream
from bus.ops.launcher import RunningMesh, start_mesh
from bus.ops.settings import MeshSettings
from contracts.outcomes import Outcome, RoundDecided
from contracts.releases import ReleaseProposed
from coordinator.policy import Policy

SERVICES = [*REVIEWERS, "coordinator"]
STEWARDS = 2  # `--kill steward`: an active instance and a standby (or more with --replicas)


@dataclass
class ChaosPlan:
    proposals: int = 100
    kill: str = "reviewer"
    seed: int = 0
    kills: int = 3
    rate: float = 50.0  # proposals per second; 0: all at once (a burst)
    downtime: tuple[float, float] = (0.5, 2.0)  # seconds a killed thing stays down
    freeze: str = "any"  # --kill freeze: reviewer | coordinator | any
    freeze_for: float | None = None  # seconds frozen; default: past the heartbeat TTL and the deadline
    replicas: int = 1  # processes per service
    ack_wait: float = 5.0  # short, so what a killed process held comes back quickly
    deadline: float = 60.0
    timeout: float | None = None  # wait for outcomes; default grows with N
    settle: float = 2.0  # after the last outcome, room for a wrong duplicate to show up
    log_level: str = "INFO"  # of the services

    @property
    def wait_for(self) -> float:
        """Seconds from the first proposal to wait for the last outcome."""
        return self.timeout or self.deadline + 60 + self.proposals / 20 + self.kills * self.downtime[1]

    def resolved(self, settings: MeshSettings) -> ChaosPlan:
        """This plan with a freeze's length filled in (and used as its downtime)."""
        if self.kill != "freeze":
            return self
        hold = self.freeze_for or max(settings.heartbeat_ttl_seconds, self.deadline) + 10
        return dataclasses.replace(self, freeze_for=hold, downtime=(hold, hold))


@dataclass
class Memory:
    before: int = 0
    after: int = 0
    peak: int = 0


@dataclass
class ChaosReport:
    tally: Tally
    kills: list[str] = field(default_factory=list)
    outcomes: list[RoundDecided] = field(default_factory=list)  # of our proposals, as stored
    wrong: list[str] = field(default_factory=list)  # `release_id: why`, one per wrong outcome
    memory: dict[str, Memory] = field(default_factory=dict)
    backlog_max: int = 0  # most proposals waiting in the stream for a reviewer
    ack_pending_max: int = 0  # most proposals a reviewer's consumer held unacked
    max_ack_pending: int = 0
    elapsed: float = 0.0
    steward: StewardCheck | None = None  # `--kill steward`: its state against a replay


def chaos_settings(settings: MeshSettings, plan: ChaosPlan) -> MeshSettings:
    """Your settings, in a namespace of its own; reviewers (who is expected, fallbacks) stay
    as configured, since that is what is under test. The brains are the offline rules: the
    same content, the same verdict, so each outcome can be judged (and no model is paid)."""
    return settings.model_copy(
        update={
            "namespace": "chaos",
            "ack_wait_seconds": plan.ack_wait,
            "deadline_seconds": plan.deadline,
            "llm_chain": "offline",
            "llm_chains": "",
        }
    )


async def run_chaos(
    settings: MeshSettings, plan: ChaosPlan, *, home: Path, say: Callable[[str], None] = print
) -> ChaosReport:
    settings = chaos_settings(settings, plan)
    plan = plan.resolved(settings)
    started = time.monotonic()
    mesh: RunningMesh = await asyncio.to_thread(
        start_mesh,
        settings,
        names=_services(plan),
        home=home,
        embedded=True,
        fresh=True,
        replicas={name: plan.replicas for name in SERVICES} | {"steward": max(plan.replicas, STEWARDS)},
        cluster=3 if plan.kill == "node" else 0,
        env={"MESH_LOG_LEVEL": plan.log_level},
    )
    try:
        say(f"mesh up in {time.monotonic() - started:.1f} s: NATS {mesh.shown_nats_url}; logs in {home / 'logs'}")
        return await _run(mesh, plan, say)
    finally:
        await asyncio.to_thread(mesh.stop)


async def _run(mesh: RunningMesh, plan: ChaosPlan, say: Callable[[str], None]) -> ChaosReport:
    settings = mesh.settings
    rng = random.Random(plan.seed)
    report = ChaosReport(Tally(0, 0, 0, 0, 0), max_ack_pending=settings.max_ack_pending)
    report.memory = {_label(s, mesh): Memory(before=rss(s.pid)) for s in mesh.services}
    fault = fault_for(plan.kill, mesh, freeze=plan.freeze, hold=plan.freeze_for or 0.0)
    made = proposals(plan.proposals, seed=plan.seed)
    truth = deserved(made, policy=Policy.parse(settings.policy))
    client = await MeshClient.connect(settings, name="mesh-chaos")
    witness = EffectWitness()
    if plan.kill == "steward":
        await witness.start(client.nc, settings.subjects.history)
    t0 = time.monotonic()
    chaos: asyncio.Task | None = None
    try:
        window = max(plan.proposals / plan.rate if plan.rate else 10.0, plan.kills * 2.5)
        chaos = asyncio.create_task(_kill_repeatedly(fault, plan, rng, window, t0, report, say)) if fault else None
        proposed = await _propose_all(client, plan, made)
        say(f"proposed {len(proposed)} releases in {time.monotonic() - t0:.1f} s")
        await _wait_for_outcomes(client, plan, len(proposed), report, t0)
        if chaos:
            await chaos
        await asyncio.sleep(plan.settle)
        for service in mesh.services:
            memory = report.memory.setdefault(_label(service, mesh), Memory())
            memory.after, memory.peak = rss(service.pid), peak_rss(service.pid)
        await _count_through_elections(client, proposed, truth, report)
        if plan.kill == "steward":
            report.steward = await check_steward(client.js, settings, witness)
        report.elapsed = time.monotonic() - t0
        return report
    finally:
        if chaos and not chaos.done():  # its `finally` restarts (or thaws) what it took down
            chaos.cancel()
            await asyncio.gather(chaos, return_exceptions=True)
        await client.close()


async def _propose_all(client: MeshClient, plan: ChaosPlan, made: list[ReleaseProposed]) -> dict[str, float]:
    """Send every proposal (retrying through outages); release id → wall time it was first sent."""
    proposed: dict[str, float] = {}
    in_flight = asyncio.Semaphore(64)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def send(proposal: ReleaseProposed) -> None:
        async with in_flight:
            while True:
                try:
                    await client.propose(proposal)
                    return
                except Exception:  # noqa: BLE001 - NATS away or electing a leader: same id, try again
                    await asyncio.sleep(0.25)

    tasks = []
    for i, proposal in enumerate(made):
        if plan.rate:
            await asyncio.sleep(max(0.0, start + i / plan.rate - loop.time()))
        proposed[proposal.release_id] = time.time()
        tasks.append(asyncio.create_task(send(proposal)))
    await asyncio.gather(*tasks)
    return proposed


async def _kill_repeatedly(fault, plan: ChaosPlan, rng: random.Random, window: float, t0: float, report, say) -> None:
    moments = sorted(rng.uniform(0.5, window) for _ in range(plan.kills))
    for moment in moments:
        await asyncio.sleep(max(0.0, t0 + moment - time.monotonic()))
        what = await asyncio.to_thread(fault.kill, rng)
        try:
            down = rng.uniform(*plan.downtime)
            report.kills.append(f"t={time.monotonic() - t0:.1f}s {what}, down {down:.1f} s")
            say(report.kills[-1])
            await asyncio.sleep(down)
        finally:  # also when the run ends early: a SIGSTOP always gets its SIGCONT
            await asyncio.to_thread(fault.restart)


async def _wait_for_outcomes(
    client: MeshClient, plan: ChaosPlan, expected: int, report: ChaosReport, t0: float
) -> None:
    s = client.settings.subjects
    while time.monotonic() - t0 < plan.wait_for:
        try:
            stored = (await client.js.stream_info(s.outcomes_stream)).state.messages
            for reviewer in REVIEWERS:
                info = await client.js.consumer_info(s.events_stream, reviewer)
                report.backlog_max = max(report.backlog_max, info.num_pending)
                report.ack_pending_max = max(report.ack_pending_max, info.num_ack_pending)
        except Exception:  # noqa: BLE001 - NATS is down right now: look again shortly
            stored = 0
        if stored >= expected:
            return
        await asyncio.sleep(0.5)


async def _count_through_elections(
    client: MeshClient,
    proposed: dict[str, float],
    truth: dict[str, Outcome],
    report: ChaosReport,
    *,
    attempts: int = 30,
) -> None:
    """Count, retrying while a restarted node's streams elect leaders (API calls time out then)."""
    for attempt in range(attempts):
        try:
            return await _count(client, proposed, truth, report)
        except (TimeoutError, nats.errors.Error):  # JetStream API errors derive from nats.errors.Error
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


async def _count(
    client: MeshClient, proposed: dict[str, float], truth: dict[str, Outcome], report: ChaosReport
) -> None:
    s = client.settings.subjects
    stored, outcomes, wrong = [], [], []
    async for msg in read_stream(client.js, s.outcomes_stream, s.outcomes):
        outcome = RoundDecided.model_validate_json(msg.data)
        stored.append((outcome.release_id, msg.metadata.timestamp.timestamp()))
        if outcome.release_id not in truth:
            continue  # not ours
        outcomes.append(outcome)
        why = judge(outcome, truth[outcome.release_id])
        if why:
            wrong.append(f"{outcome.release_id}: {why}")
    dead = (await client.js.stream_info(s.dead_letter_stream)).state.messages
    report.tally = Tally.count(proposed, stored, dead_lettered=dead, wrong=len(wrong))
    report.outcomes, report.wrong = outcomes, wrong


def _services(plan: ChaosPlan) -> list[str]:
    return [*SERVICES, "steward"] if plan.kill == "steward" else SERVICES


def _label(service, mesh: RunningMesh) -> str:
    same = [s for s in mesh.services if s.name == service.name]
    return service.name if len(same) == 1 else f"{service.name}#{same.index(service) + 1}"


def _status(pid: int | None, field_name: str) -> int:
    """A `VmRSS`/`VmHWM` figure of a live process, in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, TypeError):
        pass
    return 0


def rss(pid: int | None) -> int:
    return _status(pid, "VmRSS")


def peak_rss(pid: int | None) -> int:
    return _status(pid, "VmHWM")
