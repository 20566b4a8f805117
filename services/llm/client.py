"""The one LLM client of a process: every agent's model calls go through here.

One `messages.create` on `anthropic.AsyncAnthropic`, wrapped in what production needs:

    breaker.check()                       a model that keeps failing is not called
    retry policy ─┐                       backoff + jitter, `retry-after` honoured, 529 not retried
                  ├─ budget.ensure()      the round's budget must cover the estimated cost
                  ├─ gate.slot()          in-flight, requests/min and tokens/min of (provider, model)
                  └─ one request          timeout = min(MESH_LLM_TIMEOUT_SECONDS, time left to deadline)
    cost = price table × usage            charged to the round's budget and the step's meter

All of it is one `chat {model}` span in the trace (spans.py), retries as its events.

`deadline` is on the `clock` (monotonic) and is when the model's answer must be in: no request
is started with less than `MIN_CALL_SECONDS` to go, and none runs past it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
from anthropic.types import Message
from opentelemetry import trace
from opentelemetry.trace import TracerProvider

from bus.metrics import metrics
from contracts.reviews import TokenUsage
from services.llm.breaker import CircuitBreaker
from services.llm.budget import Meter, RoundBudget
from services.llm.errors import CallSkipped, DeadlineReached, ModelError, NoTimeLeft
from services.llm.gate import Gates, Limits, limits_resolver, parse_limits
from services.llm.metrics import counted_request
from services.llm.pricing import PriceTable, price_table
from services.llm.retry import RetryPolicy, retry_after
from services.llm.settings import LLMSettings
from services.llm.spans import PROVIDER, ModelCall, model_call, server_attributes, without_sdk_spans

MIN_CALL_SECONDS = 1.0  # a model call with less time than this left is not worth starting
_CHARS_PER_TOKEN = 4  # a rough estimate; the real count settles the gate and the bill
_WORST_OUTPUT_TOKENS = 1024  # for the budget: a review is a few hundred tokens, assume more
_TYPICAL_OUTPUT_TOKENS = 256  # for the rate gate, which the real usage corrects after the call


def usage_of(usage: Any) -> TokenUsage:
    """The response's `usage` as TokenUsage; fields the API leaves null count as 0."""
    return TokenUsage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_read_input_tokens=getattr(usage, "cache_read_input_tokens", 0) or 0,
        cache_creation_input_tokens=getattr(usage, "cache_creation_input_tokens", 0) or 0,
    )


def estimate(request: dict[str, Any]) -> TokenUsage:
    """A pessimistic guess of a request's usage, for the budget: nothing cached, long output."""
    text = json.dumps([request.get("system"), request.get("tools"), request.get("messages")], ensure_ascii=False)
    return TokenUsage(
        input_tokens=len(text) // _CHARS_PER_TOKEN + 1,
        output_tokens=min(int(request.get("max_tokens", _WORST_OUTPUT_TOKENS)), _WORST_OUTPUT_TOKENS),
    )


def gate_tokens(request: dict[str, Any]) -> int:
    """A typical count of the tokens a request puts against the provider's limits, for the gate.

    A prefix marked for caching is assumed read from the cache (reads do not count); the first
    call, which writes it, settles the difference — as every call settles its real usage.
    """
    cached = "cache_control" in json.dumps([request.get("system"), request.get("tools")])
    parts = [request.get("messages")]
    if not cached:
        parts += [request.get("system"), request.get("tools")]
    return len(json.dumps(parts, ensure_ascii=False)) // _CHARS_PER_TOKEN + _TYPICAL_OUTPUT_TOKENS


def describe(exc: BaseException) -> str:
    """One readable sentence about a failed call, for a review's attempts."""
    if isinstance(exc, DeadlineReached):
        return str(exc)
    if isinstance(exc, TimeoutError | anthropic.APITimeoutError):
        return "the call timed out"
    if isinstance(exc, anthropic.APIStatusError):
        if exc.status_code == 429:
            wait = retry_after(exc)
            return "rate limited (HTTP 429)" + (f"; retry-after {wait:g} s would pass the deadline" if wait else "")
        return f"the API answered HTTP {exc.status_code} ({type(exc).__name__})"
    return f"the call failed ({type(exc).__name__})"


def _is_model_trouble(exc: BaseException) -> bool:
    """Failures that say the model is unwell (and count for its breaker); 429s and 4xx do not."""
    if isinstance(exc, DeadlineReached):
        return False
    if isinstance(exc, anthropic.APIStatusError):
        return exc.status_code >= 500 or exc.status_code == 408
    return isinstance(exc, anthropic.APIConnectionError | TimeoutError)


