"""Prometheus metrics: one registry per agent, served at `GET /metrics`, fed by one-line calls.

Where the numbers come from:

- the consume path (bus/consuming.py): every message, by how it was settled, and how long it took;
- the server, read at each scrape: how many messages wait in each consumer (`CONSUMER.INFO`;
  not the `Nats-Pending-Messages` of a pull status, which counts what one pull request left
  undelivered, not the consumer's backlog);
- the reviewers, the coordinator and the LLM client: reviews, rounds, model calls, tokens, cost.

How code reaches the registry. Each `Agent` owns a `Metrics`, with a `CollectorRegistry` of its
own (never prometheus-client's global one), so two agents in one process, or a thousand tests,
never share a counter. The agent's own code records on `agent.metrics`. Code far below a handler
(the LLM client, which every agent of a process shares) calls `metrics()`: the consume path binds
the agent's `Metrics` to the context of each message it handles (`Metrics.handling`), so the
numbers land in the registry of the agent whose message is being handled, and nothing is passed
down through the brain, the chain and the client. Outside any handler (`mesh bench llm`, unit
tests) `metrics()` is a detached instance that nobody scrapes.

Conventions: names `mesh_*` in base units (`_seconds`, `_usd_total`); every family is labelled
`service` plus a few labels whose values come from small fixed sets (consumer and model names
from configuration, verdicts, outcomes, statuses) — never a release id, a subject or free text.
The README's "Metrics" table lists them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder

from bus.http import bytes_endpoint, header
from contracts.outcomes import Fallback, RoundDecided
from contracts.reviews import TokenUsage

# `_created` series would double every counter and histogram on the page; nothing here reads them.
disable_created_metrics()

HANDLER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
ROUND_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
WAIT_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LAG_READ_SECONDS = 1.0  # what a scrape gives each consumer's CONSUMER.INFO (read concurrently)

# How the consume path settled a message (FastStream's `committed`); unsettled means JetStream
# redelivers it after ack_wait (the ack was lost, or the handler was cancelled): a retry too.
_RESULTS = {"ACKED": "ok", "NACKED": "retried", "REJECTED": "dead_lettered"}
# A round with several fallbacks applied is counted under the strictest of them.
_STRICTEST_FIRST = (Fallback.BLOCK, Fallback.ESCALATE, Fallback.APPROVE_WITH_WARNING)


class Metrics:
    """Every `mesh_*` metric family of one agent, in its own registry, and how to record each."""

    def __init__(
        self,
        service: str,
        *,
        consumers: Callable[[], Iterable[Any]] = list,
        connection: Callable[[], Any] = lambda: None,
    ) -> None:
        """`consumers()` (each with `.stream` and `.durable`) and `connection()` (a nats-py
        client, or None) are read at each scrape, for the consumers' pending counts."""
        self.service = service
        self.registry = CollectorRegistry()
        self._consumers = consumers
        self._connection = connection
        self._breaker_states: dict[str, str] = {}

        def family(kind: type, name: str, doc: str, *labels: str, **options: Any) -> Any:
            return kind(name, doc, ["service", *labels], registry=self.registry, **options)

        self._handled = family(
            Counter, "mesh_messages_handled", "Messages handled, by how they were settled.", "consumer", "result"
        )
        self._handler_seconds = family(
            Histogram,
            "mesh_handler_duration_seconds",
            "Time from receiving a message to settling it.",
            "consumer",
            "result",
            buckets=HANDLER_BUCKETS,
        )
        self._pending = family(
            Gauge, "mesh_consumer_pending_messages", "Messages not yet delivered (read at scrape).", "consumer"
        )
        self._ack_pending = family(
            Gauge,
            "mesh_consumer_ack_pending_messages",
            "Messages delivered and not yet acknowledged (read at scrape).",
            "consumer",
        )
        self._reviews = family(Counter, "mesh_reviews", "Reviews published.", "reviewer", "verdict")
        self._rounds_opened = family(Counter, "mesh_rounds_opened", "Review rounds opened.")
        self._rounds_decided = family(
            Counter, "mesh_rounds_decided", "Rounds decided, by outcome and strictest fallback.", "outcome", "fallback"
        )
        self._round_seconds = family(
            Histogram,
            "mesh_round_duration_seconds",
            "Time from a round's opening to its decision.",
            "outcome",
            buckets=ROUND_BUCKETS,
        )
        self._llm_requests = family(
            Counter, "mesh_llm_requests", "Model API requests, by how they ended.", "model", "status"
        )
        self._llm_tokens = family(Counter, "mesh_llm_tokens", "Tokens the model API reported.", "model", "kind")
        self._llm_cost = family(Counter, "mesh_llm_cost_usd", "What the model calls cost, in USD.", "model")
        self._gate_wait = family(
            Histogram,
            "mesh_llm_gate_wait_seconds",
            "Time a request waited at the rate gate.",
            "model",
            buckets=WAIT_BUCKETS,
        )
        self._breaker = family(
            Gauge, "mesh_llm_breaker_state", "1 for the circuit breaker's current state.", "model", "state"
        )

    # --- binding ------------------------------------------------------------------------

    @contextlib.contextmanager
    def bound(self) -> Iterator[Metrics]:
        """Make these the metrics `metrics()` returns, in this context (a task, and what it awaits)."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    # --- the consume path ---------------------------------------------------------------

    @contextlib.contextmanager
    def handling(self, consumer: str, message: Any) -> Iterator[None]:
        """Around one message: binds these metrics for what the handler calls, then counts the
        message by how it was settled (acked, nak'd for a retry, termed once dead-lettered)."""
        started = time.perf_counter()
        try:
            with self.bound():
                yield
        finally:
            result = _RESULTS.get(getattr(message, "committed", None), "retried")
            self._handled.labels(self.service, consumer, result).inc()
            self._handler_seconds.labels(self.service, consumer, result).observe(time.perf_counter() - started)

    async def read_lag(self) -> None:
        """Set each consumer's pending gauges from the server: one `CONSUMER.INFO` per consumer.

        A consumer that cannot be read now loses its gauges until it can: no number is better
        than a stale one.
        """
        connection = self._connection()
        if connection is None or not connection.is_connected:
            return
        js = connection.jetstream()

        async def read(consumer: Any) -> None:
            labels = (self.service, consumer.durable)
            try:
                info = await js.consumer_info(consumer.stream, consumer.durable, timeout=LAG_READ_SECONDS)
            except Exception:  # noqa: BLE001 - any failure: drop the numbers rather than keep stale ones
                for gauge in (self._pending, self._ack_pending):
                    with contextlib.suppress(KeyError):
                        gauge.remove(*labels)
                return
            self._pending.labels(*labels).set(info.num_pending or 0)
            self._ack_pending.labels(*labels).set(info.num_ack_pending or 0)

        await asyncio.gather(*(read(consumer) for consumer in self._consumers()))

    # --- reviews and rounds -------------------------------------------------------------

    def reviewed(self, reviewer: str, verdict: str) -> None:
        self._reviews.labels(self.service, reviewer, verdict).inc()

    def round_opened(self) -> None:
        self._rounds_opened.labels(self.service).inc()

    def round_decided(self, outcome: RoundDecided) -> None:
        """Count a decided round (once, by the write that decided it) and how long it was open."""
        applied = set(outcome.fallbacks_applied.values())
        fallback = next((f.value for f in _STRICTEST_FIRST if f.value in applied), "none")
        self._rounds_decided.labels(self.service, outcome.outcome.value, fallback).inc()
        if outcome.opened_at is not None:
            seconds = (outcome.occurred_at - outcome.opened_at).total_seconds()
            self._round_seconds.labels(self.service, outcome.outcome.value).observe(max(seconds, 0.0))

    # --- model calls --------------------------------------------------------------------

    def llm_request(self, model: str, status: str) -> None:
        self._llm_requests.labels(self.service, model, status).inc()

    def llm_spent(self, model: str, tokens: TokenUsage, cost_usd: float) -> None:
        """What one answered request used (as the API reported it) and cost."""
        for kind, count in (
            ("input", tokens.input_tokens),
            ("output", tokens.output_tokens),
            ("cache_read", tokens.cache_read_input_tokens),
            ("cache_write", tokens.cache_creation_input_tokens),
        ):
            self._llm_tokens.labels(self.service, model, kind).inc(count)
        self._llm_cost.labels(self.service, model).inc(cost_usd)

    def llm_gate_waited(self, model: str, seconds: float) -> None:
        self._gate_wait.labels(self.service, model).observe(max(seconds, 0.0))

    def llm_breaker(self, model: str, state: str) -> None:
        """The breaker of `model` is in `state`: its series says 1, the state it left says 0."""
        state = str(state)
        last = self._breaker_states.get(model)
        if last is not None and last != state:
            self._breaker.labels(self.service, model, last).set(0)
        self._breaker.labels(self.service, model, state).set(1)
        self._breaker_states[model] = state

    # --- serving ------------------------------------------------------------------------

    async def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """(body, content type) of a scrape: the Prometheus text format, or OpenMetrics when asked."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.read_lag(), LAG_READ_SECONDS + 0.5)
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def endpoint(self) -> Callable:
        """The ASGI app for `GET /metrics`."""

        async def render(scope: dict) -> tuple[bytes, str]:
            return await self.exposition(header(scope, b"accept"))

        return bytes_endpoint(render)


_current: ContextVar[Metrics | None] = ContextVar("mesh_metrics", default=None)
_detached = Metrics("unbound")  # what is recorded outside any handler, and never served


def metrics() -> Metrics:
    """The metrics of the agent whose message is being handled here (see the module docstring)."""
    return _current.get() or _detached


__all__ = ["Metrics", "metrics"]
