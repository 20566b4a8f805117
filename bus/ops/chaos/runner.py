"""One chaos run: start a mesh, propose N releases while killing things, count the outcomes.

The mesh is the real one (`start_mesh`: an embedded nats-server, or a 3-node cluster for
`--kill node`; the security, compliance and coordinator services as processes), configured as
`mesh up` would be, except that the reviewers' model chain is pinned to `offline`. Kills are
SIGKILLs (or, for `--kill freeze`, SIGSTOPs) while work is in flight — each after a seeded
number of proposals has been acknowledged and while rounds are open (`bus.ops.chaos.schedule`),
counting how many were (`bus.ops.chaos.strikes`) — each followed by a restart (a SIGCONT). The
publisher retries each proposal (same `Nats-Msg-Id`) until NATS acknowledges it, the way a
well-behaved producer would. A core-NATS subscriber hears every outcome publish during the run
(`bus.ops.chaos.progress`). At the end, every outcome in the outcomes stream is counted, and
judged against what its release's content deserves (`bus.ops.chaos.proposals`,
`bus.ops.chaos.tally.judge`); duplicates are counted in the stream, in what the subscriber
heard (less the copies of publishes the stream never acknowledged, which the coordinator logs
and sends again) and in what the coordinators logged as published.
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
from bus.ops.chaos.memory import Memory, peak_rss, rss
from bus.ops.chaos.progress import Progress
from bus.ops.chaos.proposals import REVIEWERS, deserved, proposals
from bus.ops.chaos.schedule import listen_until
from bus.ops.chaos.steward import EffectWitness, StewardCheck, check_steward
from bus.ops.chaos.strikes import Kill, kills_line, strike_in_flight, unfinished_rounds
from bus.ops.chaos.tally import PUBLISHED, UNACKNOWLEDGED, Tally, judge, logged
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
    kills: int = 3  # each strikes while rounds are open (see bus/ops/chaos/schedule.py)
    rate: float = 50.0  # proposals per second; 0: all at once (a burst)
    downtime: tuple[float, float] = (0.5, 2.0)  # seconds a killed thing stays down
    freeze: str = "any"  # --kill freeze: reviewer | coordinator | any
    freeze_for: float | None = None  # seconds frozen; default: past the heartbeat TTL and the deadline
    replicas: int = 1  # processes per service
    ack_wait: float = 5.0  # short, so what a killed process held comes back quickly
    deadline: float = 60.0
    timeout: float | None = None  # wait for outcomes; default grows with N
    settle: float = 2.0  # after the last outcome, room for a wrong duplicate to show up
    through_deadlines: bool = False  # and listen until every round's deadline has fired
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
class ChaosReport:
    tally: Tally
    kills: list[Kill] = field(default_factory=list)  # in order; each says how many rounds were open
    outcomes: list[RoundDecided] = field(default_factory=list)  # of our proposals, as stored
    wrong: list[str] = field(default_factory=list)  # `release_id: why`, one per wrong outcome
    memory: dict[str, Memory] = field(default_factory=dict)
    backlog_max: int = 0  # most proposals waiting in the stream for a reviewer
    ack_pending_max: int = 0  # most proposals a reviewer's consumer held unacked
    max_ack_pending: int = 0
    elapsed: float = 0.0
    steward: StewardCheck | None = None  # `--kill steward`: its state against a replay

    @property
    def idle_kills(self) -> list[Kill]:
        """Kills that hit nothing: no round open, or nothing to kill."""
        return [kill for kill in self.kills if kill.idle]

    def kills_line(self) -> str:
        """`kills=2 idle=0 open_rounds=3,1 open_in_kv=2,-` (see `strikes.kills_line`)."""
        return kills_line(self.kills)


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
    progress = Progress(total=len(made))
    await progress.listen(client.nc, settings.subjects.outcomes)
    t0 = time.monotonic()
    chaos: asyncio.Task | None = None
    try:
        if fault:
            chaos = asyncio.create_task(
                strike_in_flight(
                    fault,
                    kills=plan.kills,
                    downtime=plan.downtime,
                    rng=rng,
                    progress=progress,
                    t0=t0,
                    struck=report.kills,
                    say=say,
                    # With NATS (or a node) down there is no KV to read; a read just before would delay the kill.
                    open_in_kv=None
                    if plan.kill in ("nats", "node")
                    else lambda: unfinished_rounds(client.js, settings.subjects.rounds_bucket),
                )
            )
        proposed = await _propose_all(client, plan, made, progress)
        say(f"proposed {len(proposed)} releases in {time.monotonic() - t0:.1f} s")
        await _wait_for_outcomes(client, plan, len(proposed), report, t0)
        progress.end()  # a kill still waiting strikes now: an idle one
        if chaos:
            await chaos
        until = listen_until(
            progress.last_heard or time.monotonic(),
            settle=plan.settle,
            deadline=plan.deadline,
            through_deadlines=plan.through_deadlines,
            last_restart=max((t0 + k.back for k in report.kills if k.back is not None), default=None),
        )
        if plan.through_deadlines:
            say(f"listening {max(until - time.monotonic(), 0):.1f} s more, until every round's deadline has fired")
        await asyncio.sleep(max(until - time.monotonic(), 0.0))
        for service in mesh.services:
            memory = report.memory.setdefault(_label(service, mesh), Memory())
            memory.after, memory.peak = rss(service.pid), peak_rss(service.pid)
        logs = _logged(mesh, plan)
        await _count_through_elections(client, proposed, truth, report, heard=progress.heard, logs=logs)
        if plan.kill == "steward":
            report.steward = await check_steward(client.js, settings, witness)
        report.elapsed = time.monotonic() - t0
        return report
    finally:
        if chaos and not chaos.done():  # its `finally` restarts (or thaws) what it took down
            chaos.cancel()
            await asyncio.gather(chaos, return_exceptions=True)
        await client.close()


async def _propose_all(
    client: MeshClient, plan: ChaosPlan, made: list[ReleaseProposed], progress: Progress
) -> dict[str, float]:
    """Send every proposal (retrying through outages), telling `progress` of each PubAck;
    release id → wall time it was first sent."""
    proposed: dict[str, float] = {}
    in_flight = asyncio.Semaphore(64)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def send(proposal: ReleaseProposed) -> None:
        async with in_flight:
            while True:
                try:
                    await client.propose(proposal)
                    progress.proposal_published(proposal.release_id)
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
    heard: dict[str, int],
    logs: CoordinatorLogs | None,
    attempts: int = 30,
) -> None:
    """Count, retrying while a restarted node's streams elect leaders (API calls time out then)."""
    for attempt in range(attempts):
        try:
            return await _count(client, proposed, truth, report, heard=heard, logs=logs)
        except (TimeoutError, nats.errors.Error):  # JetStream API errors derive from nats.errors.Error
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


