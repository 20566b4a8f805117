"""A fake Anthropic API per test, and LLM clients pointed at it (closed afterwards)."""

import time

import anthropic
import pytest

from services.llm.budget import RoundBudget
from services.llm.client import LLMClient
from services.llm.gate import Gates, Limits, limits_resolver
from services.llm.pricing import price_table
from services.llm.retry import RetryPolicy
from tests.fakes.anthropic_server import FakeAnthropic

MODEL = "claude-sonnet-4-6"
REQUEST = {
    "max_tokens": 512,
    "system": [{"type": "text", "text": "You review releases.", "cache_control": {"type": "ephemeral"}}],
    "tools": [
        {
            "name": "answer",
            "description": "Answer.",
            "input_schema": {
                "type": "object",
                "properties": {
                    "verdict": {"type": "string", "enum": ["approve", "reject"]},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                },
                "required": ["verdict", "confidence"],
            },
        }
    ],
    "tool_choice": {"type": "tool", "name": "answer"},
    "messages": [{"role": "user", "content": "Review this."}],
}


@pytest.fixture
def api():
    with FakeAnthropic(seed=7) as server:
        yield server


@pytest.fixture
async def make_llm(api):
    """`make_llm(rpm=…, max_attempts=…, …)`: an LLMClient on the fake with quick retries
    (its spans to `tracer_provider`; `sdk_spans` also lets the SDK make its own, to the same)."""
    clients = []

    def make(
        *,
        rpm=1e6,
        tpm=1e9,
        in_flight=32,
        max_attempts=3,
        breaker_failures=5,
        breaker_reset=30.0,
        timeout=10.0,
        tracer_provider=None,
        sdk_spans=False,
    ) -> LLMClient:
        sdk_option = {"tracer_provider": tracer_provider} if sdk_spans else None
        sdk = anthropic.AsyncAnthropic(api_key="sk-test", base_url=api.url, max_retries=0, open_telemetry=sdk_option)
        llm = LLMClient(
            api=sdk,
            prices=price_table(),
            gates=Gates(limits_resolver(Limits(in_flight, rpm, tpm), {})),
            retry=RetryPolicy(max_attempts=max_attempts, initial_seconds=0.01, max_seconds=0.05),
            request_timeout=timeout,
            breaker_failures=breaker_failures,
            breaker_reset_seconds=breaker_reset,
            tracer_provider=tracer_provider,
        )
        clients.append(llm)
        return llm

    yield make
    for llm in clients:
        await llm.close()


def in_seconds(seconds: float) -> float:
    """A deadline `seconds` from now on the client's (monotonic) clock."""
    return time.monotonic() + seconds


def unlimited() -> RoundBudget:
    return RoundBudget()
