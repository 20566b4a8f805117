"""services/digest/job.py against a real nats-server, as the digest's own identity (authorization
on): the figures of a known window of outcomes, dead letters and alerts; delivery to a local
webhook receiver, retried then recorded as failed; every effect once per tick."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import nats
import pytest

from bus.delivery import Delivery
from bus.ops.launcher import provision_mesh
from bus.stream_reads import read_window
from contracts.alerts import AlertKind, AlertSeverity, MeshAlert
from contracts.digests import DeliveryStatus, DigestDelivered, DigestPublished
from contracts.schedules import ScheduleTick
from services.digest.job import DigestJob
from services.digest.service import build
from services.digest.settings import DigestSettings
from tests.services.digest.receiver import WebhookReceiver
from tests.services.digest.samples import dead_letter, outcome, review

WINDOW_SECONDS = 1.5  # the seeding after the "old" outcome must fit in it, on a loaded machine too


@pytest.fixture
async def harness(settings):
    """The test's own connection (it may publish anything), with the mesh provisioned."""
    await provision_mesh(settings, names=["digest"])
    nc = await nats.connect(settings.nats_url)
    yield nc
    await nc.close()


@pytest.fixture
async def digest_for(settings, service_identities):
    """`await digest_for(**settings)`: the digest agent running as its own identity, and a job
    on its connection; stopped after."""
    identities = service_identities(settings, ["digest"])
    running = []

    async def start(**overrides) -> DigestJob:
        values = {"nats_url": settings.nats_url, "namespace": settings.namespace, "home": settings.home}
        if identities:
            values["nats_credentials"] = identities.credential("digest")
        own = DigestSettings(_env_file=None, digest_window_seconds=WINDOW_SECONDS, **values, **overrides)
        agent = build(own)
        context = agent.running()
        await context.__aenter__()
        running.append(context)
        job = DigestJob(settings=own, connection=lambda: agent.broker.connection, sleep=no_wait)
        job.agent = agent
        return job

    yield start
    for context in running:
        await context.__aexit__(None, None, None)


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


def delivery_of(job: DigestJob) -> Delivery:
    agent = job.agent
    return Delivery(publisher=agent.publisher.publish, message=None, log=agent.log)


def tick(end: datetime, tick_id: str = "digest:1", coalesced: int = 0) -> ScheduleTick:
    return ScheduleTick(
        agent="digest", schedule="digest", tick_id=tick_id, scheduled_for=end, fired_at=end, coalesced=coalesced
    )


async def seed(nc, settings) -> datetime:
    """An outcome before the window, then the window's: three outcomes, three dead letters, two
    alerts. Returns the window's end."""
    s, js = settings.subjects, nc.jetstream()

    async def put(subject: str, model, msg_id: str) -> None:
        await js.publish(subject, model.model_dump_json().encode(), headers={"Nats-Msg-Id": msg_id})

    await put(s.round_decided("old", "d"), outcome("old", "blocked", review("security", "OLD001")), "o:old")
    await asyncio.sleep(WINDOW_SECONDS + 0.1)
    await put(
        s.round_decided("rel-1", "d"), outcome("rel-1", "approved", review("security", cost=0.02, tokens=900)), "o1"
    )
    blocked = outcome("rel-2", "blocked", review("security", "SEC001", severity="critical"), review("compliance"))
    await put(s.round_decided("rel-2", "d"), blocked, "o2")
    escalated = outcome("rel-3", "escalated", review("security", "SEC001"), fallbacks={"compliance": "escalate"})
    await put(s.round_decided("rel-3", "d"), escalated, "o3")
    for i, service in enumerate(["coordinator", "coordinator", "security"]):
        await put(s.dead_letter(service), dead_letter(service, seq=i), f"dl{i}")
    for i in range(2):
        alert = MeshAlert(kind=AlertKind.REVIEWER_DOWN, severity=AlertSeverity.CRITICAL, detail="down")
        await put(s.alert(alert.kind.value), alert, f"a{i}")
    await asyncio.sleep(0.01)
    return datetime.now(UTC)


async def stored(nc, settings, model, subject):
    s = settings.subjects
    found = await read_window(nc, s.digests_stream, subject, start=datetime.now(UTC) - timedelta(minutes=5))
    return [model.model_validate_json(m.data) for m in found]