async def _count(
    client: MeshClient,
    proposed: dict[str, float],
    truth: dict[str, Outcome],
    report: ChaosReport,
    *,
    heard: dict[str, int],
    logs: CoordinatorLogs | None,
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
    report.tally = Tally.count(
        proposed,
        stored,
        dead_lettered=dead,
        wrong=len(wrong),
        heard=dict(heard),
        published=logs.published if logs else None,
        unacknowledged=logs.unacknowledged if logs else None,
    )
    report.outcomes, report.wrong = outcomes, wrong


@dataclass
class CoordinatorLogs:
    """Outcome publishes per release as the coordinators logged them: acknowledged by the stream,
    and not (those are sent again)."""

    published: dict[str, int] = field(default_factory=dict)
    unacknowledged: dict[str, int] = field(default_factory=dict)


def _logged(mesh: RunningMesh, plan: ChaosPlan) -> CoordinatorLogs | None:
    """What the coordinators logged of their outcome publishes (every incarnation: a restart
    appends to the same log); None when their log level hides the `info` lines."""
    if plan.log_level.upper() not in ("DEBUG", "INFO"):
        return None
    paths = {s.log_path for s in mesh.services if s.name == "coordinator" and s.log_path}
    found = CoordinatorLogs()
    for path in paths:
        with open(path, errors="replace") as f:
            lines = f.readlines()
        for event, counts in ((PUBLISHED, found.published), (UNACKNOWLEDGED, found.unacknowledged)):
            for release_id, n in logged(lines, event).items():
                counts[release_id] = counts.get(release_id, 0) + n
    return found


def _services(plan: ChaosPlan) -> list[str]:
    return [*SERVICES, "steward"] if plan.kill == "steward" else SERVICES


def _label(service, mesh: RunningMesh) -> str:
    same = [s for s in mesh.services if s.name == service.name]
    return service.name if len(same) == 1 else f"{service.name}#{same.index(service) + 1}"
