"""Model calls in the trace: one GenAI `chat {model}` span per call, with its usage and cost;
retries as its events; a chain's fallbacks as events on `llm.chain`; no duplicate SDK span."""

from __future__ import annotations

import anthropic
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from contracts.reviews import TokenUsage
from services.llm.budget import Meter
from services.llm.chain import Step, run_chain
from services.llm.client import LLMClient
from services.llm.pricing import price_table
from services.llm.settings import LLMSettings
from tests.fakes.anthropic_server import overloaded, server_error, tool_call, usage
from tests.services.llm.conftest import MODEL, REQUEST, in_seconds, unlimited

HAIKU = "claude-haiku-4-5"
ANSWER = {"verdict": "approve", "confidence": 0.9}


async def ask(llm: LLMClient, model: str = MODEL, meter: Meter | None = None):
    return await llm.create(
        model=model,
        request=REQUEST,
        deadline=in_seconds(10),
        budget=unlimited(),
        meter=meter or Meter(),
        agent="security",
    )


async def test_the_sdk_would_trace_the_call_so_its_absence_means_something(api, spans):
    """The control: an SDK client given our tracer provider makes `anthropic.messages.create`."""
    sdk = anthropic.AsyncAnthropic(
        api_key="sk-test", base_url=api.url, max_retries=0, open_telemetry={"tracer_provider": spans.provider}
    )
    await sdk.messages.create(model=MODEL, **REQUEST)
    await sdk.close()
    assert [span.name for span in spans.finished()] == ["anthropic.messages.create"]


async def test_a_call_is_one_chat_span_with_its_tokens_and_cost(api, spans, make_llm):
    """Through our client the SDK's own span is off: exactly one `chat {model}` CLIENT span, whose
    input tokens count the cached ones too, with the cache reads and writes, the cost at our
    prices, and no `traceparent` sent to the provider."""
    spent = usage(input_tokens=500, output_tokens=120, cache_read=300, cache_creation=40)
    api.reply(tool_call(ANSWER, name="answer", use=spent))
    llm = make_llm(tracer_provider=spans.provider, sdk_spans=True)
    response = await ask(llm)

    (span,) = spans.finished()
    assert (span.name, span.kind, span.status.status_code) == (f"chat {MODEL}", SpanKind.CLIENT, StatusCode.UNSET)
    tokens = TokenUsage(
        input_tokens=500, output_tokens=120, cache_read_input_tokens=300, cache_creation_input_tokens=40
    )
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": MODEL,
        "gen_ai.request.max_tokens": REQUEST["max_tokens"],
        "server.address": "127.0.0.1",
        "server.port": int(api.url.rsplit(":", 1)[1]),
        "mesh.agent": "security",
        "gen_ai.response.model": MODEL,
        "gen_ai.response.id": response.id,
        "gen_ai.response.finish_reasons": ("tool_use",),
        "gen_ai.usage.input_tokens": 840,
        "gen_ai.usage.output_tokens": 120,
        "gen_ai.usage.cache_read.input_tokens": 300,
        "gen_ai.usage.cache_creation.input_tokens": 40,
        "mesh.llm.cost_usd": pytest.approx(price_table().price(MODEL).cost(tokens)),
        "mesh.llm.requests": 1,
        "mesh.llm.gate_wait_seconds": pytest.approx(0.0, abs=0.05),
    }
    assert "traceparent" not in api.requests[0].headers


async def test_a_client_made_from_settings_has_the_sdk_spans_off():
    """`from_settings` builds the SDK client with `open_telemetry=False`."""
    llm = LLMClient.from_settings(LLMSettings(_env_file=None, anthropic_api_key="sk-test"))
    assert llm.api.open_telemetry["traces"]["enabled"] is False
    await llm.close()


async def test_a_retried_call_is_one_span_with_a_retry_event(api, spans, make_llm):
    """A 500 then an answer: one span, OK, two requests, and a `retry` event naming the failed
    attempt, its status and error type, and the wait."""
    api.reply(server_error(500), tool_call(ANSWER, name="answer"))
    await ask(make_llm(tracer_provider=spans.provider))

    (span,) = spans.finished()
    assert span.status.status_code is StatusCode.UNSET and span.attributes["mesh.llm.requests"] == 2
    (retry,) = span.events
    assert retry.name == "retry"
    assert {k: retry.attributes[k] for k in ("mesh.llm.attempt", "http.response.status_code", "error.type")} == {
        "mesh.llm.attempt": 1,
        "http.response.status_code": 500,
        "error.type": "api_error",
    }
    assert retry.attributes["mesh.llm.retry_wait_seconds"] == pytest.approx(0.001, abs=0.01)  # retry-after-ms: 1


