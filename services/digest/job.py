"""One digest tick, start to end: read the window, sum it up, publish it, deliver it, record it.

Each step is idempotent per tick, since a tick may be delivered again (a crash, a timeout):

1. the tick's delivery record (`digest.delivered`, keyed by tick id) exists: it was all done;
   its result is the result again, and nothing is published or posted twice;
2. the window ends at the tick's scheduled time (and is as many windows long as the firings the
   tick stands for: `coalesced` missed ones and itself), so its figures — and the digest's event
   id and message id — are the same on every delivery: the stream stores the digest once;
3. the webhook is posted, retried within the tick's deadline (`MESH_DIGEST_DEADLINE_SECONDS`,
   within the handler's timeout), and whatever became of it — delivered, failed after N
   attempts, skipped — is recorded, then returned as the tick's result.

A crash between the webhook's answer and the record can post the same digest twice; nothing
else can.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
from nats.aio.client import Client

from bus.delivery import Delivery
from contracts.digests import DigestDelivered, DigestPublished, digest_delivery_msg_id, digest_msg_id
from contracts.schedules import ScheduleTick
from services.digest.figures import Window, digest_of
from services.digest.message import slack_message
from services.digest.reading import published_digest, read_contents, recorded_delivery
from services.digest.settings import DigestSettings
from services.digest.summary import SummaryWriter
from services.digest.webhook import DeliveryResult, RetryPolicy, post_webhook, skipped

NO_WEBHOOK = "MESH_DIGEST_WEBHOOK_URL is not set"


class DigestJob:
    """`await job.run(tick, delivery)` -> the tick's result: what became of the webhook delivery."""

    def __init__(
        self,
        *,
        settings: DigestSettings,
        connection: Callable[[], Client],
        writer: SummaryWriter | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.connection = connection
        self.writer = writer
        self.http = http
        self.clock = clock
        self.sleep = sleep
        self.policy = RetryPolicy(
            attempts=settings.digest_webhook_attempts,
            backoff_seconds=settings.digest_webhook_backoff_seconds,
            backoff_max_seconds=settings.digest_webhook_backoff_max_seconds,
            timeout_seconds=settings.digest_webhook_timeout_seconds,
        )

    async def run(self, tick: ScheduleTick, delivery: Delivery) -> str:
        deadline = self.clock() + self.settings.tick_seconds
        s, nc = self.settings.subjects, self.connection()
        if (earlier := await recorded_delivery(nc, self.settings, tick.tick_id)) is not None:
            delivery.log.info("digest already handled for this tick", tick_id=tick.tick_id, status=earlier.status.value)
            return earlier.detail
        # firings missed while every replica was down come as this one tick: its digest covers them too
        window = Window.ending(tick.scheduled_for, self.settings.digest_window_seconds * (1 + tick.coalesced))
        digest = await published_digest(nc, self.settings, window) or await self.make(window, tick, deadline)
        await delivery.publish(digest, s.digest_published, msg_id=digest_msg_id(window.start, window.end))
        result = await self.deliver(digest, deadline)
        record = DigestDelivered(
            tick_id=tick.tick_id,
            digest_event_id=digest.event_id,
            window_end=window.end,
            status=result.status,
            attempts=result.attempts,
            http_status=result.http_status,
            detail=result.detail,
            producer="digest",
            correlation_id=digest.correlation_id,
            causation_id=digest.event_id,
        )
        await delivery.publish(record, s.digest_delivered(tick.tick_id), msg_id=digest_delivery_msg_id(tick.tick_id))
        delivery.log.info(
            "digest published",
            window_end=window.end.isoformat(),
            releases=digest.releases,
            dead_letters=digest.dead_letters_total,
            alerts=digest.alerts_total,
            summary_model=digest.summary_model or None,
            webhook=result.status.value,
            attempts=result.attempts,
        )
        return result.detail

    async def make(self, window: Window, tick: ScheduleTick, deadline: float) -> DigestPublished:
        """The window's digest, with a model's summary when one is configured and answers in time."""
        contents = await read_contents(self.connection(), self.settings, window)
        digest = digest_of(
            window,
            contents.outcomes,
            contents.dead_letters,
            contents.alerts,
            top=self.settings.digest_top_findings,
            schedule=tick.schedule,
        )
        if self.writer is None:
            return digest
        # half of what is left at most: the webhook's retries need the rest
        summary = await self.writer.write(digest, deadline=self.clock() + (deadline - self.clock()) / 2)
        if summary is None:
            return digest
        return digest.model_copy(
            update={
                "summary": summary.text,
                "summary_model": summary.model,
                "summary_tokens": summary.tokens,
                "summary_cost_usd": summary.cost_usd,
            }
        )

    async def deliver(self, digest: DigestPublished, deadline: float) -> DeliveryResult:
        url = self.settings.digest_webhook_url
        if url is None:
            return skipped(NO_WEBHOOK)
        body = slack_message(digest, time_zone=self.settings.digest_time_zone)
        return await post_webhook(
            url.get_secret_value(),
            body,
            policy=self.policy,
            deadline=deadline,
            http=self.http,
            clock=self.clock,
            sleep=self.sleep,
        )
