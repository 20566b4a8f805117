"""services/watch/job.py against a real nats-server, as the watch's own identity (authorization
on): what it reads from streams and the registry, the alerts it raises (once per check), and the
next check it proposes — by rule, or by a model through the fake Anthropic API."""

from __future__ import annotations

import json
from datetime import timedelta

import nats
import pytest

from bus.delivery import Delivery
from bus.ops.launcher import provision_mesh
from bus.presence import instance_key
from bus.stream_reads import read_window
from contracts.alerts import AlertKind, AlertSeverity, MeshAlert
from contracts.cards import AgentInstance
from contracts.envelope import utc_now
from contracts.schedules import NextRun, ScheduleTick
from services.index import SERVICES
from services.watch.advisor import SCHEDULE_NEXT_CHECK, make_advisor
from services.watch.job import WatchJob
from services.watch.service import build
from services.watch.settings import WatchSettings
from tests.fakes.anthropic_server import tool_call
from tests.services.digest.samples import dead_letter, outcome, review


@pytest.fixture
async def harness(settings):
    """The test's own connection (it may publish anything), with the mesh provisioned."""
    await provision_mesh(settings, names=["watch"])
    nc = await nats.connect(settings.nats_url)
    yield nc
    await nc.close()


@pytest.fixture
async def watch_for(settings, service_identities):
    """`await watch_for(clock=…, advisor=…, **settings)`: the watch agent running as its own
    identity (its first check far away), and a job on its connection; stopped after."""
    identities = service_identities(settings, ["watch"])
    running = []

    async def start(*, clock=utc_now, advisor=None, **overrides) -> WatchJob:
        values = {"nats_url": settings.nats_url, "namespace": settings.namespace, "home": settings.home}
        if identities:
            values["nats_credentials"] = identities.credential("watch")
        own = WatchSettings(_env_file=None, watch_first_check_seconds=3600, **values, **overrides)
        agent = build(own)
        context = agent.running()
        await context.__aenter__()
        running.append(context)
        job = WatchJob(settings=own, connection=lambda: agent.broker.connection, clock=clock, advisor=advisor)
        job.delivery = Delivery(publisher=agent.publisher.publish, message=None, log=agent.log)
        return job

    yield start
    for context in running:
        await context.__aexit__(None, None, None)


def tick(tick_id: str) -> ScheduleTick:
    now = utc_now()
    return ScheduleTick(agent="watch", schedule="check", tick_id=tick_id, scheduled_for=now, fired_at=now)


async def put(nc, subject: str, model, msg_id: str) -> None:
    await nc.jetstream().publish(subject, model.model_dump_json().encode(), headers={"Nats-Msg-Id": msg_id})


async def live(nc, settings, *names: str) -> None:
    """Every reviewer's card in the registry (security, compliance, and a discovered `privacy`),
    and a live instance of each of `names`."""
    js = nc.jetstream()
    cards = await js.key_value(settings.subjects.agents_bucket)
    instances = await js.key_value(settings.subjects.instances_bucket)
    security = SERVICES["security"].load().build(settings).card
    for name in ("security", "compliance", "privacy"):
        await cards.put(name, json.dumps(security.model_copy(update={"name": name}).to_wire()).encode())
    for name in names:
        now = utc_now()
        record = AgentInstance(agent=name, instance_id="i1", url="http://x", started_at=now, heartbeat_at=now)
        await instances.put(instance_key(name, "i1"), record.model_dump_json(by_alias=True).encode())


async def alerts(nc, settings) -> list[MeshAlert]:
    s = settings.subjects
    found = await read_window(nc, s.alerts_stream, s.alerts, start=utc_now() - timedelta(minutes=5))
    return [MeshAlert.model_validate_json(m.data) for m in found]


async def test_a_calm_mesh_raises_nothing_and_the_watch_backs_off(harness, settings, watch_for):
    """All reviewers live, nothing dead-lettered, escalated or fallen back: no alert; the next
    check comes after as long as the mesh has been calm (an hour later: in an hour)."""
    await live(harness, settings, "security", "compliance", "privacy")
    job = await watch_for(clock=lambda: utc_now() + timedelta(hours=1))

    proposed = await job.run(tick("check:1"), job.delivery)

    assert await alerts(harness, settings) == []
    assert isinstance(proposed, NextRun) and proposed.at is None
    assert timedelta(minutes=59) < proposed.after <= timedelta(hours=1, minutes=1)
    assert proposed.reason.startswith("rule: calm for 1 h")