class LLMClient:
    """Gated, retried, budgeted, priced model calls; one instance per process (`shared_client`)."""

    def __init__(
        self,
        *,
        api: anthropic.AsyncAnthropic,
        prices: PriceTable,
        gates: Gates,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - a frozen value object, safe to share
        request_timeout: float = 20.0,
        breaker_failures: int = 5,
        breaker_reset_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        # Our `chat {model}` span is the one GenAI span of a call (services/llm/spans.py).
        self.api = without_sdk_spans(api)
        self.tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        self._server = server_attributes(self.api)
        self.prices = prices
        self.gates = gates
        self.retry = retry
        self.request_timeout = request_timeout
        self.breaker_failures = breaker_failures
        self.breaker_reset_seconds = breaker_reset_seconds
        self.clock = clock
        self.sleep = sleep
        self._breakers: dict[str, CircuitBreaker] = {}

    @classmethod
    def from_settings(cls, settings: LLMSettings, **overrides: Any) -> LLMClient:
        """The client `settings` describe (`MESH_LLM_*`, `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`)."""
        key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
        defaults = Limits(max_in_flight=settings.llm_max_in_flight, rpm=settings.llm_rpm, tpm=settings.llm_tpm)
        options: dict[str, Any] = {
            # Our retry policy replaces the SDK's, so that every retry passes the gate again.
            "api": anthropic.AsyncAnthropic(
                api_key=key,
                base_url=settings.anthropic_base_url,
                max_retries=0,
                timeout=settings.llm_timeout_seconds,
                open_telemetry=False,  # our span is the call's GenAI span: no duplicate (spans.py)
            ),
            "prices": price_table(settings.llm_prices),
            "gates": Gates(limits_resolver(defaults, parse_limits(settings.llm_limits))),
            "retry": RetryPolicy(
                max_attempts=settings.llm_max_attempts,
                initial_seconds=settings.llm_backoff_seconds,
                max_seconds=settings.llm_backoff_max_seconds,
            ),
            "request_timeout": settings.llm_timeout_seconds,
            "breaker_failures": settings.llm_breaker_failures,
            "breaker_reset_seconds": settings.llm_breaker_reset_seconds,
        }
        return cls(**{**options, **overrides})

    def breaker(self, model: str) -> CircuitBreaker:
        if model not in self._breakers:
            self._breakers[model] = CircuitBreaker(
                model, failures=self.breaker_failures, reset_seconds=self.breaker_reset_seconds, clock=self.clock
            )
        return self._breakers[model]

    async def create(
        self,
        *,
        model: str,
        request: dict[str, Any],
        deadline: float,
        budget: RoundBudget,
        meter: Meter,
        agent: str | None = None,
    ) -> Message:
        """One answer from `model` for `request` (Messages API arguments without `model`).

        Raises CircuitOpen, BudgetExhausted or NoTimeLeft when no request could be sent, and
        ModelError when the API kept failing. The call is one `chat {model}` span (spans.py),
        `agent` its `mesh.agent`.
        """
        with model_call(self.tracer, model=model, request=request, agent=agent, server=self._server) as call:
            breaker = self.breaker(model)
            breaker.check()
            call.breaker(breaker)
            metrics().llm_breaker(model, breaker.state)

            async def send() -> Message:
                return await self._send(model, request, deadline, budget, meter, call)

            try:
                response = await self.retry.run(
                    send,
                    deadline=deadline,
                    reserve=MIN_CALL_SECONDS,
                    clock=self.clock,
                    sleep=self.sleep,
                    on_retry=call.retrying,
                )
            except CallSkipped:
                breaker.abandoned()
                raise
            except (anthropic.APIError, TimeoutError) as exc:
                if _is_model_trouble(exc):
                    breaker.failed()
                    call.breaker(breaker)
                    metrics().llm_breaker(model, breaker.state)
                else:
                    breaker.abandoned()
                raise ModelError(describe(exc)) from exc
            except BaseException:
                breaker.abandoned()
                raise
            breaker.succeeded()
            metrics().llm_breaker(model, breaker.state)
            return response

    async def _send(
        self, model: str, request: dict[str, Any], deadline: float, budget: RoundBudget, meter: Meter, call: ModelCall
    ) -> Message:
        if deadline - self.clock() < MIN_CALL_SECONDS:
            raise NoTimeLeft("too little time was left before the round's deadline to call the model")
        price = self.prices.price(model)
        guess = estimate(request)
        budget.ensure(usd=price.cost(guess), tokens=guess.total)
        gate = self.gates.gate(PROVIDER, model)
        queued = self.clock()
        async with gate.slot(tokens=gate_tokens(request), deadline=deadline - MIN_CALL_SECONDS) as permit:
            left = deadline - self.clock()
            timeout = min(self.request_timeout, left)
            meter.requests += 1
            call.sending(gate_wait=self.clock() - queued)
            metrics().llm_gate_waited(model, self.clock() - queued)
            try:
                # The SDK's timeout covers each network phase; asyncio's caps the whole call.
                async with counted_request(model), asyncio.timeout(timeout):
                    response = await self.api.messages.create(model=model, **request, timeout=timeout)
            except (TimeoutError, anthropic.APITimeoutError) as exc:
                permit.settle(0)
                if left < self.request_timeout:
                    raise DeadlineReached(
                        f"no answer within the {left:.1f} s left before the round's deadline"
                    ) from exc
                raise
            except anthropic.APIStatusError as exc:
                permit.settle(0)  # an error answer used none of our token budget
                if exc.status_code == 429:
                    meter.rate_limited += 1
                    if (wait := retry_after(exc)) is not None:
                        gate.pause(wait)
                raise
            spent = usage_of(response.usage)
            # Cache reads do not count against Anthropic's token limits.
            permit.settle(spent.input_tokens + spent.cache_creation_input_tokens + spent.output_tokens)
        cost = price.cost(spent)
        budget.charge(spent, cost)
        meter.add(spent, cost)
        call.answered(response, spent, cost)
        metrics().llm_spent(model, spent, cost)
        return response

    async def close(self) -> None:
        await self.api.close()


_shared: dict[str, LLMClient] = {}


def shared_client(settings: LLMSettings) -> LLMClient:
    """The process's one LLM client for these settings, created on first use.

    Every agent in the process gets the same instance, so they share its gates and breakers.
    """
    fields = {name for name in type(settings).model_fields if name.startswith(("llm_", "anthropic_"))}
    secret = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else ""
    key = settings.model_dump_json(include=fields) + hashlib.sha256(secret.encode()).hexdigest()
    if key not in _shared:
        _shared[key] = LLMClient.from_settings(settings)
    return _shared[key]
