"""Reviewer brains wired to a fake Messages API on a real socket, through the one LLM client."""

import anthropic
import pytest

from bus.ops.settings import MeshSettings
from services.llm.client import LLMClient
from services.llm.gate import Gates, Limits, limits_resolver
from services.llm.pricing import price_table
from services.llm.retry import RetryPolicy
from services.review.brain import make_brain
from tests.fakes.anthropic_server import FakeAnthropic


@pytest.fixture
def api():
    with FakeAnthropic(seed=11) as server:
        yield server


@pytest.fixture
async def brain_for(api):
    """`brain_for("security", llm_chain=…, max_attempts=…, tracer_provider=…, **settings)`: a brain
    asking the fake (its spans, and its client's, to `tracer_provider`)."""
    clients = []

    def make(
        focus: str = "security", *, max_attempts: int = 3, breaker_failures: int = 5, tracer_provider=None, **overrides
    ):
        values = {
            "anthropic_api_key": "sk-test",
            "anthropic_base_url": api.url,
            "max_tokens": 1024,
            "llm_chain": "claude-sonnet-4-6,offline",
            **overrides,
        }
        settings = MeshSettings(_env_file=None, **values)
        llm = LLMClient(
            api=anthropic.AsyncAnthropic(api_key="sk-test", base_url=api.url, max_retries=0),
            prices=price_table(settings.llm_prices),
            gates=Gates(limits_resolver(Limits(32, 1e6, 1e9), {})),
            retry=RetryPolicy(max_attempts=max_attempts, initial_seconds=0.01, max_seconds=0.05),
            request_timeout=settings.llm_timeout_seconds,
            breaker_failures=breaker_failures,
            tracer_provider=tracer_provider,
        )
        clients.append(llm)
        return make_brain(focus, settings=settings, llm=llm, tracer_provider=tracer_provider)

    yield make
    for llm in clients:
        await llm.close()