async def test_each_problem_is_one_alert_raised_once_per_check_and_the_next_check_comes_soon(
    harness, settings, watch_for
):
    """Two dead letters, three escalations, a fallback, `security` (required) and `privacy` down:
    four alerts, `reviewer_down` critical, so the next check is at the minimum; the same check
    again adds no alert."""
    s = settings.subjects
    await live(harness, settings, "compliance")
    for i, service in enumerate(["coordinator", "gateway"]):
        await put(harness, s.dead_letter(service), dead_letter(service, seq=i), f"dl{i}")
    for i in range(3):
        await put(harness, s.round_decided(f"rel-{i}", "d"), outcome(f"rel-{i}", "escalated"), f"esc{i}")
    fell_back = outcome("rel-9", "blocked", review("compliance"), fallbacks={"security": "block"})
    await put(harness, s.round_decided("rel-9", "d"), fell_back, "fb")
    job = await watch_for()

    proposed = await job.run(tick("check:1"), job.delivery)
    await job.run(tick("check:1"), job.delivery)

    raised = {a.kind: a for a in await alerts(harness, settings)}
    assert len(await alerts(harness, settings)) == 4
    assert raised[AlertKind.REVIEWER_DOWN].severity is AlertSeverity.CRITICAL
    assert "security" in raised[AlertKind.REVIEWER_DOWN].detail and "privacy" in raised[AlertKind.REVIEWER_DOWN].detail
    assert raised[AlertKind.DEAD_LETTERS].counts == {"coordinator": 1, "gateway": 1, "total": 2}
    assert raised[AlertKind.ESCALATION_BACKLOG].counts["escalated"] == 3
    assert raised[AlertKind.FALLBACK_ROUNDS].counts == {"security": 1, "total": 1}
    assert all(a.check_id == "check:1" and a.producer == "watch" for a in raised.values())
    assert proposed.after == timedelta(seconds=30) and proposed.reason.startswith("rule: critical: reviewer_down")


async def test_dead_letters_are_counted_once_across_checks(harness, settings, watch_for):
    """A later check counts only the dead letters stored after those the last alert counted,
    whichever replica or restarted process runs it: the count lives in the alert, on the bus."""
    s = settings.subjects
    await live(harness, settings, "security", "compliance", "privacy")
    await put(harness, s.dead_letter("coordinator"), dead_letter("coordinator", 1), "dl1")
    first = await watch_for()
    await first.run(tick("check:1"), first.delivery)
    await put(harness, s.dead_letter("security"), dead_letter("security", 2), "dl2")
    restarted = await watch_for()  # another process: nothing carried over in memory

    await restarted.run(tick("check:2"), restarted.delivery)
    await restarted.run(tick("check:3"), restarted.delivery)

    counted = [a.counts for a in await alerts(harness, settings) if a.kind is AlertKind.DEAD_LETTERS]
    assert counted == [{"coordinator": 1, "total": 1}, {"security": 1, "total": 1}]


async def test_with_a_model_the_models_proposal_is_the_next_run_as_it_is(harness, settings, watch_for, api, llm):
    """A fake model proposing 1 s, then 10 days, through `schedule_next_check`: the job returns
    exactly those (the runtime clamps them to [min, max] and records it)."""
    await live(harness, settings, "security", "compliance", "privacy")
    model_settings = WatchSettings(
        _env_file=None, anthropic_api_key="sk-test", anthropic_base_url=api.url, llm_chain="claude-sonnet-4-6,offline"
    )
    job = await watch_for(advisor=make_advisor(model_settings, llm=llm))
    api.reply(
        tool_call({"delay_seconds": 1, "reason": "something moved"}, name=SCHEDULE_NEXT_CHECK),
        tool_call({"delay_seconds": 10 * 24 * 3600, "reason": "all quiet"}, name=SCHEDULE_NEXT_CHECK),
    )

    soon = await job.run(tick("check:1"), job.delivery)
    late = await job.run(tick("check:2"), job.delivery)

    assert soon == NextRun(after=timedelta(seconds=1), reason="claude-sonnet-4-6: something moved")
    assert late == NextRun(after=timedelta(days=10), reason="claude-sonnet-4-6: all quiet")
    assert '"calm_for_seconds"' in api.requests[0].body["messages"][0]["content"]


async def test_an_unreadable_registry_reports_no_reviewer_down(harness, settings, watch_for, monkeypatch):
    """If the registry cannot be read, the check goes on and calls nobody down."""
    import services.watch.observe as observe

    async def broken(*args, **kwargs):
        raise TimeoutError("no answer")

    monkeypatch.setattr(observe.AgentDirectory, "watch", broken)
    job = await watch_for()

    await job.run(tick("check:1"), job.delivery)

    assert [a.kind for a in await alerts(harness, settings)] == []
