"""How a model call shows in a trace: one GenAI `chat {model}` span per `LLMClient.create`.

    llm.chain                         one walk along an agent's chain (chain.py)
    ├── chat claude-sonnet-4-6        a call: breaker, budget, rate gate, every retry, the answer
    │     event retry                 an attempt failed and the same model is asked again
    │     event breaker_opened        this failure opened the model's circuit
    ├── event fallback                (on llm.chain) a step gave no accepted answer, and why
    └── chat claude-haiku-4-5

The span follows the OpenTelemetry GenAI conventions for Anthropic: `gen_ai.usage.input_tokens`
is every input token, cached or not (the API's `input_tokens` leaves cached ones out), with the
cache reads and writes also apart; `mesh.llm.cost_usd` is what the call cost at our prices.

A retry is an event on the call's span, not a span of its own: one call is one GenAI span
whatever it took to get the answer, so its tokens and cost are counted once, and the common
call (one request) costs one span. The event says which attempt failed, how, and the wait.

The SDK's own span (`anthropic.messages.create`) is switched off for our client
(`without_sdk_spans`): it would repeat the model, the output and cache tokens and the GenAI
operation on a second span per request, and backends that add up `gen_ai.usage.*` would count
them twice; it lacks `gen_ai.usage.input_tokens` and the cost anyway. With it off, the SDK
also sends no `traceparent` to the provider.

Only the OpenTelemetry API is used: with no SDK configured the spans are no-ops, and their
attributes are worked out only when a span records.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import anthropic
from anthropic.types import Message
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from contracts.reviews import TokenUsage
from services.llm.breaker import BreakerState, CircuitBreaker
from services.llm.errors import DeadlineReached, ModelError

PROVIDER = "anthropic"


def without_sdk_spans(api: anthropic.AsyncAnthropic) -> anthropic.AsyncAnthropic:
    """`api`, or a copy of it on the same connection pool, that makes no span of its own.

    An explicit option, not `ANTHROPIC_OPEN_TELEMETRY=false`: the SDK reads that variable only for
    a client given no `open_telemetry` option, and a client handed in may have been given one.
    """
    if not api.open_telemetry["traces"]["enabled"]:
        return api
    return api.with_options(open_telemetry=False)


def server_attributes(api: anthropic.AsyncAnthropic) -> dict[str, Any]:
    """`server.address` and `server.port` of the API the client talks to."""
    url = api.base_url
    return {"server.address": url.host, "server.port": url.port or (80 if url.scheme == "http" else 443)}


def error_type(exc: BaseException) -> str:
    """`error.type`, low in cardinality: the API's error type (`overloaded_error`,
    `rate_limit_error`, …, else the HTTP status), `timeout`, `connection_error`, or the name of
    our own error (`CircuitOpen`, `BudgetExhausted`, `NoTimeLeft`, `DeadlineReached`, …)."""
    if isinstance(exc, ModelError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, anthropic.APIStatusError):
        return str(exc.type or exc.status_code)
    if isinstance(exc, DeadlineReached):
        return type(exc).__name__
    if isinstance(exc, anthropic.APITimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, anthropic.APIConnectionError):
        return "connection_error"
    return type(exc).__name__


def _status_code(exc: BaseException) -> int | None:
    cause = exc.__cause__ if isinstance(exc, ModelError) else exc
    return cause.status_code if isinstance(cause, anthropic.APIStatusError) else None


class ModelCall:
    """The span of one `LLMClient.create`; the client tells it what happens as the call goes."""

    def __init__(self, span: Span) -> None:
        self.span = span
        self.recording = span.is_recording()
        self.requests = 0
        self.gate_wait = 0.0

    def sending(self, gate_wait: float) -> None:
        """A request goes out, after `gate_wait` seconds at the rate gate."""
        self.requests += 1
        self.gate_wait += gate_wait

    def retrying(self, attempt: int, exc: BaseException, wait: float) -> None:
        """Attempt `attempt` failed with `exc`; the same model is asked again after `wait` seconds."""
        if not self.recording:
            return
        attributes: dict[str, Any] = {
            "mesh.llm.attempt": attempt,
            "error.type": error_type(exc),
            "mesh.llm.retry_wait_seconds": round(wait, 3),
        }
        if (status := _status_code(exc)) is not None:
            attributes["http.response.status_code"] = status
        self.span.add_event("retry", attributes)

    def breaker(self, breaker: CircuitBreaker) -> None:
        """Note the model's circuit after a check (a half-open probe) or a failure (it opened)."""
        if not self.recording:
            return
        if breaker.state is BreakerState.HALF_OPEN:
            self.span.set_attribute("mesh.llm.breaker_probe", True)
        elif breaker.state is BreakerState.OPEN:
            self.span.add_event("breaker_opened", {"mesh.llm.breaker_failures": breaker.consecutive_failures})

    def answered(self, response: Message, spent: TokenUsage, cost: float) -> None:
        """The model answered, using `spent` tokens that cost `cost` USD."""
        if not self.recording:
            return
        self.span.set_attributes(
            {
                "gen_ai.response.model": response.model,
                "gen_ai.response.id": response.id,
                "gen_ai.response.finish_reasons": [response.stop_reason] if response.stop_reason else [],
                "gen_ai.usage.input_tokens": spent.input_tokens
                + spent.cache_read_input_tokens
                + spent.cache_creation_input_tokens,
                "gen_ai.usage.output_tokens": spent.output_tokens,
                "gen_ai.usage.cache_read.input_tokens": spent.cache_read_input_tokens,
                "gen_ai.usage.cache_creation.input_tokens": spent.cache_creation_input_tokens,
                "mesh.llm.cost_usd": cost,
            }
        )

    def failed(self, exc: Exception) -> None:
        """The call gave no answer: `exc` is what its caller gets."""
        if not self.recording:
            return
        self.span.set_status(Status(StatusCode.ERROR, str(exc)))
        self.span.set_attribute("error.type", error_type(exc))
        if (status := _status_code(exc)) is not None:
            self.span.set_attribute("http.response.status_code", status)

    def finish(self) -> None:
        if self.recording:
            self.span.set_attributes(
                {"mesh.llm.requests": self.requests, "mesh.llm.gate_wait_seconds": round(self.gate_wait, 3)}
            )


@contextlib.contextmanager
def model_call(
    tracer: Tracer, *, model: str, request: dict[str, Any], agent: str | None, server: dict[str, Any]
) -> Iterator[ModelCall]:
    """The `chat {model}` span around one call, current while it runs, ended when it ends."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.request.model": model,
        **server,
    }
    if (max_tokens := request.get("max_tokens")) is not None:
        attributes["gen_ai.request.max_tokens"] = max_tokens
    if agent:
        attributes["mesh.agent"] = agent
    with tracer.start_as_current_span(
        f"chat {model}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        call = ModelCall(span)
        try:
            yield call
        except Exception as exc:  # a cancellation is the caller stopping, not the call failing
            call.failed(exc)
            raise
        finally:
            call.finish()
