"""The digest and the watch as real processes with their own identities, driven by the NATS
server's schedules through the runtime (bus/scheduling): the digest posts each tick's digest to
a local webhook receiver and records the result; the watch's model-proposed next checks (1 s and
10 days) are clamped to its bounds, and the clamp recorded."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import nats
import pytest

from bus.stream_reads import read_window
from contracts.digests import DeliveryStatus, DigestDelivered
from contracts.envelope import utc_now
from contracts.schedules import ScheduleResult
from services.watch.advisor import SCHEDULE_NEXT_CHECK
from tests.e2e.support import eventually, mesh_settled
from tests.fakes.anthropic_server import FakeAnthropic, tool_call
from tests.services.digest.receiver import WebhookReceiver
from tests.services.digest.samples import outcome, review


@pytest.fixture
async def harness(settings):
    nc = await nats.connect(settings.nats_url)
    yield nc
    await nc.close()


async def last_result(nc, settings, agent: str, schedule: str) -> ScheduleResult | None:
    """What the runtime recorded for the schedule's last handled tick (`mesh schedule show`)."""
    kv = await nc.jetstream().key_value(settings.subjects.schedules_bucket)
    try:
        entry = await kv.get(f"last.{agent}.{schedule}")
    except Exception:  # noqa: BLE001 - not there yet
        return None
    return ScheduleResult.model_validate_json(entry.value)


async def delivery_records(nc, settings) -> list[DigestDelivered]:
    s = settings.subjects
    found = await read_window(nc, s.digests_stream, s.digests_delivered, start=utc_now() - timedelta(minutes=5))
    return [DigestDelivered.model_validate_json(m.data) for m in found]


async def test_each_digest_tick_posts_its_digest_and_records_the_result(harness, make_settings, launch, monkeypatch):
    """Every second a tick: the receiver gets a Slack body with the window's figures, the tick's
    result is `delivered after 1 attempt`, one delivery record per tick."""
    digest_environment(monkeypatch, every="1s")
    body = outcome("rel-1", "blocked", review("security", "SEC001", severity="critical"))
    with WebhookReceiver() as hook:
        monkeypatch.setenv("MESH_DIGEST_WEBHOOK_URL", hook.url)
        settings = make_settings()  # read now: its digest settings are what provisioning and the service use
        s = settings.subjects
        await asyncio.to_thread(launch, settings, ["digest"])
        await harness.jetstream().publish(s.round_decided("rel-1", "d"), body.model_dump_json().encode())

        async def posted_with_the_outcome():
            return [b for b in hook.bodies if "1 release (1 blocked)" in b["text"]]

        assert await eventually(posted_with_the_outcome, timeout=20)
        result = await eventually(lambda: last_result(harness, settings, "digest", "digest"), timeout=10)
        records = await delivery_records(harness, settings)

    assert result.ok and result.result == "delivered after 1 attempt"
    assert records and all(r.status is DeliveryStatus.DELIVERED and r.attempts == 1 for r in records)
    assert len({r.tick_id for r in records}) == len(records)  # one record per tick, none twice
    assert len(hook.bodies) >= len(records)


async def test_a_failing_webhook_makes_each_tick_fail_delivery_after_its_attempts_once(
    harness, make_settings, launch, monkeypatch
):
    """The receiver answers 503: each tick posts exactly MESH_DIGEST_WEBHOOK_ATTEMPTS times, then
    records and returns `failed after 2 attempts`; no tick is handled twice."""
    digest_environment(
        monkeypatch, every="2s", MESH_DIGEST_WEBHOOK_ATTEMPTS="2", MESH_DIGEST_WEBHOOK_BACKOFF_SECONDS="0.05"
    )
    with WebhookReceiver(always=503) as hook:
        monkeypatch.setenv("MESH_DIGEST_WEBHOOK_URL", hook.url)
        settings = make_settings()
        await asyncio.to_thread(launch, settings, ["digest"])

        async def two_ticks_recorded():
            records = await delivery_records(harness, settings)
            return records if len(records) >= 2 else None

        assert await eventually(two_ticks_recorded, timeout=20)
        result = await last_result(harness, settings, "digest", "digest")
        # no tick held or waiting for a redelivery: one handled twice would have posted again by now
        await mesh_settled(settings, ["digest"])
        records = await delivery_records(harness, settings)
        posts = len(hook.bodies)  # every recorded tick's posts, and perhaps those of one under way

    assert result.ok and result.result == "failed after 2 attempts: the webhook answered HTTP 503"
    assert all(r.status is DeliveryStatus.FAILED and r.attempts == 2 for r in records)
    assert len({r.tick_id for r in records}) == len(records)
    assert 2 * len(records) <= posts <= 2 * len(records) + 2


async def test_the_watchs_model_proposals_are_clamped_to_its_bounds(harness, make_settings, launch, monkeypatch):
    """A fake model proposes 1 s, then 10 days: the runtime sets the next checks at the minimum
    (2 s) and the maximum (4 s) and records each clamp with the model's reason."""
    with FakeAnthropic(seed=3) as api:
        api.reply(
            tool_call({"delay_seconds": 1, "reason": "look again at once"}, name=SCHEDULE_NEXT_CHECK),
            tool_call({"delay_seconds": 10 * 24 * 3600, "reason": "quiet for days"}, name=SCHEDULE_NEXT_CHECK),
        )
        for name, value in {
            "ANTHROPIC_API_KEY": "sk-test",
            "ANTHROPIC_BASE_URL": api.url,
            "MESH_LLM_CHAIN": "claude-sonnet-4-6,offline",
            "MESH_WATCH_FIRST_CHECK_SECONDS": "1",
            "MESH_WATCH_MIN_INTERVAL_SECONDS": "2",
            "MESH_WATCH_MAX_INTERVAL_SECONDS": "4",
        }.items():
            monkeypatch.setenv(name, value)
        settings = make_settings()
        await asyncio.to_thread(launch, settings, ["watch"])

        decisions = []

        async def two_decisions():
            result = await last_result(harness, settings, "watch", "check")
            if result and result.next_run and result.tick_id not in [d[0] for d in decisions]:
                decisions.append((result.tick_id, result.next_run))
            return len(decisions) >= 2

        assert await eventually(two_decisions, timeout=30, interval=0.05)

    (_, soon), (_, late) = decisions[:2]
    assert soon.clamped == "min" and "look again at once" in soon.reason
    assert late.clamped == "max" and "quiet for days" in late.reason
    assert abs((late.used - late.proposed).total_seconds()) > 24 * 3600


def digest_environment(monkeypatch, *, every: str, **env: str) -> None:
    """The digest's settings in this process's environment too: `mesh provision` (here, the test)
    must declare the schedule the service runs."""
    monkeypatch.setenv("MESH_DIGEST_EVERY", every)
    monkeypatch.setenv("MESH_DIGEST_WINDOW_SECONDS", "600")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
