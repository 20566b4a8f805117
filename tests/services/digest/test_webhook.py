"""services/digest/webhook.py against a real local HTTP receiver: delivered, retried with backoff,
refused, unreachable, and never past the deadline."""

from __future__ import annotations

import asyncio
import time

import pytest

from bus.ops.embedded import free_port
from contracts.digests import DeliveryStatus
from services.digest.webhook import RetryPolicy, post_webhook
from tests.services.digest.receiver import WebhookReceiver

BODY = {"text": "Mesh digest", "blocks": []}
QUICK = RetryPolicy(attempts=4, backoff_seconds=0.02, backoff_max_seconds=0.5, timeout_seconds=5)


class Waits:
    """An injected `sleep` that records each wait and sleeps not at all."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def soon(seconds: float = 30.0) -> float:
    return time.monotonic() + seconds


async def test_a_webhook_that_answers_200_gets_the_body_once():
    """One POST with the JSON body; delivered after 1 attempt."""
    with WebhookReceiver() as hook:
        result = await post_webhook(hook.url, BODY, policy=QUICK, deadline=soon())

    assert (result.status, result.attempts, result.http_status) == (DeliveryStatus.DELIVERED, 1, 200)
    assert result.detail == "delivered after 1 attempt"
    assert hook.bodies == [BODY]


async def test_server_errors_are_retried_with_growing_waits_until_delivered():
    """503, 503, then 200: three POSTs, waits of about 1x then 2x the first backoff (plus jitter)."""
    waits = Waits()
    with WebhookReceiver(answers=[503, 503]) as hook:
        result = await post_webhook(hook.url, BODY, policy=QUICK, deadline=soon(), sleep=waits)

    assert (result.status, result.attempts) == (DeliveryStatus.DELIVERED, 3)
    assert len(hook.bodies) == 3
    first, second = waits.asked
    assert 0.02 <= first <= 0.03 and 0.04 <= second <= 0.05


async def test_a_webhook_that_keeps_failing_is_recorded_failed_after_every_attempt():
    """Always 500: exactly `attempts` POSTs, then failed, naming the count and the last status."""
    with WebhookReceiver(always=500) as hook:
        result = await post_webhook(hook.url, BODY, policy=QUICK, deadline=soon(), sleep=Waits())

    assert (result.status, result.attempts, result.http_status) == (DeliveryStatus.FAILED, 4, 500)
    assert result.detail == "failed after 4 attempts: the webhook answered HTTP 500"
    assert len(hook.bodies) == 4


async def test_a_refusal_is_final_and_a_rate_limit_waits_as_long_as_asked():
    """404 `no_service` is not retried; a 429 with `Retry-After: 2` waits 2 s before the next try."""
    with WebhookReceiver(always=404) as hook:
        refused = await post_webhook(hook.url, BODY, policy=QUICK, deadline=soon(), sleep=Waits())
    waits = Waits()
    with WebhookReceiver(answers=[429], headers={"Retry-After": "2"}) as hook:
        limited = await post_webhook(hook.url, BODY, policy=QUICK, deadline=soon(), sleep=waits)

    assert (refused.status, refused.attempts) == (DeliveryStatus.FAILED, 1)
    assert refused.detail == "failed after 1 attempt: the webhook refused it with HTTP 404 (no_service)"
    assert (limited.status, limited.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert waits.asked == [2.0]


class Stopwatch:
    """An injected clock and `sleep`: the clock moves only by the waits (the requests take no
    time on it), so how many attempts fit before a deadline does not depend on the machine's load."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_retries_stop_before_the_deadline_and_a_slow_webhook_is_cut_off_at_it():
    """With a deadline 1.5 s away, a failing webhook gets no attempt that could end past it
    (waits of about 0.2 then 0.4 s, and an attempt needs 1 s: two fit), and a webhook that takes
    5 s to answer is given up on when the deadline comes, not later."""
    policy = RetryPolicy(attempts=20, backoff_seconds=0.2, backoff_max_seconds=5, timeout_seconds=10)
    clock = Stopwatch()
    with WebhookReceiver(always=503) as hook:
        failing = await post_webhook(hook.url, BODY, policy=policy, deadline=1.5, clock=clock, sleep=clock.sleep)
        posted = len(hook.bodies)
    with WebhookReceiver(delay=5) as hook:
        started = time.monotonic()
        slow = await post_webhook(hook.url, BODY, policy=policy, deadline=started + 1.5)
        slow_took = time.monotonic() - started

    assert failing.status is DeliveryStatus.FAILED and failing.attempts == posted == 2
    assert clock() + 1.0 <= 1.5  # the last attempt had its second before the deadline
    # not before the deadline; long before the 5 s answer (the margin is for a loaded machine)
    assert slow.status is DeliveryStatus.FAILED and slow.attempts == 1 and 1.3 < slow_took < 4.0, slow_took
    assert "did not answer in time" in slow.detail


async def test_an_unreachable_webhook_fails_without_quoting_its_url():
    """Nothing listens: retried, then failed "could not be reached", the URL's token never in the result."""
    url = f"http://127.0.0.1:{free_port()}/services/T000/B000/secret-token"

    result = await post_webhook(url, BODY, policy=QUICK, deadline=soon(), sleep=Waits())

    assert (result.status, result.attempts, result.http_status) == (DeliveryStatus.FAILED, 4, None)
    assert "could not be reached (ConnectError)" in result.detail
    assert "secret-token" not in result.detail


@pytest.mark.parametrize("left", [0.0, 0.5])
async def test_no_time_left_sends_nothing(left):
    """With less than a second to the deadline, nothing is sent and the result says why."""
    with WebhookReceiver() as hook:
        result = await post_webhook(hook.url, BODY, policy=QUICK, deadline=time.monotonic() + left)
        await asyncio.sleep(0)

    assert (result.status, result.attempts) == (DeliveryStatus.FAILED, 0)
    assert result.detail == "not sent: no time was left before the tick's deadline"
    assert hook.bodies == []