async def test_a_wait_at_the_rate_gate_is_on_the_span(api, spans, make_llm):
    """At 60 requests/min the second call waits about a second at the gate, and its span says so."""
    llm = make_llm(rpm=60, tracer_provider=spans.provider)
    await ask(llm)
    await ask(llm)
    first, second = spans.finished()
    assert first.attributes["mesh.llm.gate_wait_seconds"] < 0.1
    assert 0.5 < second.attributes["mesh.llm.gate_wait_seconds"] < 1.5


async def test_an_overloaded_model_falls_back_to_the_next_with_the_reason(api, spans, make_llm):
    """Sonnet answers 529 (not retried): its span is an ERROR with `overloaded_error`; the chain's
    `fallback` event names it, the reason and Haiku; Haiku's span answers; both under `llm.chain`."""
    api.always(overloaded(), model=MODEL)
    llm = make_llm(tracer_provider=spans.provider)
    tracer = spans.provider.get_tracer("test")
    result = await run_chain(
        [Step(MODEL), Step(HAIKU)], lambda model, meter: ask(llm, model, meter), agent="security", tracer=tracer
    )
    assert result.model == HAIKU

    chain, sonnet, haiku = spans.one("llm.chain"), spans.one(f"chat {MODEL}"), spans.one(f"chat {HAIKU}")
    assert sonnet.parent.span_id == haiku.parent.span_id == chain.context.span_id
    assert sonnet.status.status_code is StatusCode.ERROR and "HTTP 529" in sonnet.status.description
    assert sonnet.attributes["error.type"] == "overloaded_error"
    assert sonnet.attributes["http.response.status_code"] == 529
    assert sonnet.attributes["mesh.llm.requests"] == 1 and sonnet.events == ()
    assert haiku.status.status_code is StatusCode.UNSET and haiku.attributes["gen_ai.usage.output_tokens"] > 0
    (fallback,) = chain.events
    assert fallback.name == "fallback"
    assert {k: v for k, v in fallback.attributes.items() if k != "mesh.llm.reason"} == {
        "mesh.llm.model": MODEL,
        "mesh.llm.status": "failed",
        "mesh.llm.next_model": HAIKU,
        "error.type": "ModelError",
    }
    assert "HTTP 529" in fallback.attributes["mesh.llm.reason"]
    assert chain.attributes["mesh.llm.chain"] == (MODEL, HAIKU, "offline")
    assert chain.attributes["mesh.llm.answered_by"] == HAIKU and chain.attributes["mesh.agent"] == "security"
    assert chain.attributes["mesh.llm.cost_usd"] == pytest.approx(haiku.attributes["mesh.llm.cost_usd"])


async def test_an_open_circuit_shows_as_a_skipped_step(api, spans, make_llm):
    """After one 529 the breaker (threshold 1) opens, an event on that call's span; the next
    chain's Sonnet span sends nothing and says `CircuitOpen`, and its fallback is `skipped`."""
    api.always(overloaded(), model=MODEL)
    llm = make_llm(breaker_failures=1, tracer_provider=spans.provider)
    tracer = spans.provider.get_tracer("test")
    for _ in range(2):
        await run_chain([Step(MODEL)], lambda model, meter: ask(llm, model, meter), tracer=tracer)

    failed, skipped = spans.named(f"chat {MODEL}")
    assert [event.name for event in failed.events] == ["breaker_opened"]
    assert skipped.attributes["error.type"] == "CircuitOpen" and skipped.attributes["mesh.llm.requests"] == 0
    _, second_chain = spans.named("llm.chain")
    (fallback,) = second_chain.events
    assert (fallback.attributes["mesh.llm.status"], fallback.attributes["error.type"]) == ("skipped", "CircuitOpen")
    assert fallback.attributes["mesh.llm.next_model"] == "offline"
    assert second_chain.attributes["mesh.llm.answered_by"] == "offline"
    assert len(api.requests) == 1