async def test_a_tick_publishes_the_windows_digest_and_delivers_it_once(harness, settings, digest_for):
    """The digest counts only what the window holds; the webhook gets one Slack body; the digest and
    its delivery record are stored once; the same tick again returns the same result and does
    nothing more."""
    end = await seed(harness, settings)
    with WebhookReceiver() as hook:
        job = await digest_for(digest_webhook_url=hook.url)

        first = await job.run(tick(end), delivery_of(job))
        again = await job.run(tick(end), delivery_of(job))

    assert first == again == "delivered after 1 attempt"
    (body,) = hook.bodies
    assert body["text"].startswith("Mesh digest") and "3 releases (1 approved, 1 blocked, 1 escalated)" in body["text"]
    s = settings.subjects
    (digest,) = await stored(harness, settings, DigestPublished, s.digest_published)
    assert digest.outcomes == {"approved": 1, "blocked": 1, "escalated": 1} and digest.releases == 3
    assert [(f.rule, f.releases) for f in digest.top_findings] == [("SEC001", 2)]
    assert digest.escalated == ["rel-3"] and digest.fallback_rounds == 1
    assert digest.dead_letters == {"coordinator": 2, "security": 1} and digest.alerts == {"reviewer_down": 2}
    assert [(c.agent, c.reviews, c.tokens, c.cost_usd) for c in digest.costs] == [
        ("security", 3, 900, 0.02),
        ("compliance", 1, 0, 0.0),
    ]
    assert digest.window_end == end and digest.summary == ""
    (record,) = await stored(harness, settings, DigestDelivered, s.digests_delivered)
    assert (record.status, record.attempts, record.http_status) == (DeliveryStatus.DELIVERED, 1, 200)
    assert record.tick_id == "digest:1" and record.digest_event_id == digest.event_id


async def test_a_failing_webhook_is_retried_then_recorded_failed_and_the_tick_still_done_once(
    harness, settings, digest_for
):
    """Always 503: exactly MESH_DIGEST_WEBHOOK_ATTEMPTS posts, then `failed after 3 attempts`
    recorded and returned; the tick delivered again posts nothing more."""
    end = await seed(harness, settings)
    with WebhookReceiver(always=503) as hook:
        job = await digest_for(
            digest_webhook_url=hook.url, digest_webhook_attempts=3, digest_webhook_backoff_seconds=0.01
        )

        first = await job.run(tick(end), delivery_of(job))
        again = await job.run(tick(end), delivery_of(job))
        posts = len(hook.bodies)

    assert first == again == "failed after 3 attempts: the webhook answered HTTP 503"
    assert posts == 3
    (record,) = await stored(harness, settings, DigestDelivered, settings.subjects.digests_delivered)
    assert (record.status, record.attempts, record.http_status) == (DeliveryStatus.FAILED, 3, 503)
    assert len(await stored(harness, settings, DigestPublished, settings.subjects.digest_published)) == 1


async def test_without_a_webhook_the_digest_is_published_and_delivery_skipped(harness, settings, digest_for):
    """No MESH_DIGEST_WEBHOOK_URL: published on the bus all the same, the delivery recorded as skipped."""
    end = await seed(harness, settings)
    job = await digest_for()

    result = await job.run(tick(end, "digest:2"), delivery_of(job))

    assert result == "skipped: MESH_DIGEST_WEBHOOK_URL is not set"
    (record,) = await stored(harness, settings, DigestDelivered, settings.subjects.digests_delivered)
    assert record.status is DeliveryStatus.SKIPPED and record.attempts == 0


async def test_a_second_tick_for_a_window_already_published_publishes_no_second_digest(harness, settings, digest_for):
    """Another tick id for the same window (a manual trigger at the same moment) finds the digest
    published and delivers that one: one digest, two delivery records."""
    end = await seed(harness, settings)
    with WebhookReceiver() as hook:
        job = await digest_for(digest_webhook_url=hook.url)
        await job.run(tick(end, "digest:a"), delivery_of(job))
        await job.run(tick(end, "digest:b"), delivery_of(job))

    s = settings.subjects
    assert len(await stored(harness, settings, DigestPublished, s.digest_published)) == 1
    assert len(await stored(harness, settings, DigestDelivered, s.digests_delivered)) == 2
    assert hook.bodies[0] == hook.bodies[1]


async def test_a_tick_standing_for_missed_firings_covers_their_windows_too(harness, settings, digest_for):
    """Two firings missed while the digest was down, folded into this tick: its digest covers three
    windows, so the outcome before the last window is counted too."""
    end = await seed(harness, settings)
    job = await digest_for()

    await job.run(tick(end, "digest:late", coalesced=2), delivery_of(job))

    (digest,) = await stored(harness, settings, DigestPublished, settings.subjects.digest_published)
    assert digest.releases == 4 and digest.window_end - digest.window_start == timedelta(seconds=3 * WINDOW_SECONDS)
