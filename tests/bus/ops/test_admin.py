"""Operator controls against a real nats-server: pause, resume, drain, and the record of each."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import nats
import pytest

from bus.client import MeshClient
from bus.drain import EXIT_DRAINED
from bus.errors import MeshError
from bus.ops import admin
from bus.ops.launcher import start_mesh
from bus.ops.processes import supervise, wait_ready
from contracts.admin import Action
from contracts.outcomes import Outcome
from services.security import build as build_security
from tests.bus.ops.test_cli import mesh
from tests.e2e.support import eventually, sample
from tests.fakes.anthropic_server import FakeAnthropic
from tests.settled import consumer_settled

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
BY = "tester@host"


@pytest.fixture
async def client(settings) -> AsyncIterator[MeshClient]:
    async with await MeshClient.connect(settings, name="test-admin") as mesh_client:
        yield mesh_client


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW + timedelta(minutes=30)),
        ("2h", NOW + timedelta(hours=2)),
        ("1d", NOW + timedelta(days=1)),
        ("1h30m", NOW + timedelta(minutes=90)),
        ("2026-11-28T09:00:00Z", datetime(2026, 11, 28, 9, tzinfo=UTC)),
        ("2026-11-28T10:00:00+01:00", datetime(2026, 11, 28, 9, tzinfo=UTC)),
    ],
)
def test_until_takes_a_duration_or_an_rfc3339_time(text, expected):
    """`--until` is a duration from now or a moment with its time zone, always in UTC."""
    assert admin.parse_until(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["soon", "0m", "30x", "2026-11-28T09:00:00", "2020-01-01T00:00:00Z", ""])
def test_until_refuses_what_is_not_a_future_moment_naming_the_option(text):
    """Garbage, a zero duration, a time without a zone or one in the past: one line naming --until."""
    with pytest.raises(MeshError, match="^--until") as raised:
        admin.parse_until(text, now=NOW)
    assert "\n" not in str(raised.value)


def test_an_unknown_agent_is_refused_naming_the_known_ones(settings):
    """Pausing an agent the mesh does not know fails before touching anything."""
    with pytest.raises(MeshError, match="unknown agent 'nobody'; known agents: registry, security"):
        admin.work_consumers(settings, "nobody")


def test_only_the_work_consumers_are_paused(settings):
    """security is paused on its events consumer; its max-deliveries advisory consumer keeps running."""
    assert [f"{c.stream}/{c.durable}" for c in admin.work_consumers(settings, "security")] == [
        f"{settings.subjects.events_stream}/security"
    ]


async def stored(settings, stream: str) -> int:
    nc = await nats.connect(settings.nats_url)
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    finally:
        await nc.close()


async def consumer(settings, durable: str, stream: str | None = None):
    nc = await nats.connect(settings.nats_url)
    try:
        return await nc.jetstream().consumer_info(stream or settings.subjects.events_stream, durable)
    finally:
        await nc.close()


async def test_a_paused_agent_gets_nothing_and_after_resume_gets_all_of_it_once(settings, client):
    """While security is paused, proposals wait in the stream (no review, nothing delivered);
    `consumer_states` says paused; after resume each is reviewed once, none redelivered, and both
    actions are in the history with who and what."""
    agent = build_security(settings)
    async with agent.running():
        nc = client.nc
        paused = await admin.pause(nc, settings, "security", until=None, by=BY)
        assert paused.consumers == [f"{settings.subjects.events_stream}/security"]
        (state,) = await admin.consumer_states(nc.jetstream(), settings, "security")
        assert state.describe() == "paused until resumed"

        proposals = [sample("release_clean", release_id=f"rel-paused-{i}") for i in range(3)]
        for proposal in proposals:
            await client.propose(proposal)
        # the positive signal: the server holds security's pull request and the three proposals
        # at once, and delivers none (a running consumer would hand them over at once)
        info = await eventually(lambda: held_back(settings, "security", 3), timeout=10)
        assert info, "security never asked while paused, so its pause proves nothing"
        assert (info.num_pending, info.num_ack_pending, info.delivered.stream_seq) == (3, 0, 0)
        assert agent.handled == 0

        await admin.resume(nc, settings, "security", by=BY)
        assert await eventually(lambda: _true(agent.handled == 3), timeout=10)
        assert await eventually(lambda: _true_async(stored(settings, settings.subjects.reviews_stream), 3))
        info = await consumer(settings, "security")
        assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (0, 0, 0)
        (state,) = await admin.consumer_states(nc.jetstream(), settings, "security")
        assert state.describe() == "running"

        actions = await admin.history(nc.jetstream(), settings, agent="security")
        assert [(a.action, a.by, a.until) for a in actions] == [(Action.PAUSE, BY, None), (Action.RESUME, BY, None)]
        assert (await admin.last_action(nc.jetstream(), settings, "security")).action == Action.RESUME


async def held_back(settings, durable: str, pending: int):
    """The consumer's info when it holds `pending` messages undelivered while a pull request of
    the service waits on the server: only a paused consumer does that. Else None."""
    info = await consumer(settings, durable)
    waiting = info.num_waiting >= 1 and info.num_pending == pending and info.delivered.stream_seq == 0
    return info if waiting else None


async def _true(value: bool) -> bool:
    return value


async def _true_async(count, want: int) -> bool:
    return await count >= want


async def test_a_timed_pause_ends_by_itself(settings, client):
    """A pause with `until` delivers again once that moment has passed, with no resume."""
    agent = build_security(settings)
    async with agent.running():
        until = datetime.now(UTC) + timedelta(seconds=2)
        await admin.pause(client.nc, settings, "security", until=until, by=BY)
        (state,) = await admin.consumer_states(client.nc.jetstream(), settings, "security")
        assert state.paused_until is not None and abs((state.paused_until - until).total_seconds()) < 0.01
        await client.propose(sample("release_clean", release_id="rel-timed"))
        info = await eventually(lambda: held_back(settings, "security", 1), timeout=10)
        assert info, "the proposal was delivered during the pause"
        assert agent.handled == 0
        assert await eventually(lambda: _true(agent.handled == 1), timeout=10)


async def test_pausing_required_security_blocks_its_rounds_at_the_deadline_and_loses_nothing(
    make_settings, client, tmp_path, service_identities
):
    """With security paused, a clean release (approved when security runs) is BLOCKED at the
    deadline by security's `block` fallback, never approved; after resume, security reviews the
    proposal that waited, so nothing was lost."""
    settings = make_settings(deadline_seconds=3)
    running = await asyncio.to_thread(
        start_mesh,
        settings,
        names=["security", "compliance", "coordinator"],
        home=tmp_path / "mesh",
        embedded=False,
        env={"MESH_DEADLINE_SECONDS": "3"},
        identities=service_identities(settings, ["security", "compliance", "coordinator"]),
    )
    try:
        await admin.pause(client.nc, settings, "security", until=None, by=BY)
        proposal = sample("release_clean", release_id="rel-security-paused")
        await client.propose(proposal)
        outcome = await client.wait_for_outcome(proposal, timeout=15)
        assert outcome is not None and outcome.outcome == Outcome.BLOCKED, outcome
        assert outcome.missing == ["security"] and outcome.fallbacks_applied == {"security": "block"}
        assert [r.reviewer for r in outcome.reviews] == ["compliance"]

        await admin.resume(client.nc, settings, "security", by=BY)
        reviews = settings.subjects.review_submitted("security")
        assert await eventually(lambda: _reviewed_by_security(client, reviews), timeout=30)
        # the review is published before its proposal is acked: wait for the ack, then look
        info = await consumer_settled(settings.nats_url, settings.subjects.events_stream, "security")
        assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (0, 0, 0)
    finally:
        await asyncio.to_thread(running.stop)


async def _reviewed_by_security(client, subject: str) -> bool:
    try:
        msg = await client.js.get_last_msg(client.settings.subjects.reviews_stream, subject)
    except nats.js.errors.NotFoundError:
        return False
    return json.loads(msg.data)["release_id"] == "rel-security-paused"


@pytest.mark.timeout(90)
async def test_drain_finishes_in_flight_work_exits_and_is_not_restarted(
    make_settings, client, tmp_path, service_identities
):
    """A real `mesh run security` drained while slow reviews are in flight answers, finishes and
    acks what it holds (more reviews appear after the drain was asked), leaves the registry and
    exits with EXIT_DRAINED, which `supervise` leaves down; what it never took waits in the
    stream. Started again, it reviews the rest: each of the eight proposals was asked of the
    model once, and nothing was redelivered."""
    settings = make_settings()
    with FakeAnthropic(seed=1) as api:
        api.profile("claude-sonnet-4-6", latency=1.5)
        running = await asyncio.to_thread(
            start_mesh,
            settings,
            names=["security"],
            home=tmp_path / "mesh",
            embedded=False,
            identities=service_identities(settings, ["security"]),
            env={
                "MESH_WORKERS": "4",
                "MESH_ANTHROPIC_API_KEY": "sk-test",
                "MESH_ANTHROPIC_BASE_URL": api.url,
                "MESH_LLM_CHAIN": "claude-sonnet-4-6,offline",
                "MESH_LLM_RPM": "6000",  # no client-side pacing: the four run side by side
                "MESH_LLM_TPM": "100000000",
            },
        )
        (service,) = running.services
        reviews = settings.subjects.reviews_stream
        try:
            for i in range(8):
                await client.propose(sample("release_clean", release_id=f"rel-drain-{i}"))
            assert await eventually(lambda: _true(len(api.requests) >= 1), timeout=10)
            before = await stored(settings, reviews)

            action = await admin.drain(client.nc, settings, "security", by=BY)
            assert action.note.startswith("1 instance: ")
            assert await asyncio.to_thread(service.process.wait, 20) == EXIT_DRAINED
            assert await asyncio.to_thread(supervise, running.services) == []
            assert service.state == "drained" and not service.alive()

            done = await stored(settings, reviews)
            info = await consumer(settings, "security")
            assert done > before  # what was in flight was finished, not dropped
            assert (info.num_ack_pending, info.num_redelivered) == (0, 0)
            assert info.num_pending == 8 - done > 0 and len(api.requests) == done
            instances = await client.js.key_value(settings.subjects.instances_bucket)
            assert [k async for k in _keys(instances)] == []

            service.start()
            assert await asyncio.to_thread(wait_ready, [service], timeout=30) == []
            assert await eventually(lambda: _true_async(stored(settings, reviews), 8), timeout=30)
            info = await consumer(settings, "security")
            assert (info.num_ack_pending, info.num_redelivered, info.num_pending) == (0, 0, 0)
            assert len(api.requests) == 8
        finally:
            await asyncio.to_thread(running.stop)
        history = await admin.history(client.js, settings)
        assert [(a.action, a.agent) for a in history] == [(Action.DRAIN, "security")]


async def _keys(kv):
    try:
        for key in await kv.keys():
            yield key
    except nats.js.errors.NoKeysError:
        return


async def test_the_cli_pauses_resumes_and_shows_state_and_history(settings, client):
    """`mesh admin pause --until 1h` says what it paused and until when; `mesh agents --json` shows
    the agent paused with the action (who, what); `mesh admin history --json` lists it; a bad
    `--until` or an unknown agent is refused in one line."""
    agent = build_security(settings)
    async with agent.running():
        paused = await asyncio.to_thread(mesh, "admin", "pause", "security", "--until", "1h", settings=settings)
        assert paused.returncode == 0, paused.stderr
        assert paused.stdout.startswith(f"paused security: {settings.subjects.events_stream}/security until 20")
        assert "(recorded)" in paused.stdout

        listed = await asyncio.to_thread(mesh, "agents", "--json", settings=settings)
        (row,) = json.loads(listed.stdout)
        assert row["state"].startswith("paused until 20")
        assert row["lastAdminAction"]["action"] == "pause" and "@" in row["lastAdminAction"]["by"]

        resumed = await asyncio.to_thread(mesh, "admin", "resume", "security", settings=settings)
        assert resumed.returncode == 0 and resumed.stdout.startswith("resumed security:")
        history = await asyncio.to_thread(mesh, "admin", "history", "--json", settings=settings)
        assert [row["action"] for row in json.loads(history.stdout)] == ["pause", "resume"]

    bad = await asyncio.to_thread(mesh, "admin", "pause", "security", "--until", "soon", settings=settings)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: --until 'soon'")
    assert len(bad.stderr.strip().splitlines()) == 1
    unknown = await asyncio.to_thread(mesh, "admin", "drain", "nobody", "--timeout", "0.5", settings=settings)
    assert unknown.returncode == 1 and "no instance of 'nobody' answered" in unknown.stderr
