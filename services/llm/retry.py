"""When to try a model again, and how long to wait: exponential backoff with full jitter,
except when the API says `retry-after` (or `retry-after-ms`), which is honoured exactly.

Retried: 408, 409, 429 and 5xx answers, connection errors and timeouts — what time cures.
Not retried: 529 (overloaded). Another model in the chain has capacity now; this one may not
for a while, and waiting for it burns the round's deadline and the model's request budget.
Never retried past the round's deadline: a retry whose wait would leave less than one useful
call's worth of time is not made, and the last error goes to the chain.

The SDK's own retries are switched off (`max_retries=0`): every retry goes back through the
rate gate and the breaker, and is counted.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anthropic
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from services.llm.errors import DeadlineReached

T = TypeVar("T")
OVERLOADED = 529


def retry_after(exc: BaseException) -> float | None:
    """Seconds the API asked us to wait (`retry-after-ms`, or `retry-after` in seconds or as a date)."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    if (value := headers.get("retry-after")) is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(when.timestamp() - time.time(), 0.0) if when else None


def is_retryable(exc: BaseException) -> bool:
    """Whether waiting and asking the same model again may help."""
    if isinstance(exc, anthropic.APIStatusError):
        hint = exc.response.headers.get("x-should-retry")
        if hint in ("true", "false"):
            return hint == "true"
        return exc.status_code in (408, 409, 429) or (exc.status_code >= 500 and exc.status_code != OVERLOADED)
    if isinstance(exc, DeadlineReached):  # the round's deadline cut the call: no time for another
        return False
    return isinstance(exc, anthropic.APIConnectionError | TimeoutError)  # APITimeoutError is a connection error


class _HonourRetryAfter:
    """tenacity wait: the API's `retry-after` when it sent one, else the fallback backoff."""

    def __init__(self, fallback: Callable[[RetryCallState], float]) -> None:
        self.fallback = fallback

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = retry_after(exc) if exc else None
        return asked if asked is not None else self.fallback(state)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to ask one model, and the backoff between asks."""

    max_attempts: int = 3
    initial_seconds: float = 0.5
    max_seconds: float = 8.0

    async def run(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        deadline: float,
        reserve: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
    ) -> T:
        """`call()` with retries; no retry starts unless `reserve` seconds remain before `deadline` after its wait.

        `on_retry(attempt, error, wait)` hears of each retry before its wait (for the call's span).
        """

        def past_deadline(state: RetryCallState) -> bool:
            return clock() + (state.upcoming_sleep or 0.0) + reserve > deadline

        def before_sleep(state: RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None and (error := state.outcome.exception()):
                on_retry(state.attempt_number, error, state.upcoming_sleep or 0.0)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts) | past_deadline,
            wait=_HonourRetryAfter(wait_random_exponential(multiplier=self.initial_seconds, max=self.max_seconds)),
            retry=retry_if_exception(is_retryable),
            before_sleep=before_sleep,
            sleep=sleep,
            reraise=True,
        )
        return await retrying(call)
