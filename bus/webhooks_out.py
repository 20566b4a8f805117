"""Posting a message to an outbound webhook, retried with backoff, never past a deadline.

    result = await post_webhook(url, body, policy=policy, deadline=clock() + 60)

Shared by every service that posts to a Slack-compatible webhook: the digest (services/digest)
and the approvals notifier (services/approvals).

A 2xx answer is delivered. Connection errors, timeouts, 408, 429 and 5xx are retried with
exponential backoff and jitter (`Retry-After` wins when longer), while attempts are left and the
next one can start at least `MIN_ATTEMPT_SECONDS` before the deadline; each request's timeout is
cut to the time left. Any other answer (400 `invalid_payload`, 403, 404 `no_service`) is final:
sending it again would not help. The result says which, after how many attempts, and why — never
the URL, which holds the webhook's secret token.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from contracts.digests import DeliveryStatus

MIN_ATTEMPT_SECONDS = 1.0  # a request with less time than this left is not worth starting
_ANSWER_CHARS = 120  # of a refusing webhook's body, quoted in the result (Slack says why in a word)


@dataclass(frozen=True)
class RetryPolicy:
    """How persistently to deliver: attempts, backoff, and one request's timeout."""

    attempts: int = 5
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 30.0
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class DeliveryResult:
    status: DeliveryStatus
    attempts: int = 0
    http_status: int | None = None
    detail: str = ""


class _Retryable(Exception):
    """An answer that time may cure (408, 429, 5xx)."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"the webhook answered HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class _Refused(Exception):
    """An answer that sending again would not change."""

    def __init__(self, status: int, body: str) -> None:
        said = f" ({body.strip()[:_ANSWER_CHARS]})" if body.strip() else ""
        super().__init__(f"the webhook refused it with HTTP {status}{said}")
        self.status = status


async def post_webhook(
    url: str,
    body: dict[str, Any],
    *,
    policy: RetryPolicy,
    deadline: float,
    http: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> DeliveryResult:
    """POST `body` as JSON to `url` until it is delivered, refused, out of attempts or out of time
    (`deadline` on `clock`)."""
    sent = 0
    last_status: int | None = None

    async def attempt(client: httpx.AsyncClient) -> None:
        nonlocal sent, last_status
        left = deadline - clock()
        if left < MIN_ATTEMPT_SECONDS:
            raise TimeoutError("no time was left before the tick's deadline")
        sent += 1
        limit = min(policy.timeout_seconds, left)
        try:
            # httpx's timeout is per network phase; this one caps the whole request
            async with asyncio.timeout(limit):
                response = await client.post(url, json=body, timeout=limit)
        except TimeoutError as exc:
            raise httpx.TimeoutException(f"no answer within {limit:.1f} s") from exc
        last_status = response.status_code
        if response.is_success:
            return
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise _Retryable(response.status_code, _retry_after(response))
        raise _Refused(response.status_code, response.text)

    backoff = wait_exponential_jitter(
        multiplier=policy.backoff_seconds, max=policy.backoff_max_seconds, jitter=policy.backoff_seconds / 2
    )

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        asked = error.retry_after if isinstance(error, _Retryable) and error.retry_after else 0.0
        return max(backoff(state), asked)

    def out_of_time(state: RetryCallState) -> bool:
        return clock() + state.upcoming_sleep + MIN_ATTEMPT_SECONDS > deadline

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | out_of_time,
        wait=wait,
        retry=retry_if_exception_type((_Retryable, httpx.TransportError)),
        sleep=sleep,
        reraise=True,
    )
    try:
        async with _client(http) as client:
            await retrying(attempt, client)
    except (_Retryable, _Refused, httpx.TransportError, TimeoutError) as exc:
        why = str(exc) if not isinstance(exc, httpx.TransportError) else _unreachable(exc)
        status = last_status if isinstance(exc, _Retryable | _Refused) else None
        if not sent:
            return DeliveryResult(DeliveryStatus.FAILED, 0, None, f"not sent: {why}")
        return DeliveryResult(DeliveryStatus.FAILED, sent, status, f"failed after {_attempts(sent)}: {why}")
    return DeliveryResult(DeliveryStatus.DELIVERED, sent, last_status, f"delivered after {_attempts(sent)}")


def skipped(reason: str) -> DeliveryResult:
    return DeliveryResult(DeliveryStatus.SKIPPED, detail=f"skipped: {reason}")


def _attempts(count: int) -> str:
    return f"{count} attempt{'s' if count != 1 else ''}"


def _unreachable(exc: httpx.TransportError) -> str:
    # by type only: some transport errors quote the URL, and the URL holds the token
    if isinstance(exc, httpx.TimeoutException):
        return f"the webhook did not answer in time ({type(exc).__name__})"
    return f"the webhook could not be reached ({type(exc).__name__})"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the backoff decides


@contextlib.asynccontextmanager
async def _client(http: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    """The caller's client as is, or one of our own, closed after."""
    if http is not None:
        yield http
        return
    async with httpx.AsyncClient(follow_redirects=False) as own:
        yield own
